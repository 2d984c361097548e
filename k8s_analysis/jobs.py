"""Jobs: the main job materializes every asset and runs every check."""

import dagster as dg

MAIN_JOB = "materialize_all"

materialize_all = dg.define_asset_job(
    MAIN_JOB,
    selection=dg.AssetSelection.all(),
    description="Import what the sources hold, rebuild every table and retrain the classifier.",
)
