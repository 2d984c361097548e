"""redeploy_job on Kubernetes: promote the version, then roll the predictor Deployment to it."""

import os

import pytest

from k8s_analysis.automation import redeploy_job
from k8s_analysis.deploy.kubernetes import DEPLOYMENT_ENV, MODEL_VERSION_ANNOTATION, ROLLOUT_TIMEOUT_ENV
from k8s_analysis.resources import DataDirResource
from k8s_analysis_tests.fake_kubernetes import Rollout
from k8s_analysis_tests.serving.running import copy_version

PREDICTOR = "k8s-analysis-predictor"


@pytest.fixture
def models(served_model_dir, tmp_path):
    """Return a models folder where v1 is promoted and v2 is a trained candidate."""
    models_dir = tmp_path / "models"
    copy_version(served_model_dir, models_dir, "v1")
    copy_version(served_model_dir, models_dir, "v2", bias_shift=0.5)
    (models_dir / "current").symlink_to("v1")
    return models_dir


def redeploy(data_dir, version: str = "v2"):
    return redeploy_job.execute_in_process(
        run_config={"ops": {"promote_model": {"config": {"version": version}}}},
        resources={"data_dir": DataDirResource(root=str(data_dir))}, raise_on_error=False)


def failure_message(result, node: str) -> str:
    """Return the message of the exception that failed the node (Dagster wraps it once)."""
    error = result.failure_data_for_node(node).error
    return (error.cause or error).message


def test_redeploy_rolls_the_deployment(cluster, models, monkeypatch):
    cluster.add_deployment(PREDICTOR, version="v1")
    monkeypatch.setenv(DEPLOYMENT_ENV, PREDICTOR)

    result = redeploy(models.parent)

    assert result.success
    assert os.readlink(models / "current") == "v2"
    template = cluster.deployment(PREDICTOR)["spec"]["template"]
    assert template["metadata"]["annotations"][MODEL_VERSION_ANNOTATION] == "v2"
    status = cluster.deployment(PREDICTOR)["status"]
    assert status["availableReplicas"] == status["updatedReplicas"] == 2
    [materialization] = [event for event in result.events_for_node("roll_out_predictor")
                         if event.event_type_value == "STEP_OUTPUT"]
    metadata = materialization.step_output_data.metadata
    assert metadata["rollout_version"].value == "v2"
    assert metadata["rollout_object"].value == f"default/{PREDICTOR}"


def test_redeploy_fails_when_rollout_stalls(cluster, models, monkeypatch):
    cluster.add_deployment(PREDICTOR, version="v1", rollout=Rollout.CRASH_LOOP)
    monkeypatch.setenv(DEPLOYMENT_ENV, PREDICTOR)
    monkeypatch.setenv(ROLLOUT_TIMEOUT_ENV, "1")

    result = redeploy(models.parent)

    assert not result.success
    message = failure_message(result, "roll_out_predictor")
    assert "k8s-analysis rollback" in message
    assert PREDICTOR in message
    # The promotion is kept, so `k8s-analysis rollback` is the way back.
    assert os.readlink(models / "current") == "v2"


def test_redeploy_checks_settings_before_promoting(cluster, models, monkeypatch):
    monkeypatch.setenv(DEPLOYMENT_ENV, PREDICTOR)
    monkeypatch.setenv(ROLLOUT_TIMEOUT_ENV, "soon")

    result = redeploy(models.parent)

    assert not result.success
    assert f"invalid {ROLLOUT_TIMEOUT_ENV}='soon'" in failure_message(result, "promote_model")
    assert os.readlink(models / "current") == "v1"
    assert cluster.writes() == []
