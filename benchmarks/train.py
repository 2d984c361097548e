"""Benchmark: train the kind/bug classifier on the published notes and on 50,000 notes, with time and peak RSS.

The notes come from the published release-notes files under ``SHARED_DATA / "release-notes"``
(about 5,600 notes, releases 1.14 to 1.32), so no data directory is needed. Each stage runs in
its own process, so its peak RSS is its own:

- ``shared``: ``build_dataset`` and ``train_classifier`` with the default ``ModelConfig`` on the
  published notes. Target: training under 180 s. It prints the validation figures of the
  network and of the logistic-regression baseline.
- ``large``: the same on 50,000 notes made from the published ones (see ``synthetic_notes``),
  with ``label_features="never"`` (``LARGE_LABEL_FEATURES``), so it trains one feature variant
  instead of two. Target: peak RSS under 2,000 MB. Its validation figures do not measure the
  model, because a synthetic note mixes sentences of notes that carry other labels.
- ``dense_reference``: the memory cost of the original tool, which densified the whole
  training matrix. It fits the same features on the same 50,000 notes and calls
  ``.toarray()`` on the training rows, giving one dense float32 matrix. It trains nothing,
  because the matrix alone is the cost. A matrix over ``DENSE_LIMIT_BYTES`` is not
  allocated, and its size (rows x columns x 4 bytes) is reported as computed instead.

The closing lines compare the shared-notes training time and the large peak RSS with their
targets, and give the ratio of the large stage's peak RSS to the dense reference's.

Run: ``.venv/bin/python benchmarks/train.py [--notes 50000] [--skip-large]``
"""

from __future__ import annotations

import argparse
import json
import re
import time

from common import SHARED_DATA, peak_rss_mb, run_stage  # benchmarks/ is on sys.path when run as a script

PUBLISHED_FOLDERS = ("kubernetes-sigs-release-notes", "kubernetes-sig-release")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
LARGE_LABEL_FEATURES = "never"
DENSE_LIMIT_BYTES = 12 * 10**9
TARGET_SECONDS = 180.0
TARGET_RSS_MB = 2000.0
MB = 1024 * 1024


def published_notes():
    """Build the release_notes table from the published notes files, with no exported PRs."""
    from k8s_analysis.tables.items import build_item_tables
    from k8s_analysis.tables.release_notes import build_release_notes

    root = SHARED_DATA / "release-notes"
    files = [
        (path.name, json.loads(path.read_text()))
        for folder in PUBLISHED_FOLDERS
        for path in sorted((root / folder).glob("*.json"))
    ]
    return build_release_notes(build_item_tables([]).pull_requests, files)


def synthetic_notes(count: int, seed: int = 0):
    """Return ``count`` notes, each made by joining sentences of two or three published notes.

    A note starts with the whole text of one published note drawn at random, and keeps that
    note's ``is_bug``, sigs, areas and ``release_version``. One or two sentences follow, each
    drawn from another random published note. So the releases keep their real shares, and the
    default split by release still holds back the two newest. PR numbers run from 1 to
    ``count`` in draw order. The same seed gives the same notes.
    """
    import numpy as np
    import pandas as pd

    real = published_notes().reset_index(drop=True)
    texts = real["text"].tolist()
    sentences = [[part for part in SENTENCE_END.split(text.strip()) if part] or [text] for text in texts]
    rng = np.random.default_rng(seed)
    first = rng.integers(0, len(real), count)
    extra_counts = rng.integers(1, 3, count)
    joined = []
    for index in range(count):
        parts = [texts[first[index]]]
        for other in rng.integers(0, len(real), extra_counts[index]):
            parts.append(sentences[other][rng.integers(0, len(sentences[other]))])
        joined.append(" ".join(parts))
    chosen = real.iloc[first]
    return pd.DataFrame({
        "pr_number": np.arange(1, count + 1),
        "text": joined,
        "is_bug": chosen["is_bug"].to_numpy(),
        "sigs": chosen["sigs"].to_numpy(),
        "areas": chosen["areas"].to_numpy(),
        "release_version": chosen["release_version"].to_numpy(),
    })


def build_timed_dataset(notes_count: int | None) -> tuple[object, float]:
    """Return the dataset of the published notes (None) or of ``notes_count`` synthetic ones, and its seconds."""
    from k8s_analysis.model.dataset import SplitConfig, build_dataset

    started = time.perf_counter()
    notes = published_notes() if notes_count is None else synthetic_notes(notes_count)
    dataset = build_dataset(notes, SplitConfig())
    return dataset, time.perf_counter() - started


def stage_train(notes_count: int | None, label_features: str) -> dict:
    from k8s_analysis.model.train import ModelConfig, train_classifier

    dataset, dataset_seconds = build_timed_dataset(notes_count)
    started = time.perf_counter()
    trained = train_classifier(dataset, ModelConfig(label_features=label_features))
    seconds = time.perf_counter() - started
    validation, baseline = trained.metrics["validation"], trained.metrics["baseline"]
    figures = {
        "dataset_seconds": dataset_seconds, "seconds": seconds, "device": trained.device,
        "counts": dataset.counts(), "validation_releases": dataset.info["releases"]["validation"],
        "label_features": label_features, "labels_used": trained.metrics["label_features"]["used"],
        "best_epoch": trained.metrics["best_epoch"], "features": trained.metrics["features"],
        "precision": validation["precision"], "recall": validation["recall"],
        "f1": validation["f1"], "roc_auc": validation["roc_auc"],
        "baseline_f1": baseline["f1"], "baseline_roc_auc": baseline["roc_auc"],
    }
    if notes_count is None:
        figures.update(linear_on_network_features(dataset, trained.metrics["label_features"]["used"]))
    return figures


def linear_on_network_features(dataset, use_labels: bool) -> dict:
    """Fit logistic regression on the network's own features, to show what the network adds.

    It runs after the timed training, so it does not count towards the training time.
    """
    from sklearn.linear_model import LogisticRegression

    from k8s_analysis.model.dataset import SPLIT_TRAIN, SPLIT_VALIDATION
    from k8s_analysis.model.metrics import best_f1_threshold, evaluate
    from k8s_analysis.model.train import ModelConfig, fit_split_features

    prepared = fit_split_features(dataset, ModelConfig().feature_config(use_labels))
    model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)
    model.fit(prepared.train_matrix, dataset.labels(SPLIT_TRAIN))
    labels = dataset.labels(SPLIT_VALIDATION)
    scores = model.predict_proba(prepared.validation_matrix)[:, 1]
    figures = evaluate(labels, scores, best_f1_threshold(labels, scores))
    return {"linear_f1": figures["f1"], "linear_roc_auc": figures["roc_auc"]}


def stage_dense_reference(notes_count: int) -> dict:
    import numpy as np

    from k8s_analysis.model.train import ModelConfig, fit_split_features

    dataset, _ = build_timed_dataset(notes_count)
    started = time.perf_counter()
    config = ModelConfig(label_features=LARGE_LABEL_FEATURES).feature_config(use_labels=False)
    matrix = fit_split_features(dataset, config).train_matrix
    features_peak_rss_mb = peak_rss_mb()
    rows, columns = matrix.shape
    dense_bytes = rows * columns * np.dtype(np.float32).itemsize
    allocated = dense_bytes <= DENSE_LIMIT_BYTES
    if allocated:
        dense = matrix.toarray()
        assert dense.dtype == np.float32, dense.dtype
        assert dense.nbytes == dense_bytes, (dense.nbytes, dense_bytes)
    return {"seconds": time.perf_counter() - started, "rows": rows, "columns": columns,
            "dense_bytes": dense_bytes, "allocated": allocated, "sparse_bytes": sparse_bytes(matrix),
            "features_peak_rss_mb": features_peak_rss_mb}


def sparse_bytes(matrix) -> int:
    return int(matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes)


def child(args: argparse.Namespace) -> None:
    if args.stage == "shared":
        figures = stage_train(None, "auto")
    elif args.stage == "large":
        figures = stage_train(args.notes, LARGE_LABEL_FEATURES)
    else:
        figures = stage_dense_reference(args.notes)
    figures["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(figures))


def report_training(name: str, figures: dict) -> None:
    counts = figures["counts"]
    print(f"{name}: {counts['train']:,} training notes, {counts['validation']:,} validation notes "
          f"(releases {' to '.join(figures['validation_releases'])}), on {figures['device']}")
    print(f"  label_features={figures['label_features']!r} (label columns used: {figures['labels_used']}), "
          f"{figures['features']:,} features, best epoch {figures['best_epoch']}")
    print(f"  dataset {figures['dataset_seconds']:>7.1f} s   training {figures['seconds']:>7.1f} s   "
          f"peak RSS {figures['peak_rss_mb']:>7,.0f} MB")
    print(f"  validation: precision {figures['precision']:.3f}  recall {figures['recall']:.3f}  "
          f"F1 {figures['f1']:.3f}  ROC-AUC {figures['roc_auc']:.3f}")
    print(f"  baseline:   F1 {figures['baseline_f1']:.3f}  ROC-AUC {figures['baseline_roc_auc']:.3f}")
    if "linear_f1" in figures:
        print(f"  logistic regression on the network's features: F1 {figures['linear_f1']:.3f}  "
              f"ROC-AUC {figures['linear_roc_auc']:.3f}")


def dense_reference_mb(dense: dict) -> float:
    """Return the dense stage's peak RSS, plus the matrix size when the matrix was not allocated."""
    if dense["allocated"]:
        return dense["peak_rss_mb"]
    return dense["peak_rss_mb"] + dense["dense_bytes"] / MB


def report_dense(dense: dict) -> None:
    print(f"dense_reference: training matrix {dense['rows']:,} x {dense['columns']:,} float32, "
          f"sparse {dense['sparse_bytes'] / MB:,.0f} MB, dense {dense['dense_bytes'] / MB:,.0f} MB")
    if dense["allocated"]:
        print(f"  features and .toarray() {dense['seconds']:.1f} s   peak RSS {dense['peak_rss_mb']:,.0f} MB "
              f"(before .toarray(): {dense['features_peak_rss_mb']:,.0f} MB)")
    else:
        print(f"  dense matrix computed, not allocated (over {DENSE_LIMIT_BYTES / 10**9:.0f} GB): "
              f"peak RSS without it {dense['peak_rss_mb']:,.0f} MB, "
              f"with it (estimate) {dense_reference_mb(dense):,.0f} MB")


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=50_000,
                        help="number of synthetic notes for the large and dense_reference stages (default 50000)")
    parser.add_argument("--skip-large", action="store_true",
                        help="run only the shared stage, not the large and dense_reference stages")
    parser.add_argument("--stage", choices=["shared", "large", "dense_reference"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        child(args)
        return

    shared = run_stage(__file__, "shared")
    report_training("shared", shared)
    if not args.skip_large:
        large = run_stage(__file__, "large", "--notes", str(args.notes))
        report_training(f"large ({args.notes:,} synthetic notes)", large)
        dense = run_stage(__file__, "dense_reference", "--notes", str(args.notes))
        report_dense(dense)

    print(f"target for shared: training under {TARGET_SECONDS:.0f} s: {shared['seconds']:.1f} s, "
          f"{verdict(shared['seconds'] < TARGET_SECONDS)}")
    if args.skip_large:
        return
    print(f"target for large: peak RSS under {TARGET_RSS_MB:,.0f} MB: {large['peak_rss_mb']:,.0f} MB, "
          f"{verdict(large['peak_rss_mb'] < TARGET_RSS_MB)}")
    reference = dense_reference_mb(dense)
    print(f"sparse training peak RSS / dense reference: {large['peak_rss_mb']:,.0f} / {reference:,.0f} MB "
          f"= {large['peak_rss_mb'] / reference:.2f}"
          + ("" if dense["allocated"] else " (reference estimated: matrix computed, not allocated)"))


if __name__ == "__main__":
    main()
