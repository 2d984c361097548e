"""The Dagster code location: composes assets, checks, jobs and resources."""

import dagster as dg

from k8s_analysis.assets import all_asset_checks, all_assets
from k8s_analysis.jobs import export_issues, materialize_all, retrain_job
from k8s_analysis.resources import default_resources

defs = dg.Definitions(
    assets=all_assets,
    asset_checks=all_asset_checks,
    jobs=[materialize_all, export_issues, retrain_job],
    resources=default_resources(),
)
