"""The schedule and the sensors evaluated against a real Dagster test instance, and the redeploy job."""

import os
from datetime import UTC, datetime

import dagster as dg
import pytest
from dagster._core.test_utils import create_run_for_test

from k8s_analysis.automation import (RETRAIN_DATA_TAG, daily_export_schedule, model_promotion_sensor,
                                     new_labels_sensor, redeploy_job)
from k8s_analysis.assets import all_assets
from k8s_analysis.automation.decisions import count_label_changes
from k8s_analysis.jobs import EXPORT_TAGS, RETRAIN_JOB
from k8s_analysis.paths import DATA_DIR_ENV, DataLayout
from k8s_analysis.raw_store import RawIssueStore
from k8s_analysis.resources import DataDirResource
from k8s_analysis_tests.automation.test_decisions import checks, write_model, write_notes
from k8s_analysis_tests.export.test_export_cli import TOKEN, github_resources
from k8s_analysis_tests.fake_github import FakeGitHub, make_items
from k8s_analysis_tests.serving.running import broken_version, copy_version

SCHEDULED = datetime(2024, 5, 1, 2, 0, tzinfo=UTC)


@pytest.fixture()
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


@pytest.fixture()
def layout(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    monkeypatch.setenv("K8S_ANALYSIS_RETRAIN_THRESHOLD", "3")
    return DataLayout(tmp_path)


def evaluate_schedule(instance):
    return daily_export_schedule(dg.build_schedule_context(instance=instance, scheduled_execution_time=SCHEDULED))


def evaluate(sensor, instance, cursor=None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor)
    return sensor(context), context.cursor


# -- the daily export ----------------------------------------------------------------------------


def test_schedule_requests_one_export_per_tick(instance, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "ghp-schedule-test")

    request = evaluate_schedule(instance)

    assert isinstance(request, dg.RunRequest)
    assert request.run_key == "export-2024-05-01T02:00:00+00:00"


def test_schedule_skips_while_an_export_runs(instance, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "ghp-schedule-test")
    run = create_run_for_test(instance, job_name="export_issues", status=dg.DagsterRunStatus.STARTED,
                              tags=EXPORT_TAGS)

    skip = evaluate_schedule(instance)

    assert isinstance(skip, dg.SkipReason)
    assert skip.skip_message == (f"export run {run.run_id} is still STARTED; two exports never overlap, so this "
                                 "tick starts none")


def test_schedule_runs_again_after_a_failed_export(instance, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "ghp-schedule-test")
    create_run_for_test(instance, job_name="incremental_export_job", status=dg.DagsterRunStatus.FAILURE,
                        tags=EXPORT_TAGS)

    assert isinstance(evaluate_schedule(instance), dg.RunRequest)


def test_schedule_without_a_token_says_so(instance, monkeypatch):
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)

    skip = evaluate_schedule(instance)

    assert "GITHUB_TOKEN is not set in the daemon's environment" in skip.skip_message


def test_schedule_cron_defaults_to_two_in_the_morning():
    assert daily_export_schedule.cron_schedule == "0 2 * * *"
    assert daily_export_schedule.execution_timezone == "UTC"


# -- retraining ----------------------------------------------------------------------------------


def labelled(layout: DataLayout, new_notes: int) -> None:
    """A promoted model trained on notes 1-2, and a table with ``new_notes`` notes after them."""
    write_notes(layout, [(number, f"Fixed crash number {number}.", True) for number in range(1, 3 + new_notes)])
    write_model(layout, "v1", [(1, True), (2, True)])


def data_key(layout: DataLayout) -> str:
    return count_label_changes(layout).key


def test_retrain_below_the_threshold_skips_with_the_counts(instance, layout):
    labelled(layout, 2)

    skip, cursor = evaluate(new_labels_sensor, instance)

    assert isinstance(skip, dg.SkipReason)
    assert skip.skip_message == ("2 change(s) since model v1: 2 new labelled note(s), 0 note(s) whose kind/bug "
                                 "label changed, 0 bot feedback row(s); below the threshold of 3")
    assert cursor == data_key(layout)
    assert cursor.startswith("v1:")
    assert cursor.endswith(":0")


def test_retrain_at_the_threshold_requests_an_unpromoted_retrain(instance, layout):
    labelled(layout, 3)

    request, cursor = evaluate(new_labels_sensor, instance)

    assert isinstance(request, dg.RunRequest)
    key = data_key(layout)
    assert request.run_key == f"retrain-{key}-attempt-1"
    assert request.run_config == {"ops": {"kind_bug_classifier": {"config": {"promote": False}}}}
    assert request.tags[RETRAIN_DATA_TAG] == key
    assert cursor == key


def test_retrain_repeated_tick_is_harmless(instance, layout):
    labelled(layout, 3)
    first, cursor = evaluate(new_labels_sensor, instance)

    second, _ = evaluate(new_labels_sensor, instance, cursor)

    # The same run key: Dagster starts one run for both requests.
    assert second.run_key == first.run_key


def test_retrain_failed_run_gets_new_key(instance, layout):
    labelled(layout, 3)
    key = data_key(layout)
    create_run_for_test(instance, job_name=RETRAIN_JOB, status=dg.DagsterRunStatus.FAILURE,
                        tags={RETRAIN_DATA_TAG: key})

    request, cursor = evaluate(new_labels_sensor, instance, key)

    assert request.run_key == f"retrain-{key}-attempt-2"
    assert cursor == key


def test_retrain_skips_running_done_or_failing(instance, layout):
    labelled(layout, 3)
    tags = {RETRAIN_DATA_TAG: data_key(layout)}
    # Any retrain in progress makes the sensor wait, also one launched by hand without the data tag.
    running = create_run_for_test(instance, job_name=RETRAIN_JOB, status=dg.DagsterRunStatus.STARTED)
    skip, _ = evaluate(new_labels_sensor, instance)
    assert f"retrain run {running.run_id} is in progress" in skip.skip_message

    instance.delete_run(running.run_id)
    for _ in range(3):
        create_run_for_test(instance, job_name=RETRAIN_JOB, status=dg.DagsterRunStatus.FAILURE, tags=tags)
    skip, _ = evaluate(new_labels_sensor, instance)
    assert "retraining on them failed 3 times" in skip.skip_message

    succeeded = create_run_for_test(instance, job_name=RETRAIN_JOB, status=dg.DagsterRunStatus.SUCCESS, tags=tags)
    skip, _ = evaluate(new_labels_sensor, instance)
    assert f"run {succeeded.run_id} already retrained on these changes" in skip.skip_message


def test_retrain_rebuild_keeps_key(instance, layout):
    """A daily export that rewrites the tables with the same labels does not retrain again.

    A key taken from the table's write would change at each export, so the next export's
    rebuild would request a second retrain while the first one's model waits for promotion.
    """
    labelled(layout, 3)
    first, cursor = evaluate(new_labels_sensor, instance)
    create_run_for_test(instance, job_name=RETRAIN_JOB, status=dg.DagsterRunStatus.SUCCESS,
                        tags=first.tags)
    write_notes(layout, [(number, f"Fixed crash number {number}.", True) for number in range(1, 6)])
    instance.report_runless_asset_event(dg.AssetMaterialization("release_notes"))

    skip, after = evaluate(new_labels_sensor, instance, cursor)

    assert "already retrained on these changes" in skip.skip_message
    assert after == cursor


def test_retrain_changed_label_gets_new_key(instance, layout):
    labelled(layout, 3)
    first, cursor = evaluate(new_labels_sensor, instance)
    write_notes(layout, [(number, f"Fixed crash number {number}.", number != 5) for number in range(1, 6)])

    second, after = evaluate(new_labels_sensor, instance, cursor)

    assert second.run_key != first.run_key
    assert after.startswith("v1:")
    assert after != cursor


def test_retrain_without_a_table_waits(instance, layout):
    skip, cursor = evaluate(new_labels_sensor, instance)

    assert "no release_notes table" in skip.skip_message
    assert cursor is None


# -- promotion -----------------------------------------------------------------------------------


def trained_event(instance, version: str) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization("kind_bug_classifier",
                                                                metadata={"version": version}))


def trained_candidate(instance, layout, f1: float) -> None:
    """Promote v1 and record a newer v2, trained with validation F1 ``f1``, that passed its checks."""
    write_model(layout, "v1", None)
    write_model(layout, "v2", None, promote=False, metrics={"validation": {"f1": f1}, "checks": checks()})
    trained_event(instance, "v2")


def test_promotion_requests_the_better_version(instance, layout):
    trained_candidate(instance, layout, 0.78)

    request, cursor = evaluate(model_promotion_sensor, instance)

    assert request.run_key == "promote-v2-attempt-1"
    assert request.run_config == {"ops": {"promote_model": {"config": {"version": "v2"}}}}
    assert cursor == "v2"


def test_promotion_skips_the_worse_version(instance, layout):
    trained_candidate(instance, layout, 0.70)

    skip, _ = evaluate(model_promotion_sensor, instance)

    assert skip.skip_message == "model v2 has validation F1 0.700, below the promoted v1's 0.760 on the same notes"
    assert os.readlink(layout.current_model_dir) == "v1"


def test_promotion_without_a_trained_model(instance, layout):
    skip, _ = evaluate(model_promotion_sensor, instance)

    assert skip.skip_message == "no model has been trained yet"


def test_redeploy_job_promotes_and_keeps_the_previous(served_model_dir, tmp_path):
    models_dir = tmp_path / "models"
    copy_version(served_model_dir, models_dir, "v1")
    copy_version(served_model_dir, models_dir, "v2", bias_shift=0.5)
    (models_dir / "current").symlink_to("v1")

    result = redeploy_job.execute_in_process(
        run_config={"ops": {"promote_model": {"config": {"version": "v2"}}}},
        resources={"data_dir": DataDirResource(root=str(tmp_path))})

    assert result.success
    assert os.readlink(models_dir / "current") == "v2"
    assert os.readlink(models_dir / "previous") == "v1"


def test_redeploy_job_refuses_a_broken_version(served_model_dir, tmp_path):
    models_dir = tmp_path / "models"
    copy_version(served_model_dir, models_dir, "v1")
    broken_version(served_model_dir, models_dir, "v2")
    (models_dir / "current").symlink_to("v1")

    result = redeploy_job.execute_in_process(
        run_config={"ops": {"promote_model": {"config": {"version": "v2"}}}},
        resources={"data_dir": DataDirResource(root=str(tmp_path))}, raise_on_error=False)

    assert not result.success
    assert os.readlink(models_dir / "current") == "v1"


def test_instance_config_limits_exports_to_one_run(tmp_path):
    import yaml

    from k8s_analysis.cli import DAGSTER_YAML
    from k8s_analysis.jobs import EXPORT_TAG

    (tmp_path / "dagster.yaml").write_text(DAGSTER_YAML)
    with dg.DagsterInstance.from_config(str(tmp_path)) as configured:
        limits = configured.get_concurrency_config().run_queue_config.tag_concurrency_limits

    assert limits == [{"key": EXPORT_TAG, "limit": 1}]
    assert yaml.safe_load(DAGSTER_YAML)["telemetry"] == {"enabled": False}


# -- a failed delta window ----------------------------------------------------------------------


def test_export_retries_failed_window(tmp_path, monkeypatch):
    """The window starts from what was stored, a failed run moves nothing, and the retry is a new run.

    The export's cursor is the newest ``updated_at`` in the raw store, which only a stored item
    moves. The schedule's run key names the tick, so the next tick's request is a new run.
    """
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    with FakeGitHub(make_items(300)) as server, dg.instance_for_test() as instance:
        resources = github_resources(tmp_path, server, backoff_s=0.01, max_attempts=3)
        assert dg.materialize(all_assets, selection=["raw_issues"], resources=resources, instance=instance).success
        store = RawIssueStore(DataLayout(tmp_path).raw_issues_dir)
        stored_before = store.newest_updated_at()
        # Two items change inside the window, as in the case's data_updated_between.
        for number, updated_at in ((5, "2030-05-01T00:10:00Z"), (250, "2030-05-01T00:40:00Z")):
            server.upsert_item({**server.item(number), "title": f"edited {number}", "updated_at": updated_at})

        first = daily_export_schedule(dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2030, 5, 1, 1, 0, tzinfo=UTC)))
        server.inject(502, times=3, path_contains="/issues")  # every attempt of the first delta request
        failed = dg.materialize(all_assets, selection=["raw_issues"], resources=resources, instance=instance,
                                raise_on_error=False)
        failed_since = {request.query["since"][0] for request in server.requests if "since" in request.query}
        assert not failed.success
        assert store.newest_updated_at() == stored_before

        third = daily_export_schedule(dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2030, 5, 1, 1, 10, tzinfo=UTC)))
        server.requests.clear()
        done = dg.materialize(all_assets, selection=["raw_issues"], resources=resources, instance=instance)
        # The first delta request; the last one fetches the next window, to store its ETag.
        retried_since = [request.query["since"][0] for request in server.requests if "since" in request.query][0]

    assert done.success
    assert third.run_key != first.run_key
    assert failed_since == {retried_since}
    assert store.newest_updated_at() == datetime(2030, 5, 1, 0, 40, tzinfo=UTC)
    items = list(store.iter_items())
    assert len(items) == 300
    assert sorted(item["number"] for item in items) == list(range(1, 301))
    assert {item["title"] for item in items if item["number"] in (5, 250)} == {"edited 5", "edited 250"}
