"""Model assets: the kind/bug classifier trained on the release_notes table, and its evaluation."""

import hashlib
import json

import dagster as dg
import pandas as pd

from k8s_analysis.assets.analysis import chart_markdown
from k8s_analysis.atomic import write_parquet
from k8s_analysis.execution import training_op_tags
from k8s_analysis.model import evaluation
from k8s_analysis.model.bundle import TRAINING_LABELS_FILE, new_version_name, promote, save_bundle
from k8s_analysis.model.dataset import SplitConfig, apply_feedback, build_dataset, release_key
from k8s_analysis.model.gates import (
    BEATS_BASELINE,
    NOT_WORSE_THAN_PROMOTED,
    ROC_AUC_HIGH_ENOUGH,
    GateConfig,
    evaluate_gates,
    promoted_figures,
)
from k8s_analysis.model.train import InsufficientDataError, InsufficientTextError, ModelConfig, train_classifier
from k8s_analysis.resources import DataDirResource
from k8s_analysis.storage import publish_model, read_parquet, table_exists

CHECK_TRAINED = "trained_on_enough_text"
SKIPPED_NO_TEXT = "skipped: insufficient_text"
SKIPPED_NO_DATA = "skipped: insufficient_data"
CLASSIFIER = "kind_bug_classifier"
# Settings that --tune searches and saves; a tuned file sets only these.
TUNED_SETTINGS = ("word_ngram_max", "char_ngram_min", "char_ngram_max", "min_df", "k_best",
                  "hidden_units", "dropout", "learning_rate", "batch_size")


class ClassifierConfig(dg.Config):
    """Knobs for one training run. The defaults reach the figures in docs/benchmarks.md."""

    word_ngram_max: int = 2
    char_ngram_min: int = 2
    char_ngram_max: int = 5
    min_df: int = 1
    k_best: int = 40_000
    hidden_units: list[int] = [64]
    dropout: float = 0.5
    learning_rate: float = 5e-4
    epochs: int = 30
    batch_size: int = 32
    patience: int = 3
    seed: int = 0
    label_features: str = "auto"
    """auto, always or never: use the PR's sig/area labels as features."""
    target_precision: float | None = None
    """Choose the threshold that reaches this precision on validation instead of the best-F1 one."""
    refit: bool = True
    """Refit on all labelled notes once the split has chosen epochs and threshold."""
    split_method: str = "release"
    """release (newest releases validate), time (newest share validates) or random (stratified)."""
    validation_releases: int = 2
    validation_share: float = 0.15
    use_tuned_config: bool = True
    """Start from data/models/tuned-config.json (written by `k8s-analysis train --tune`) when it exists."""
    max_f1_drop: float = 0.01
    min_roc_auc: float = 0.85
    promote: bool = True
    """Point data/models/current at the new version when every check passes."""

    def to_model_config(self, tuned: dict | None = None) -> ModelConfig:
        values = {name: getattr(self, name) for name in ModelConfig.__dataclass_fields__}
        values.update({name: value for name, value in (tuned or {}).items() if name in TUNED_SETTINGS})
        return ModelConfig.from_dict(values)

    def split_config(self) -> SplitConfig:
        return SplitConfig(self.split_method, self.validation_releases, self.validation_share, self.seed)


def read_tuned_config(path, log) -> dict | None:
    if not path.is_file():
        return None
    try:
        tuned = json.loads(path.read_text())["config"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        log.warning("ignoring %s, it cannot be read (%s); delete it or run `k8s-analysis train --tune` again",
                    path, error)
        return None
    log.info("using the tuned settings from %s: %s", path,
             ", ".join(f"{name}={tuned[name]}" for name in TUNED_SETTINGS if name in tuned))
    return tuned


def read_feedback(layout, log) -> pd.DataFrame | None:
    """Return the bot's label feedback table, or None when the bot has stored none."""
    path = layout.label_feedback_path
    if not table_exists(path):
        return None
    try:
        return read_parquet(path)
    except (OSError, ValueError) as error:
        # Training goes on without the corrections rather than failing on a damaged side table.
        log.warning("cannot read %s (%s); training without the bot's feedback", path, error)
        return None


def data_snapshot(notes: pd.DataFrame, dataset) -> dict:
    """Return what the model learnt from: row counts and the newest note."""
    releases = sorted(dataset.frame["release"].dropna().unique(), key=release_key)
    merged = pd.to_datetime(notes["merged_at"], utc=True) if "merged_at" in notes else None
    return {
        "notes": len(notes),
        "notes_used": len(dataset.frame),
        "bug_share": float(dataset.frame["is_bug"].mean()) if len(dataset.frame) else 0.0,
        "newest_release": releases[-1] if releases else None,
        "newest_merged_at": merged.max().isoformat() if merged is not None and merged.notna().any() else None,
        "newest_pr_number": int(notes["pr_number"].max()) if len(notes) else None,
    }


def version_fingerprint(dataset, config: ModelConfig) -> str:
    digest = hashlib.sha256(json.dumps(config.as_dict(), sort_keys=True).encode())
    digest.update(json.dumps(dataset.info["fingerprints"], sort_keys=True).encode())
    return digest.hexdigest()


@dg.asset(
    group_name="model",
    kinds={"keras", "scikitlearn"},
    # On Kubernetes this step alone gets the GPU limit, node selector and tolerations.
    op_tags=training_op_tags(),
    check_specs=[
        dg.AssetCheckSpec(CHECK_TRAINED, asset=CLASSIFIER,
                          description="The notes gave a vocabulary and both classes in both splits, "
                                      "so a model was trained."),
        dg.AssetCheckSpec(BEATS_BASELINE, asset=CLASSIFIER,
                          description="Passes when validation F1 is at most max_f1_drop (0.01) below the linear "
                                      "baseline's."),
        dg.AssetCheckSpec(NOT_WORSE_THAN_PROMOTED, asset=CLASSIFIER,
                          description="Passes when validation F1 is at most max_f1_drop (0.01) below the "
                                      "promoted model's on the same split."),
        dg.AssetCheckSpec(ROC_AUC_HIGH_ENOUGH, asset=CLASSIFIER,
                          description="Validation ROC-AUC is at least min_roc_auc (0.85)."),
    ],
)
def kind_bug_classifier(
    context: dg.AssetExecutionContext,
    config: ClassifierConfig,
    release_notes: pd.DataFrame,
    data_dir: DataDirResource,
) -> dg.MaterializeResult:
    """TF-IDF (words and characters) + SelectKBest + Keras MLP predicting whether a note is kind/bug.

    Trained on the older releases with early stopping and the threshold chosen on the newest
    ones, compared with a linear baseline and the promoted model, then refit on all notes and
    saved under data/models/<version>/. Promoted to data/models/current when every check passes.
    With object storage configured, also published to <storage>/models/<version>/, and a
    promotion rewrites <storage>/models/current.json.
    """
    layout = data_dir.layout()
    tuned = read_tuned_config(layout.tuned_config_path, context.log) if config.use_tuned_config else None
    model_config = config.to_model_config(tuned)
    release_notes, feedback_counts = apply_feedback(release_notes, read_feedback(layout, context.log))
    if feedback_counts["feedback_rows"]:
        context.log.info("bot feedback: %d kind/bug correction(s), %d note(s) relabelled, %d added",
                         feedback_counts["feedback_rows"], feedback_counts["relabelled"], feedback_counts["added"])
    dataset = build_dataset(release_notes, config.split_config(), log=context.log)
    try:
        trained = train_classifier(dataset, model_config, log=context.log)
    except InsufficientDataError as error:
        return skipped_result(context, error)

    promoted = promoted_figures(layout.current_model_dir, dataset, model_config, trained, context.log)
    gates = evaluate_gates(trained, promoted, GateConfig(config.max_f1_drop, config.min_roc_auc))
    trained.metrics["checks"] = {gate.name: gate.as_dict() for gate in gates}
    passed = all(gate.passed for gate in gates)

    version = new_version_name(version_fingerprint(dataset, model_config))
    training = {
        "data": data_snapshot(release_notes, dataset),
        "split": dataset.info,
        "config_source": f"tuned: {layout.tuned_config_path}" if tuned else "run configuration",
        "history": trained.history,
    }
    path = save_bundle(trained, layout.models_dir, version, training)
    labels = release_notes[["pr_number", "is_bug"]].astype({"pr_number": "int64", "is_bug": bool})
    write_parquet(labels.reset_index(drop=True), path / TRAINING_LABELS_FILE)
    promoted_now = passed and config.promote
    if promoted_now:
        promote(layout.models_dir, version)
        context.log.info("promoted model %s to %s", version, layout.current_model_dir)
    else:
        failed = [gate.description for gate in gates if not gate.passed]
        context.log.warning("model %s saved but not promoted: %s", version,
                            "; ".join(failed) if failed else "promote is off")
    published = publish_model(layout, version, promoted=promoted_now)
    if published is not None:
        context.log.info("published model %s to %s%s", version, published,
                         " and pointed models/current.json at it" if promoted_now else "")
    validation = trained.metrics["validation"]
    context.log.info(
        "model %s trained on %s: validation precision %.3f, recall %.3f, F1 %.3f, ROC-AUC %.3f at threshold %.3f",
        version, trained.device, validation["precision"], validation["recall"], validation["f1"],
        validation["roc_auc"], trained.threshold)
    return dg.MaterializeResult(
        metadata={
            "status": "trained",
            "version": version,
            "path": dg.MetadataValue.path(str(path)),
            "device": trained.device,
            "threshold": trained.threshold,
            "validation_precision": validation["precision"],
            "validation_recall": validation["recall"],
            "validation_f1": validation["f1"],
            "validation_roc_auc": validation["roc_auc"],
            "baseline_f1": trained.metrics["baseline"]["f1"],
            "baseline_roc_auc": trained.metrics["baseline"]["roc_auc"],
            "label_features": trained.metrics["label_features"]["used"],
            "split": dg.MetadataValue.json(dataset.info),
            "feedback": dg.MetadataValue.json(feedback_counts),
            "config": dg.MetadataValue.json(model_config.as_dict()),
            "config_source": training["config_source"],
            "promoted": promoted_now,
            **({"published_to": dg.MetadataValue.path(str(published))} if published is not None else {}),
        },
        check_results=[
            dg.AssetCheckResult(check_name=CHECK_TRAINED, passed=True,
                                metadata={"training_rows": dataset.counts()["train"]}),
            *[dg.AssetCheckResult(check_name=gate.name, passed=gate.passed,
                                  description=gate.description,
                                  metadata={key: value for key, value in gate.figures.items() if value is not None})
              for gate in gates],
        ],
    )


def skipped_result(context: dg.AssetExecutionContext, error: InsufficientDataError) -> dg.MaterializeResult:
    """Report a skipped training: the current model stays, and the checks fail with the reason."""
    context.log.warning("training skipped, the current model (if any) stays in place: %s", error)
    status = SKIPPED_NO_TEXT if isinstance(error, InsufficientTextError) else SKIPPED_NO_DATA
    return dg.MaterializeResult(
        metadata={"status": status, "reason": str(error)},
        check_results=[
            dg.AssetCheckResult(check_name=CHECK_TRAINED, passed=False, metadata={"reason": str(error)}),
            *[dg.AssetCheckResult(check_name=name, passed=False, metadata={"reason": "no model was trained"})
              for name in (BEATS_BASELINE, NOT_WORSE_THAN_PROMOTED, ROC_AUC_HIGH_ENOUGH)],
        ],
    )


@dg.asset(group_name="model", deps=[CLASSIFIER], kinds={"matplotlib"})
def classifier_evaluation(context: dg.AssetExecutionContext, data_dir: DataDirResource) -> dg.MaterializeResult:
    """Evaluate the newest trained model on the validation notes, beside the linear baseline.

    Writes and shows the metrics, the confusion matrix, the per-release figures, and the ROC,
    precision-recall and calibration plots.
    """
    layout = data_dir.layout()
    event = context.instance.get_latest_materialization_event(dg.AssetKey(CLASSIFIER))
    metadata = event.asset_materialization.metadata if event and event.asset_materialization else {}
    if "version" not in metadata:
        reason = metadata["reason"].value if "reason" in metadata else "kind_bug_classifier was never materialized"
        context.log.warning("nothing to evaluate: the newest training saved no model (%s)", reason)
        return dg.MaterializeResult(metadata={"status": "no model", "reason": reason})
    version = metadata["version"].value
    model_dir = layout.models_dir / version
    metrics, validation = evaluation.load(model_dir)
    plots = evaluation.write_plots(model_dir, metrics, validation)
    context.log.info("wrote %s plots for model %s to %s", len(plots), version, model_dir / evaluation.EVALUATION_DIR)
    checks = metrics.get("checks", {})
    check_lines = "\n".join(f"- {'passed' if gate['passed'] else 'FAILED'}: {name}: {gate['description']}"
                            for name, gate in checks.items())
    return dg.MaterializeResult(metadata={
        "version": version,
        "split": (f"{metrics['split']['method']}: train {metrics['split']['releases'].get('train')}, "
                  f"validate {metrics['split']['releases'].get('validation')}"),
        "metrics": dg.MetadataValue.md(evaluation.metrics_table(metrics)),
        "confusion_matrix": dg.MetadataValue.md(
            evaluation.confusion_table(metrics["validation"]) + "\n\n" + chart_markdown(plots["confusion"])),
        "per_release": dg.MetadataValue.md(evaluation.per_release_table(metrics)),
        "roc_curve": dg.MetadataValue.md(chart_markdown(plots["roc"])),
        "precision_recall_curve": dg.MetadataValue.md(chart_markdown(plots["precision_recall"])),
        "calibration": dg.MetadataValue.md(chart_markdown(plots["calibration"])),
        "checks": dg.MetadataValue.md(check_lines or "no checks recorded"),
        "validation_f1": metrics["validation"]["f1"],
        "validation_roc_auc": metrics["validation"]["roc_auc"],
        "baseline_f1": metrics.get("baseline", {}).get("f1"),
        "folder": dg.MetadataValue.path(str(model_dir / evaluation.EVALUATION_DIR)),
    })
