"""The Dagster code location: composes assets, checks, jobs and resources."""

import dagster as dg

from k8s_analysis import automation
from k8s_analysis.assets import all_asset_checks, all_assets
from k8s_analysis.execution import executor_from_environment
from k8s_analysis.jobs import export_issues, incremental_export_job, materialize_all, retrain_job
from k8s_analysis.resources import default_resources

defs = dg.Definitions(
    assets=all_assets,
    asset_checks=all_asset_checks,
    jobs=[materialize_all, export_issues, incremental_export_job, retrain_job, *automation.jobs],
    schedules=automation.schedules,
    sensors=automation.sensors,
    resources=default_resources(),
    executor=executor_from_environment(),
)
