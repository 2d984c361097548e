"""Keeping the data and the model fresh: the daily export schedule, two sensors and the redeploy job.

- ``daily_export_schedule`` runs ``incremental_export_job`` once a day (02:00 UTC, or the cron
  expression in ``K8S_ANALYSIS_EXPORT_CRON``), and skips a tick while another export runs.
- ``new_labels_sensor`` requests ``retrain_job`` once enough labels changed since the promoted
  model was trained (50, or ``K8S_ANALYSIS_RETRAIN_THRESHOLD``). The retrained model is not
  promoted by its run.
- ``model_promotion_sensor`` requests ``redeploy_job`` for a new version that passed its checks
  and is at least as good as the promoted one on the same validation notes.

A failed run is requested again at a later tick under a new run key (``-attempt-N``), because
Dagster drops a request whose run key it has seen. After ``MAX_ATTEMPTS`` failures the sensor
stops requesting it and gives the reason on its tick.
"""

import os
import warnings

import dagster as dg

# Dagster 1.13 passes `owners` on to SensorDefinition even when it is unset, here and each time
# it copies a sensor while loading the code, and every such call warns that the parameter is
# in beta. This project sets no owners, so the one message is silenced in processes that load it.
warnings.filterwarnings("ignore", message=r"Parameter `owners` of initializer `SensorDefinition",
                        category=dg.BetaWarning)

from k8s_analysis.automation.decisions import count_label_changes, promotion_decision
from k8s_analysis.deploy import RolloutSettings, roll_out
from k8s_analysis.deploy.kubernetes import DEPLOYMENT_ENV, INFERENCE_SERVICE_ENV
from k8s_analysis.jobs import EXPORT_TAG, EXPORT_TAGS, RETRAIN_JOB, incremental_export_job, retrain_job
from k8s_analysis.model.bundle import promote
from k8s_analysis.paths import DataLayout, resolve_data_dir
from k8s_analysis.resources import DataDirResource
from k8s_analysis.serving.models import load_checked
from k8s_analysis.sources.github import TOKEN_ENV
from k8s_analysis.storage import publish_model, table_exists

EXPORT_CRON_ENV = "K8S_ANALYSIS_EXPORT_CRON"
DEFAULT_EXPORT_CRON = "0 2 * * *"
RETRAIN_THRESHOLD_ENV = "K8S_ANALYSIS_RETRAIN_THRESHOLD"
DEFAULT_RETRAIN_THRESHOLD = 50
SENSOR_INTERVAL_ENV = "K8S_ANALYSIS_SENSOR_INTERVAL"
DEFAULT_SENSOR_INTERVAL_S = 300
MAX_ATTEMPTS = 3
# Tags that tie a run to the data it was requested for, so that a sensor can find its runs again.
RETRAIN_DATA_TAG = "k8s-analysis/retrain-data"
PROMOTED_VERSION_TAG = "k8s-analysis/promote-version"
REDEPLOY_JOB = "redeploy_job"
IN_PROGRESS = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
               dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


def _int_setting(name: str, default: int, minimum: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"invalid {name}={raw!r}: give a whole number (default {default})") from None
    if value < minimum:
        raise ValueError(f"invalid {name}={value}: give {minimum} or more (default {default})")
    return value


def export_cron() -> str:
    return os.environ.get(EXPORT_CRON_ENV) or DEFAULT_EXPORT_CRON


def retrain_threshold() -> int:
    return _int_setting(RETRAIN_THRESHOLD_ENV, DEFAULT_RETRAIN_THRESHOLD, 1)


def sensor_interval() -> int:
    return _int_setting(SENSOR_INTERVAL_ENV, DEFAULT_SENSOR_INTERVAL_S, 1)


def data_layout() -> DataLayout:
    return DataLayout(resolve_data_dir())


def in_progress_run(instance: dg.DagsterInstance, tags: dict[str, str] | None = None,
                    job_name: str | None = None) -> dg.RunRecord | None:
    """Return a queued or running run with all of ``tags`` and of ``job_name``, if there is one."""
    records = instance.get_run_records(dg.RunsFilter(tags=tags or {}, job_name=job_name, statuses=IN_PROGRESS),
                                       limit=1)
    return records[0] if records else None


def past_runs(instance: dg.DagsterInstance, tags: dict[str, str]) -> tuple[list[dg.RunRecord], list[dg.RunRecord]]:
    """Return the successful and the failed runs carrying ``tags``."""
    records = instance.get_run_records(dg.RunsFilter(tags=tags))
    succeeded = [record for record in records if record.dagster_run.status == dg.DagsterRunStatus.SUCCESS]
    failed = [record for record in records
              if record.dagster_run.status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)]
    return succeeded, failed


# -- the daily export -------------------------------------------------------------------------


@dg.schedule(job=incremental_export_job, cron_schedule=export_cron(), execution_timezone="UTC",
             description="Export what changed on GitHub every day and rebuild the tables and analyses. Skips a "
                         "tick while another export runs, or when GITHUB_TOKEN is not set.")
def daily_export_schedule(context: dg.ScheduleEvaluationContext):
    running = in_progress_run(context.instance, {EXPORT_TAG: EXPORT_TAGS[EXPORT_TAG]})
    if running is not None:
        reason = (f"export run {running.dagster_run.run_id} is still {running.dagster_run.status.value}; two "
                  "exports never overlap, so this tick starts none")
        context.log.info(reason)
        return dg.SkipReason(reason)
    if not os.environ.get(TOKEN_ENV):
        reason = f"{TOKEN_ENV} is not set in the daemon's environment, so there is no GitHub export to run"
        context.log.info(reason)
        return dg.SkipReason(reason)
    scheduled = context.scheduled_execution_time
    context.log.info("requesting the export scheduled for %s", scheduled.isoformat())
    return dg.RunRequest(run_key=f"export-{scheduled.isoformat()}")


# -- retraining -----------------------------------------------------------------------------


@dg.sensor(job=retrain_job, minimum_interval_seconds=sensor_interval(),
           description="Requests retrain_job once enough labels changed since the promoted model was trained: new "
                       "labelled notes, notes whose kind/bug label changed, and bot feedback rows.")
def new_labels_sensor(context: dg.SensorEvaluationContext):
    layout = data_layout()
    threshold = retrain_threshold()
    if not table_exists(layout.table_path("release_notes")):
        return dg.SkipReason(f"no release_notes table in {layout.tables_dir} yet; run the export or "
                             "`k8s-analysis run` first")
    # A table file is replaced only when its step succeeds. A failed export therefore leaves
    # the last good tables, and with them the same key.
    changes = count_label_changes(layout)
    data_key = changes.key
    if changes.total < threshold:
        reason = f"{changes.describe()}; below the threshold of {threshold}"
        context.log.info(reason)
        context.update_cursor(data_key)
        return dg.SkipReason(reason)

    tags = {RETRAIN_DATA_TAG: data_key}
    # The job name is a field of the run, not one of its tags.
    running = in_progress_run(context.instance, job_name=RETRAIN_JOB)
    if running is not None:
        return dg.SkipReason(f"{changes.describe()}; retrain run {running.dagster_run.run_id} is in progress")
    succeeded, failed = past_runs(context.instance, tags)
    if succeeded:
        return dg.SkipReason(f"{changes.describe()}; run {succeeded[0].dagster_run.run_id} already retrained on "
                             "these changes, and model_promotion_sensor judges its model")
    if len(failed) >= MAX_ATTEMPTS:
        return dg.SkipReason(f"{changes.describe()}; retraining on them failed {len(failed)} times (last run "
                             f"{failed[0].dagster_run.run_id}); fix the cause and launch retrain_job by hand")
    reason = f"{changes.describe()}; at or above the threshold of {threshold}, so retraining"
    context.log.info(reason)
    context.update_cursor(data_key)
    return dg.RunRequest(
        run_key=f"retrain-{data_key}-attempt-{len(failed) + 1}",
        run_config={"ops": {"kind_bug_classifier": {"config": {"promote": False}}}},
        tags={**tags, "k8s-analysis/reason": reason[:255]},
    )


# -- promotion --------------------------------------------------------------------------------


class PromoteConfig(dg.Config):
    version: str
    """The version folder under DATA_DIR/models to promote."""


@dg.op(description="Load the version, score its smoke test, and point models/current at it atomically. The "
                   "version it replaces stays as models/previous for `k8s-analysis rollback`.")
def promote_model(context: dg.OpExecutionContext, config: PromoteConfig, data_dir: DataDirResource) -> str:
    # A wrong rollout setting fails here, before models/current moves.
    RolloutSettings.from_environment()
    layout = data_dir.layout()
    folder = layout.models_dir / config.version
    predictor = load_checked(folder)
    current = layout.current_model_dir
    before = os.readlink(current) if current.is_symlink() else None
    promote(layout.models_dir, config.version)
    publish_model(layout, config.version, promoted=True)
    context.log.info("promoted model %s (threshold %.3f) in place of %s; a running prediction server and bot load "
                     "it within their reload interval", predictor.version, predictor.threshold, before or "none")
    return config.version


@dg.op(description="On Kubernetes, roll the prediction Deployment (or KServe InferenceService) to the promoted "
                   "version and wait until it is ready; fail the run when it does not become ready in time.")
def roll_out_predictor(context: dg.OpExecutionContext, version: str) -> None:
    result = roll_out(RolloutSettings.from_environment(), version, context.log)
    if result is None:
        context.log.info("neither %s nor %s is set, so there is no Kubernetes predictor to roll out; a local "
                         "server reloads the model by itself", DEPLOYMENT_ENV, INFERENCE_SERVICE_ENV)
        return
    context.add_output_metadata(result.as_metadata())


@dg.job(name=REDEPLOY_JOB, description="Promote a model version: models/current points at it, the prediction "
                                       "server and the bot reload it, and on Kubernetes the predictor is rolled out.")
def redeploy_job():
    roll_out_predictor(promote_model())


@dg.sensor(job=redeploy_job, minimum_interval_seconds=sensor_interval(),
           description="Requests redeploy_job for a newly trained version that passed its checks and is at least as "
                       "good as the promoted one on the same validation notes.")
def model_promotion_sensor(context: dg.SensorEvaluationContext):
    event = context.instance.get_latest_materialization_event(dg.AssetKey("kind_bug_classifier"))
    if event is None:
        return dg.SkipReason("no model has been trained yet")
    metadata = event.asset_materialization.metadata
    version_entry = metadata.get("version")
    if version_entry is None:
        status = metadata.get("status")
        return dg.SkipReason(f"the last training produced no model ({status.value if status else 'no status'})")
    version = str(version_entry.value)
    decision = promotion_decision(data_layout().models_dir, version)
    context.update_cursor(version)
    if not decision.promote:
        context.log.info(decision.reason)
        return dg.SkipReason(decision.reason)
    tags = {PROMOTED_VERSION_TAG: version}
    running = in_progress_run(context.instance, tags)
    if running is not None:
        return dg.SkipReason(f"{decision.reason}; promotion run {running.dagster_run.run_id} is in progress")
    _, failed = past_runs(context.instance, tags)
    if len(failed) >= MAX_ATTEMPTS:
        return dg.SkipReason(f"{decision.reason}, but promoting it failed {len(failed)} times (last run "
                             f"{failed[0].dagster_run.run_id}); see that run, or promote by hand")
    context.log.info(decision.reason)
    return dg.RunRequest(run_key=f"promote-{version}-attempt-{len(failed) + 1}",
                         run_config={"ops": {"promote_model": {"config": {"version": version}}}},
                         tags={**tags, "k8s-analysis/reason": decision.reason[:255]})


schedules = [daily_export_schedule]
sensors = [new_labels_sensor, model_promotion_sensor]
jobs = [redeploy_job]
