"""Benchmark: prediction features from the kept terms (``transform``) against scikit-learn's analyzers.

Both paths turn cleaned release notes into the same unit-length rows. The script checks that
they are equal, then prints the time per call of each for 1, 16 and 1,000 texts, and the ratio.
The fast path's word cache is warm after the first call, as it is in a running server, so the
cold first call is printed too.

Run: ``.venv/bin/python benchmarks/features.py [--model-dir data/models/current]``
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from common import REPOSITORY, SHARED_DATA  # benchmarks/ is on sys.path when run as a script

from k8s_analysis.model.features import NoteFeatures
from k8s_analysis.model.text import clean_text

BATCH_SIZES = (1, 16, 1_000)
# Calls per batch size: enough for a stable mean, about one second per path.
REPEATS = {1: 2_000, 16: 300, 1_000: 8}


def release_note_texts() -> list[str]:
    texts = []
    for path in sorted((SHARED_DATA / "release-notes").glob("*/*.json")):
        for entry in json.loads(path.read_text()).values():
            cleaned = clean_text(entry.get("text"))
            if cleaned:
                texts.append(cleaned)
    texts = sorted(set(texts))
    random.Random(0).shuffle(texts)
    return texts


def seconds_per_call(transform, texts: list[str], size: int) -> float:
    repeats = REPEATS[size]
    started = time.perf_counter()
    for index in range(repeats):
        start = (index * size) % (len(texts) - size)
        transform(texts[start:start + size])
    return (time.perf_counter() - started) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=REPOSITORY / "data" / "models" / "current")
    args = parser.parse_args()
    features_path = args.model_dir / "features.json"
    if not features_path.is_file():
        raise SystemExit(f"no {features_path}: run `make run` first to train a model, or pass --model-dir")
    features = NoteFeatures.from_dict(json.loads(features_path.read_text()))
    texts = release_note_texts()
    print(f"model {args.model_dir.resolve().name}: {features.n_features:,} columns; {len(texts):,} distinct notes")

    started = time.perf_counter()
    fast = features.transform(texts)
    cold = time.perf_counter() - started
    reference = features.reference_transform(texts)
    equal = (fast != reference).nnz == 0
    print(f"all notes in one call: fast path {cold:.2f} s with an empty word cache; rows equal to "
          f"scikit-learn's: {equal}")

    figures = {"columns": features.n_features, "notes": len(texts), "cold_all_seconds": cold, "equal": equal}
    for size in BATCH_SIZES:
        ours = seconds_per_call(features.transform, texts, size)
        theirs = seconds_per_call(features.reference_transform, texts, size)
        print(f"{size:>5,} texts: {ours * 1000:8.3f} ms per call, scikit-learn {theirs * 1000:8.3f} ms, "
              f"ratio {ours / theirs:.2f}")
        figures[f"ms_{size}"] = {"ours": ours * 1000, "scikit_learn": theirs * 1000, "ratio": ours / theirs}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
