"""Model assets: the kind/bug classifier trained on the release_notes table."""

import hashlib
import json

import dagster as dg
import pandas as pd

from k8s_analysis.model.bundle import new_version_name, promote, save_bundle
from k8s_analysis.model.dataset import SplitConfig, build_dataset
from k8s_analysis.model.train import (
    InsufficientDataError,
    InsufficientTextError,
    ModelConfig,
    config_as_dict,
    train_classifier,
)
from k8s_analysis.resources import DataDirResource

CHECK_TRAINED = "trained_on_enough_text"
CHECK_BEATS_CHANCE = "beats_chance_on_test"
SKIPPED_NO_TEXT = "skipped: insufficient_text"
SKIPPED_NO_DATA = "skipped: insufficient_data"


class ClassifierConfig(dg.Config):
    """Knobs for one training run; the defaults are the ones used for the published model."""

    ngram_max: int = 2
    min_df: int = 2
    k_best: int = 20_000
    hidden_units: list[int] = [64]
    dropout: float = 0.2
    learning_rate: float = 1e-3
    epochs: int = 30
    batch_size: int = 64
    patience: int = 3
    seed: int = 0
    validation_share: float = 0.15
    test_share: float = 0.15
    promote: bool = True
    """Point data/models/current at the new version when its checks pass."""

    def to_model_config(self) -> ModelConfig:
        return ModelConfig(
            ngram_max=self.ngram_max, min_df=self.min_df, k_best=self.k_best,
            hidden_units=tuple(self.hidden_units), dropout=self.dropout,
            learning_rate=self.learning_rate, epochs=self.epochs, batch_size=self.batch_size,
            patience=self.patience, seed=self.seed,
        )


def data_fingerprint(frame: pd.DataFrame, config: ModelConfig) -> str:
    digest = hashlib.sha256(json.dumps(config_as_dict(config), sort_keys=True).encode())
    for text, label, split in frame[["clean_text", "is_bug", "split"]].itertuples(index=False):
        digest.update(f"{split}\t{int(label)}\t{text}\n".encode())
    return digest.hexdigest()


@dg.asset(
    group_name="model",
    kinds={"keras", "scikitlearn"},
    check_specs=[
        dg.AssetCheckSpec(CHECK_TRAINED, asset="kind_bug_classifier",
                          description="The notes gave a vocabulary and both classes, so a model was trained."),
        dg.AssetCheckSpec(CHECK_BEATS_CHANCE, asset="kind_bug_classifier",
                          description="ROC-AUC on the newest, held-back notes is above 0.5."),
    ],
)
def kind_bug_classifier(
    context: dg.AssetExecutionContext,
    config: ClassifierConfig,
    release_notes: pd.DataFrame,
    data_dir: DataDirResource,
) -> dg.MaterializeResult:
    """TF-IDF + SelectKBest + Keras MLP predicting whether a release note is kind/bug.

    Trained on the older notes, with early stopping and the decision threshold chosen on the
    next slice, and evaluated on the newest slice, which training never saw. Saved under
    data/models/<version>/ and promoted to data/models/current when it beats chance.
    """
    layout = data_dir.layout()
    model_config = config.to_model_config()
    dataset = build_dataset(release_notes, SplitConfig(config.validation_share, config.test_share))
    try:
        trained = train_classifier(dataset, model_config, log=context.log)
    except InsufficientDataError as error:
        return skipped_result(context, error)

    version = new_version_name(data_fingerprint(dataset.frame, model_config))
    training = {
        "config": {**config_as_dict(model_config), "validation_share": config.validation_share,
                   "test_share": config.test_share},
        "split": {"rule": "by PR number (time order), copies of one text kept in one split",
                  "counts": dataset.counts(),
                  "pr_number_ranges": split_ranges(dataset.frame)},
        "history": trained.history,
    }
    path = save_bundle(trained, layout.models_dir, version, training)
    test = trained.metrics["test"]
    passed = bool(test["roc_auc"] > 0.5)
    if passed and config.promote:
        promote(layout.models_dir, version)
        context.log.info("promoted model %s to %s", version, layout.current_model_dir)
    context.log.info("model %s trained on %s: test precision %.3f, recall %.3f, F1 %.3f, ROC-AUC %.3f",
                     version, trained.device, test["precision"], test["recall"], test["f1"], test["roc_auc"])
    return dg.MaterializeResult(
        metadata={
            "status": "trained",
            "version": version,
            "path": dg.MetadataValue.path(str(path)),
            "device": trained.device,
            "threshold": trained.threshold,
            "test_precision": test["precision"],
            "test_recall": test["recall"],
            "test_f1": test["f1"],
            "test_roc_auc": test["roc_auc"],
            "metrics": dg.MetadataValue.json(trained.metrics),
            "config": dg.MetadataValue.json(training["config"]),
            "promoted": passed and config.promote,
        },
        check_results=[
            dg.AssetCheckResult(check_name=CHECK_TRAINED, passed=True,
                                metadata={"training_rows": dataset.counts().get("train", 0)}),
            dg.AssetCheckResult(check_name=CHECK_BEATS_CHANCE, passed=passed,
                                metadata={"test_roc_auc": test["roc_auc"]}),
        ],
    )


def split_ranges(frame: pd.DataFrame) -> dict[str, list[int]]:
    grouped = frame.groupby("split")["pr_number"].agg(["min", "max"])
    return {name: [int(row["min"]), int(row["max"])] for name, row in grouped.iterrows()}


def skipped_result(context: dg.AssetExecutionContext, error: InsufficientDataError) -> dg.MaterializeResult:
    """Report a skipped training: the current model stays, and the check fails with the reason."""
    context.log.warning("training skipped, the current model (if any) stays in place: %s", error)
    status = SKIPPED_NO_TEXT if isinstance(error, InsufficientTextError) else SKIPPED_NO_DATA
    return dg.MaterializeResult(
        metadata={"status": status, "reason": str(error)},
        check_results=[
            dg.AssetCheckResult(check_name=CHECK_TRAINED, passed=False, metadata={"reason": str(error)}),
            dg.AssetCheckResult(check_name=CHECK_BEATS_CHANCE, passed=False,
                                metadata={"reason": "no model was trained"}),
        ],
    )
