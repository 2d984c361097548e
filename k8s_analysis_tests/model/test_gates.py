"""Tests for the promotion checks: against the baseline, the promoted model, and a ROC-AUC floor."""

import json
import os

import dagster as dg
import pandas as pd
import pytest

from k8s_analysis.assets import all_assets
from k8s_analysis.model.gates import (
    BEATS_BASELINE,
    NOT_WORSE_THAN_PROMOTED,
    ROC_AUC_HIGH_ENOUGH,
    GateConfig,
    evaluate_gates,
)
from k8s_analysis.model.train import ModelConfig, TrainedModel
from k8s_analysis.paths import DataLayout
from k8s_analysis.summary import new_model_not_promoted
from k8s_analysis_tests.assets.test_definitions import check_outcomes, materialization_metadata, resources_for
from k8s_analysis_tests.model.test_train import load_release_notes

# A network with five input features learns little: the "worse model" of these tests.
WEAK = {"k_best": 5, "char_ngram_max": 0, "hidden_units": [8], "label_features": "never"}
GOOD = {"label_features": "never"}
RELAXED = {"max_f1_drop": 1.0, "min_roc_auc": 0.0}


def trained_with(f1: float, roc_auc: float, baseline_f1: float | None = 0.75) -> TrainedModel:
    metrics = {"validation": {"f1": f1, "roc_auc": roc_auc}}
    if baseline_f1 is not None:
        metrics["baseline"] = {"f1": baseline_f1, "roc_auc": 0.89}
    return TrainedModel(features=None, network=None, threshold=0.5, metrics=metrics, config=ModelConfig(), device="CPU")


def outcomes(gates) -> dict[str, bool]:
    return {gate.name: gate.passed for gate in gates}


@pytest.mark.parametrize(
    ("f1", "passed"),
    [(0.77, True), (0.745, True), (0.741, True), (0.739, False), (0.6, False)],
)
def test_baseline_gate_allows_small_drop(f1, passed):
    gates = evaluate_gates(trained_with(f1, 0.9), promoted=None)

    assert outcomes(gates)[BEATS_BASELINE] is passed


def test_baseline_missing_fails():
    gates = evaluate_gates(trained_with(0.8, 0.9, baseline_f1=None), promoted=None)

    assert outcomes(gates)[BEATS_BASELINE] is False


@pytest.mark.parametrize(
    ("promoted_f1", "passed"),
    [(0.70, True), (0.765, True), (0.78, False)],
)
def test_promoted_gate(promoted_f1, passed):
    promoted = {"version": "v1", "how": "its configuration retrained on this split", "f1": promoted_f1}

    gates = evaluate_gates(trained_with(0.76, 0.9), promoted)
    gate = next(gate for gate in gates if gate.name == NOT_WORSE_THAN_PROMOTED)

    assert gate.passed is passed
    assert "promoted model v1" in gate.description
    assert gate.figures["promoted_f1"] == promoted_f1


def test_nothing_promoted_passes():
    assert outcomes(evaluate_gates(trained_with(0.76, 0.9), None))[NOT_WORSE_THAN_PROMOTED] is True


@pytest.mark.parametrize(("roc_auc", "passed"), [(0.9, True), (0.85, True), (0.849, False), (float("nan"), False)])
def test_roc_auc_floor(roc_auc, passed):
    assert outcomes(evaluate_gates(trained_with(0.76, roc_auc), None))[ROC_AUC_HIGH_ENOUGH] is passed


def test_gate_config_applies():
    gates = evaluate_gates(trained_with(0.70, 0.80), None, GateConfig(max_f1_drop=0.1, min_roc_auc=0.75))

    assert all(outcomes(gates).values())


@pytest.fixture(scope="module")
def notes_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("gates")
    layout = DataLayout(root)
    layout.tables_dir.mkdir(parents=True)
    load_release_notes().to_parquet(layout.table_path("release_notes"))
    return root


def materialize_classifier(root, config: dict) -> dg.ExecuteInProcessResult:
    result = dg.materialize(
        [*all_assets], selection=["kind_bug_classifier"], resources=resources_for(root),
        run_config={"ops": {"kind_bug_classifier": {"config": config}}},
    )
    assert result.success
    return result


def train_once(root, config: dict) -> tuple[dict, dict]:
    result = materialize_classifier(root, config)
    return check_outcomes(result), materialization_metadata(result, "kind_bug_classifier")


@pytest.mark.slow
def test_better_promoted_worse_kept_out(notes_dir):
    """A weak model (let through by relaxed checks), then a better one, then a weak one again."""
    current = DataLayout(notes_dir).current_model_dir

    _, weak = train_once(notes_dir, {**WEAK, **RELAXED})
    assert os.readlink(current) == weak["version"]

    checks, good = train_once(notes_dir, GOOD)
    assert all(checks.values()), checks
    assert good["promoted"] is True
    assert os.readlink(current) == good["version"]

    # Another split: the promoted configuration must be retrained on it to be compared.
    result = materialize_classifier(notes_dir, {**WEAK, "validation_releases": 3})
    checks, worse = check_outcomes(result), materialization_metadata(result, "kind_bug_classifier")
    assert checks[NOT_WORSE_THAN_PROMOTED] is False
    assert checks[BEATS_BASELINE] is False
    assert worse["promoted"] is False
    assert os.readlink(current) == good["version"]
    # The blocked version is kept for inspection, only not promoted.
    gate = recorded_gate(notes_dir, worse["version"])
    assert "its configuration retrained on this split" in gate["description"]
    assert gate["promoted_version"] == good["version"]
    summary = new_model_not_promoted(result)
    assert summary.startswith(f"{worse['version']} saved but not promoted; failed checks: ")
    assert "not_worse_than_promoted (validation F1" in summary


def recorded_gate(root, version: str) -> dict:
    metrics = json.loads((DataLayout(root).models_dir / version / "metrics.json").read_text())
    return metrics["checks"][NOT_WORSE_THAN_PROMOTED]


@pytest.mark.slow
def test_same_split_uses_recorded_figures(notes_dir):
    """Training the promoted configuration again compares against its recorded figures."""
    _, first = train_once(notes_dir, GOOD)

    checks, second = train_once(notes_dir, GOOD)
    gate = recorded_gate(notes_dir, second["version"])

    assert checks[NOT_WORSE_THAN_PROMOTED] is True
    assert "its own figures" in gate["description"]
    assert gate["promoted_f1"] == pytest.approx(first["validation_f1"])
    assert second["validation_f1"] == pytest.approx(first["validation_f1"], abs=1e-6)


@pytest.mark.slow
def test_classifier_reads_bot_feedback(tmp_path):
    """Corrections stored by the bot reach the classifier asset: one note relabelled, one added."""
    from k8s_analysis.bot.state import BotState, FeedbackRow

    notes = load_release_notes()
    layout = DataLayout(tmp_path)
    layout.tables_dir.mkdir(parents=True)
    notes.to_parquet(layout.table_path("release_notes"))
    bug = notes[notes["is_bug"]].iloc[0]
    state = BotState(layout.bot_state_path, feedback_path=layout.label_feedback_path)
    for number, text, is_bug in ((int(bug["pr_number"]), bug["text"], False),
                                 (999_999_999, "Fixed a panic of the scheduler when a node has no labels.", True)):
        state.add_feedback(FeedbackRow("kubernetes/kubernetes", number, text, 0.7, 0.5, True, "v1", "kind/bug",
                                       "labeled" if is_bug else "unlabeled", is_bug, "maintainer-b", 1.0e9, "d"))
    state.close()

    metadata = materialization_metadata(materialize_classifier(tmp_path, {**WEAK, **RELAXED}), "kind_bug_classifier")

    assert metadata["feedback"] == {"feedback_rows": 2, "relabelled": 1, "added": 1}
    # The model records what it learnt from, which the retrain sensor compares with the tables.
    labels = pd.read_parquet(layout.models_dir / metadata["version"] / "training-labels.parquet")
    assert len(labels) == len(notes) + 1
    assert bool(labels.loc[labels["pr_number"] == int(bug["pr_number"]), "is_bug"].iloc[0]) is False
