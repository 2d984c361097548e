"""Jobs of the code location.

The main job materializes every asset, and the export job refreshes the raw store. The
incremental export job refreshes it and rebuilds every table and analysis from it. The
retrain job trains, checks and evaluates the classifier on the stored tables, and the
redeploy job (in ``automation``) promotes a model version.
"""

import dagster as dg

MAIN_JOB = "materialize_all"

materialize_all = dg.define_asset_job(
    MAIN_JOB,
    selection=dg.AssetSelection.all(),
    description="Import what the sources hold, rebuild every table and retrain the classifier.",
)

EXPORT_JOB = "export_issues"
# Runs with this tag share the raw store and GitHub's rate budget. The run queue lets one of
# them run at a time (``concurrency.runs.tag_concurrency_limits`` in dagster.yaml), and the
# schedule skips a tick while one is in progress.
EXPORT_TAG = "k8s-analysis/github-export"
EXPORT_TAGS = {EXPORT_TAG: "raw_issues"}

export_issues = dg.define_asset_job(
    EXPORT_JOB,
    selection=dg.AssetSelection.assets("raw_issues"),
    tags=EXPORT_TAGS,
    description="Bring the raw store up to date from the issue source (a live export when GITHUB_TOKEN is set).",
)

INCREMENTAL_EXPORT_JOB = "incremental_export_job"

incremental_export_job = dg.define_asset_job(
    INCREMENTAL_EXPORT_JOB,
    selection=dg.AssetSelection.assets("raw_issues").downstream() - dg.AssetSelection.groups("model"),
    tags=EXPORT_TAGS,
    description="Export what changed on GitHub since the newest stored item (a full export the first time), then "
                "rebuild every table and analysis. The model is retrained by new_labels_sensor, not here.",
)

RETRAIN_JOB = "retrain_job"

retrain_job = dg.define_asset_job(
    RETRAIN_JOB,
    selection=dg.AssetSelection.assets("kind_bug_classifier", "classifier_evaluation"),
    description="Retrain the kind/bug classifier on the stored release_notes table, check it and evaluate it.",
)
