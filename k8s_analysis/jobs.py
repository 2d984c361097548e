"""Jobs of the code location.

The main job materializes every asset, and the export job refreshes the raw store. The retrain
job trains, checks and evaluates the classifier on the stored tables.
"""

import dagster as dg

MAIN_JOB = "materialize_all"

materialize_all = dg.define_asset_job(
    MAIN_JOB,
    selection=dg.AssetSelection.all(),
    description="Import what the sources hold, rebuild every table and retrain the classifier.",
)

EXPORT_JOB = "export_issues"

export_issues = dg.define_asset_job(
    EXPORT_JOB,
    selection=dg.AssetSelection.assets("raw_issues"),
    description="Bring the raw store up to date from the issue source (a live export when GITHUB_TOKEN is set).",
)

RETRAIN_JOB = "retrain_job"

retrain_job = dg.define_asset_job(
    RETRAIN_JOB,
    selection=dg.AssetSelection.assets("kind_bug_classifier", "classifier_evaluation"),
    description="Retrain the kind/bug classifier on the stored release_notes table, check it and evaluate it.",
)
