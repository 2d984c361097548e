"""The decisions behind the sensors, on small data directories written by the tests."""

import json
import os
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from k8s_analysis.atomic import write_parquet
from k8s_analysis.automation.decisions import UnreadableTableError, count_label_changes, promotion_decision
from k8s_analysis.model.bundle import METRICS_FILE, TRAINING_LABELS_FILE
from k8s_analysis.paths import DataLayout

TRAINED_AT = datetime(2026, 12, 1, tzinfo=UTC)


def write_notes(layout: DataLayout, rows: list[tuple[int, str | None, bool]]) -> None:
    frame = pd.DataFrame(rows, columns=["pr_number", "text", "is_bug"])
    write_parquet(frame, layout.table_path("release_notes"))


def write_model(layout: DataLayout, version: str, labels: list[tuple[int, bool]] | None, promote: bool = True,
                metrics: dict | None = None) -> None:
    folder = layout.models_dir / version
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"version": version, "created_at": TRAINED_AT.isoformat()}))
    if labels is not None:
        write_parquet(pd.DataFrame(labels, columns=["pr_number", "is_bug"]), folder / TRAINING_LABELS_FILE)
    if metrics is not None:
        (folder / METRICS_FILE).write_text(json.dumps(metrics))
    if promote:
        current = layout.current_model_dir
        current.unlink(missing_ok=True)
        current.symlink_to(version)


def write_feedback(layout: DataLayout, times: list[datetime]) -> None:
    frame = pd.DataFrame({"pr_number": range(len(times)), "at": pd.to_datetime(times, utc=True)})
    write_parquet(frame, layout.label_feedback_path)


@pytest.fixture()
def layout(tmp_path):
    return DataLayout(tmp_path)


def test_count_without_a_model_counts_every_note(layout):
    write_notes(layout, [(1, "Fixed a crash.", True), (2, "Added a flag.", False), (3, None, False), (4, " ", True)])

    changes = count_label_changes(layout)

    assert (changes.model_version, changes.new_notes, changes.relabelled_notes) == (None, 2, 0)
    assert changes.describe().startswith("2 change(s) since no promoted model: 2 new labelled note(s)")


def test_count_new_relabelled_and_feedback(layout):
    write_notes(layout, [(1, "Fixed a crash.", True), (2, "Added a flag.", True), (3, "Removed a field.", False),
                         (4, "Fixed a leak.", True)])
    write_model(layout, "v1", [(1, True), (2, False), (3, False)])
    write_feedback(layout, [TRAINED_AT - timedelta(hours=1), TRAINED_AT + timedelta(hours=1),
                            TRAINED_AT + timedelta(days=2)])

    changes = count_label_changes(layout)

    assert changes.model_version == "v1"
    assert changes.new_notes == 1  # #4
    assert changes.relabelled_notes == 1  # #2 became a bug
    assert changes.feedback_rows == 2  # the two rows after training
    assert changes.total == 4


def test_count_for_a_model_without_training_labels(layout):
    write_notes(layout, [(1, "Fixed a crash.", True)])
    write_model(layout, "v0", None)

    changes = count_label_changes(layout)

    assert (changes.new_notes, changes.relabelled_notes, changes.feedback_rows) == (0, 0, 0)


def test_count_without_a_table_raises(layout):
    with pytest.raises(FileNotFoundError):
        count_label_changes(layout)


@pytest.mark.parametrize("damaged", ["release_notes", "training labels", "feedback"])
def test_count_damaged_file_error(layout, damaged):
    write_notes(layout, [(1, "Fixed a crash.", True)])
    write_model(layout, "v1", [(1, True)])
    path = {"release_notes": layout.table_path("release_notes"),
            "training labels": layout.current_model_dir / TRAINING_LABELS_FILE,
            "feedback": layout.label_feedback_path}[damaged]
    path.write_bytes(b"PAR1 cut short")

    with pytest.raises(UnreadableTableError) as raised:
        count_label_changes(layout)

    message = str(raised.value)
    assert message.startswith(f"cannot read {path}: ")
    fix = {"release_notes": "materialize release_notes", "training labels": "k8s-analysis rollback",
           "feedback": "move the damaged file away"}[damaged]
    assert fix in message
    assert ".." not in message


def test_key_follows_labels(layout):
    write_model(layout, "v1", [(1, True)])
    write_notes(layout, [(2, "Fixed a leak.", True), (1, "Fixed a crash.", True)])
    first = count_label_changes(layout).key
    write_notes(layout, [(1, "Fixed a crash, reworded.", True), (2, "Fixed a leak.", True)])
    reworded = count_label_changes(layout).key
    write_notes(layout, [(1, "Fixed a crash.", True), (2, "Fixed a leak.", False)])
    relabelled = count_label_changes(layout).key

    assert first == reworded
    assert relabelled != first
    assert first.startswith("v1:")


def checks(passed: bool = True, promoted_version: str | None = "v1", promoted_f1: float | None = 0.76) -> dict:
    return {
        "beats_baseline": {"passed": True, "f1": 0.78, "baseline_f1": 0.75},
        "not_worse_than_promoted": {"passed": passed, "f1": 0.78, "promoted_version": promoted_version,
                                    "promoted_f1": promoted_f1},
        "roc_auc_high_enough": {"passed": True, "roc_auc": 0.9},
    }


@pytest.mark.parametrize(("f1", "gate", "promoted", "expected", "reason"), [
    (0.78, checks(), True, True, "passed its checks with validation F1 0.780, at least the promoted v1's 0.760"),
    (0.76, checks(), True, True, "at least the promoted v1's 0.760"),
    (0.755, checks(), True, False, "has validation F1 0.755, below the promoted v1's 0.760 on the same notes"),
    (0.70, checks(passed=False), True, False, "failed its checks: not_worse_than_promoted"),
    (0.78, checks(promoted_version="v0"), True, False, "was compared with v0, but v1 is promoted now"),
    (0.78, checks(promoted_version=None, promoted_f1=None), False, True, "no model is promoted"),
    (0.78, {}, True, False, "records no checks"),
])
def test_promotion_decision(layout, f1, gate, promoted, expected, reason):
    if promoted:
        write_model(layout, "v1", None)
    write_model(layout, "v2", None, promote=False, metrics={"validation": {"f1": f1}, "checks": gate})

    decision = promotion_decision(layout.models_dir, "v2")

    assert decision.promote is expected
    assert reason in decision.reason


def test_promotion_of_the_current_or_an_unfinished_version(layout):
    write_model(layout, "v1", None, metrics={"validation": {"f1": 0.8}, "checks": checks()})
    write_model(layout, "v3", None, promote=False)

    assert promotion_decision(layout.models_dir, "v1").reason == "model v1 is already promoted"
    assert "has no metrics.json" in promotion_decision(layout.models_dir, "v3").reason
    assert os.readlink(layout.current_model_dir) == "v1"


def test_promotion_skips_a_rolled_back_version(layout):
    from k8s_analysis.model.bundle import rollback

    write_model(layout, "v1", None, metrics={"validation": {"f1": 0.76}, "checks": checks()})
    write_model(layout, "v2", None, metrics={"validation": {"f1": 0.78}, "checks": checks()})
    (layout.models_dir / "previous").symlink_to("v1")

    assert rollback(layout.models_dir) == ("v2", "v1")
    decision = promotion_decision(layout.models_dir, "v2")

    assert decision.promote is False
    assert "model v2 was rolled back by hand" in decision.reason
    assert json.loads((layout.models_dir / "rolled-back.json").read_text()) == ["v2"]
    # Rolling back again returns to v2 and takes it off the list.
    assert rollback(layout.models_dir) == ("v1", "v2")
    assert json.loads((layout.models_dir / "rolled-back.json").read_text()) == ["v1"]


def test_promote_unlists_rolled_back(layout):
    """Promoting by hand, as redeploy_job does, removes the version from the rolled-back list."""
    from k8s_analysis.model.bundle import promote, rollback, rolled_back_versions

    write_model(layout, "v1", None, metrics={"validation": {"f1": 0.76}, "checks": checks()})
    write_model(layout, "v2", None, metrics={"validation": {"f1": 0.78}, "checks": checks()})
    (layout.models_dir / "previous").symlink_to("v1")
    rollback(layout.models_dir)

    promote(layout.models_dir, "v2")

    assert rolled_back_versions(layout.models_dir) == set()
    assert promotion_decision(layout.models_dir, "v2").reason == "model v2 is already promoted"
