"""Jobs: the main job materializes every asset; the export job refreshes the raw store."""

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
