"""Load the chart's dagster.yaml into a real Dagster instance, and build the pods its run launcher creates.

The instance tests render the chart against a throwaway PostgreSQL server on 127.0.0.1, load the
rendered dagster.yaml, materialize an asset in process and read the run back through a second
instance. K8sRunLauncher with ``load_incluster_config: true`` needs a cluster, so its section is
checked twice: the rendered config against the launcher's config schema, and a copy with in-cluster
loading off and a local kubeconfig that is never contacted, to construct the launcher. From that
launcher the run pod's Job and the GPU training step's Job are built as dagster-k8s would build
them, and validated against the Kubernetes schemas.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import kubernetes_validate
import psycopg2
import pytest
import yaml
from dagster._config import process_config
from dagster._core.storage.dagster_run import DagsterRun
from dagster_k8s import K8sRunLauncher
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import UserDefinedDagsterK8sConfig, construct_dagster_k8s_job
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage
from kubernetes.client import ApiClient

from k8s_analysis_tests.helm.test_chart import (
    FULLNAME, GPU, IMAGE, KUBERNETES_VERSION, NAMESPACE, Render, render_values, values_file,
)
from k8s_analysis_tests.postgres import PostgresServer, running_postgres

RUN_ID = "6a1f0c2e-0000-4000-8000-000000000001"


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


@pytest.fixture
def dagster_home(postgres, tmp_path, monkeypatch) -> Path:
    """A DAGSTER_HOME holding the chart's dagster.yaml, rendered for the test server and a local data folder."""
    render = render_values({
        "postgresql": {"host": postgres.host, "port": postgres.port, "username": postgres.username,
                       "database": postgres.database},
        "data": {"mountPath": str(tmp_path / "data")},
    })
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(render.get("ConfigMap", f"{FULLNAME}-dagster-instance")["data"]["dagster.yaml"])
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", postgres.password)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


@dg.asset
def release_note_count() -> int:
    return 3


def test_instance_stores_in_postgres(dagster_home):
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
        assert instance.get_concurrency_config().run_queue_config.tag_concurrency_limits == [
            {"key": "k8s-analysis/github-export", "limit": 1}]
        assert instance.telemetry_enabled is False
        assert instance.storage_directory() == str(dagster_home.parent / "data" / "dagster_home" / "storage")


def test_materialization_read_back_from_postgres(dagster_home, postgres):
    with dg.DagsterInstance.get() as writer:
        result = dg.materialize([release_note_count], instance=writer)
    assert result.success

    # A second instance object shares nothing with the first but the database.
    with dg.DagsterInstance.from_config(str(dagster_home)) as reader:
        run = reader.get_run_by_id(result.run_id)
        materialization = reader.get_latest_materialization_event(dg.AssetKey("release_note_count"))

    assert run is not None
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert materialization is not None
    assert materialization.run_id == result.run_id
    with psycopg2.connect(host=postgres.host, port=postgres.port, user=postgres.username,
                          password=postgres.password, dbname=postgres.database) as connection:
        with connection.cursor() as cursor:
            cursor.execute("SELECT status FROM runs WHERE run_id = %s", (result.run_id,))
            assert cursor.fetchall() == [("SUCCESS",)]
    connection.close()
    # The step output went to the data volume, where another pod's step would read it.
    assert (dagster_home.parent / "data" / "dagster_home" / "storage" / "release_note_count").is_file()


# --- the run launcher section ---


def launcher_config(render: Render) -> dict:
    return yaml.safe_load(render.get("ConfigMap", f"{FULLNAME}-dagster-instance")["data"]["dagster.yaml"])[
        "run_launcher"]["config"]


def test_launcher_config_matches_schema():
    rendered = launcher_config(render_values({}))

    processed = process_config(K8sRunLauncher.config_type(), rendered)

    assert processed.success, processed.errors
    assert processed.value["load_incluster_config"] is True


def write_kubeconfig(path: Path) -> Path:
    """Write a kubeconfig for a local API server that the tests never contact."""
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "test", "user": {"token": "not-a-real-token"}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
    }))
    return path


def build_launcher(render: Render, tmp_path: Path) -> K8sRunLauncher:
    """Construct the rendered launcher, with in-cluster loading swapped for a local kubeconfig."""
    processed = process_config(K8sRunLauncher.config_type(), launcher_config(render))
    assert processed.success, processed.errors
    config = {**processed.value, "load_incluster_config": False,
              "kubeconfig_file": str(write_kubeconfig(tmp_path / "kubeconfig"))}
    return K8sRunLauncher.from_config_value(None, config)


def job_manifest(launcher: K8sRunLauncher, context: K8sContainerContext, name: str, component: str) -> dict:
    """Build the Job dagster-k8s would create for ``context``, as a Kubernetes manifest."""
    job_config = context.get_k8s_job_config(job_image=None, run_launcher=launcher)
    job = construct_dagster_k8s_job(job_config, args=["dagster", "api", "execute_run"], job_name=name,
                                    user_defined_k8s_config=context.run_k8s_config, component=component)
    return ApiClient().sanitize_for_serialization(job)


def test_constructed_launcher_settings(tmp_path):
    launcher = build_launcher(render_values({}), tmp_path)

    assert launcher.job_image == IMAGE
    assert launcher.job_namespace == NAMESPACE
    assert launcher.service_account_name == FULLNAME
    assert launcher.instance_config_map == f"{FULLNAME}-dagster-instance"
    assert launcher.env_config_maps == [f"{FULLNAME}-env"]
    assert launcher.env_secrets == []
    assert launcher.postgres_password_secret is None


def test_run_and_training_step_jobs(tmp_path):
    values = values_file("gpu-values.yaml") | {"storage": {"credentialsSecret": "k8s-analysis-s3"}}
    render = render_values(values)
    launcher = build_launcher(render, tmp_path)
    run = DagsterRun(job_name="export_job", run_id=RUN_ID)
    run_context = K8sContainerContext.create_for_run(run, launcher, include_run_tags=True)
    # The step executor merges the training step's dagster-k8s/config tag over the run's context.
    training = json.loads(render.env_data()["K8S_ANALYSIS_TRAINING_K8S_CONFIG"])
    step_tag = K8sContainerContext(run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(training))
    step_context = run_context.merge(step_tag)

    run_job = job_manifest(launcher, run_context, "dagster-run-6a1f0c2e", "run_worker")
    step_job = job_manifest(launcher, step_context, "dagster-step-6a1f0c2e", "step_worker")

    for job in (run_job, step_job):
        assert kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True) == "1.32"
        pod = job["spec"]["template"]["spec"]
        container = pod["containers"][0]
        env = {entry["name"]: entry for entry in container["env"]}
        assert env["DAGSTER_PG_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "k8s-analysis-postgresql",
                                                                         "key": "password"}
        assert env["GITHUB_TOKEN"]["valueFrom"]["secretKeyRef"]["optional"] is True
        assert container["envFrom"] == [{"configMapRef": {"name": f"{FULLNAME}-env"}},
                                        {"secretRef": {"name": "k8s-analysis-s3"}}]
        assert {"name": "data", "mountPath": "/data"} in container["volumeMounts"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["resources"]["requests"] == {"cpu": "500m", "memory": "2Gi"}
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["serviceAccountName"] == FULLNAME

    run_pod = run_job["spec"]["template"]["spec"]
    step_pod = step_job["spec"]["template"]["spec"]
    assert run_pod["containers"][0]["image"] == IMAGE
    assert "limits" not in run_pod["containers"][0]["resources"]
    assert "nodeSelector" not in run_pod
    assert "tolerations" not in run_pod
    gpu = values["training"]["gpu"]
    assert step_pod["containers"][0]["image"] == "ghcr.io/k8s-analysis/k8s-analysis:0.1.0-gpu"
    assert step_pod["containers"][0]["resources"]["limits"] == {GPU: "2"}
    assert step_pod["nodeSelector"] == gpu["nodeSelector"]
    assert step_pod["tolerations"] == gpu["tolerations"]
