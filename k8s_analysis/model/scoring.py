"""Score a JSON Lines file of release notes: each object gets ``probability`` and ``kind_bug``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from k8s_analysis.atomic import atomic_path
from k8s_analysis.model.text import clean_text

BATCH = 1_000


@dataclass
class ScoreReport:
    scored: int = 0
    problems: list[str] = field(default_factory=list)


def read_notes(path: Path, report: ScoreReport) -> Iterator[dict]:
    """Yield the scorable objects; a line that is not an object with text is reported, not fatal."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                # Parsed without its newline, which json would otherwise report as the fault.
                note = json.loads(line.strip())
            except json.JSONDecodeError as error:
                # json's messages either end in " at" ("Unterminated string starting at") or not.
                joint = " " if error.msg.endswith(" at") else " at "
                report.problems.append(f"{path}:{number}: invalid JSON ({error.msg}{joint}column {error.colno})")
                continue
            text = note.get("text") if isinstance(note, dict) else None
            if not isinstance(text, str) or not clean_text(text):
                report.problems.append(f"{path}:{number}: no \"text\" with words in it; line skipped")
                continue
            bad = [name for name in ("sigs", "areas") if not _string_list(note.get(name))]
            if bad:
                report.problems.append(f"{path}:{number}: \"{bad[0]}\" must be a list of label names "
                                       f"such as [\"node\"]; line skipped")
                continue
            yield note


def _string_list(value) -> bool:
    return value is None or (isinstance(value, list) and all(isinstance(item, str) for item in value))


def score_file(predictor, source: Path, target: Path, threshold: float) -> ScoreReport:
    """Write ``target`` atomically: every scorable object of ``source`` with its score added.

    ``sigs`` and ``areas`` (lists of label names without the prefix) feed a model trained with
    label features. Other fields pass through unchanged. A note with no word in the model's vocabulary
    gets ``"low_information": true`` and ``"kind_bug": false``: only character fragments, or
    nothing, stand behind its probability.
    """
    if not source.is_file():
        raise FileNotFoundError(f"no input file {source}")
    report = ScoreReport()
    with atomic_path(target) as tmp, open(tmp, "w", encoding="utf-8") as out:
        batch: list[dict] = []
        for note in read_notes(source, report):
            batch.append(note)
            if len(batch) >= BATCH:
                report.scored += write_batch(predictor, batch, threshold, out)
                batch = []
        if batch:
            report.scored += write_batch(predictor, batch, threshold, out)
    return report


def write_batch(predictor, notes: list[dict], threshold: float, out) -> int:
    probabilities, informative = predictor.score([note["text"] for note in notes],
                                                 [note.get("sigs") for note in notes],
                                                 [note.get("areas") for note in notes])
    for note, probability, known in zip(notes, probabilities, informative, strict=True):
        scored = {**note, "probability": round(float(probability), 6),
                  "kind_bug": bool(known and probability >= threshold)}
        if not known:
            scored["low_information"] = True
        out.write(json.dumps(scored, ensure_ascii=False) + "\n")
    return len(notes)
