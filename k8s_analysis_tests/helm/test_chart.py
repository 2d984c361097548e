"""Render, lint and validate the Helm chart offline, and check what its manifests promise.

helm-python-sdk renders the chart with Helm's own engine, as ``helm template`` would, and
kubernetes-validate checks every rendered object against the Kubernetes schemas with unknown
fields rejected. No cluster and no helm binary are involved. Three value sets are rendered:
the defaults, ci/gpu-values.yaml, and FULL_VALUES, which turns every optional part on.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import helm_python as helm
import pytest
import yaml

from k8s_analysis.cli import DAGSTER_YAML

CHART = Path(__file__).resolve().parents[2] / "helm" / "k8s-analysis"
RELEASE = "demo"
NAMESPACE = "analysis"
FULLNAME = "demo-k8s-analysis"
IMAGE = "ghcr.io/k8s-analysis/k8s-analysis:0.1.0"
DAGSTER_HOME = "/opt/dagster/dagster_home"
KUBERNETES_VERSION = "1.32.0"
GPU = "nvidia.com/gpu"

FULL_VALUES = {
    "image": {"pullSecrets": ["ghcr-pull"]},
    "github": {"repository": "kubernetes/enhancements", "apiUrl": "https://github.example.com/api/v3"},
    "storage": {
        "url": "s3://k8s-analysis/prod",
        "options": {"client_kwargs": {"endpoint_url": "http://minio.storage:9000"}},
        "credentialsSecret": "k8s-analysis-s3",
    },
    "predictor": {"autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 6,
                                  "targetCPUUtilizationPercentage": 60}},
    "redeploy": {"kserve": {"enabled": True, "inferenceService": "kind-bug", "canaryPercent": 25}},
    "bot": {
        "enabled": True,
        "dryRun": True,
        "ingress": {"enabled": True, "className": "nginx", "host": "hooks.example.com",
                    "tls": {"secretName": "hooks-tls"}},
    },
}
CASES = ("default", "gpu", "full")


def values_file(name: str) -> dict:
    return helm.values_from_yaml((CHART / "ci" / name).read_text())


def case_values(case: str) -> dict:
    if case == "gpu":
        return values_file("gpu-values.yaml")
    if case == "full":
        return FULL_VALUES
    return {}


@dataclass
class Render:
    """One rendered release: the manifests by template path and every object parsed from them."""

    values: dict
    manifests: dict[str, str]
    objects: list[dict]

    def of_kind(self, kind: str) -> list[dict]:
        return [item for item in self.objects if item["kind"] == kind]

    def get(self, kind: str, name: str) -> dict:
        found = [item for item in self.of_kind(kind) if item["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} named {name}, found {len(found)}"
        return found[0]

    def names(self, kind: str) -> set[str]:
        return {item["metadata"]["name"] for item in self.of_kind(kind)}

    def dagster_yaml(self) -> dict:
        return yaml.safe_load(self.get("ConfigMap", f"{FULLNAME}-dagster-instance")["data"]["dagster.yaml"])

    def env_data(self) -> dict[str, str]:
        return self.get("ConfigMap", f"{FULLNAME}-env")["data"]


def render_values(values: dict) -> Render:
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE)
    objects = []
    for path, text in manifests.items():
        if path.endswith(".yaml"):
            objects.extend(item for item in yaml.safe_load_all(text) if item)
    return Render(values, manifests, objects)


@cache
def render_case(case: str) -> Render:
    return render_values(case_values(case))


def pod_specs(render: Render) -> Iterator[tuple[str, dict]]:
    for deployment in render.of_kind("Deployment"):
        yield deployment["metadata"]["name"], deployment["spec"]["template"]["spec"]


def containers(render: Render) -> Iterator[tuple[str, dict]]:
    for name, spec in pod_specs(render):
        for container in spec.get("initContainers", []) + spec["containers"]:
            yield name, container


def deployment_container(render: Render, name: str) -> dict:
    spec = render.get("Deployment", name)["spec"]["template"]["spec"]
    assert len(spec["containers"]) == 1
    return spec["containers"][0]


def env_of(container: dict) -> dict[str, dict]:
    return {entry["name"]: entry for entry in container.get("env", [])}


def secret_key_ref(container: dict, variable: str) -> dict:
    return env_of(container)[variable]["valueFrom"]["secretKeyRef"]


# --- lint and schema validation of the manifests ---


@pytest.mark.parametrize("case", CASES)
def test_lint_reports_no_problems(case):
    report = helm.lint(CHART, case_values(case), strict=True, namespace=NAMESPACE)

    assert report["total_charts_linted"] == 1
    assert report["errors"] == []
    # Severity 2 is a warning and 3 an error. The only info message (1) is the missing chart icon.
    assert [message for message in report["messages"] if message["severity"] >= 2] == []


@pytest.mark.parametrize("case", CASES)
def test_manifests_pass_kubernetes_validate(case, tmp_path):
    render = render_case(case)
    files = []
    for path, text in render.manifests.items():
        if path.endswith(".yaml") and text.strip():
            target = tmp_path / Path(path).name
            target.write_text(text)
            files.append(str(target))
    command = [str(Path(sys.executable).parent / "kubernetes-validate"), "--strict",
               "-k", KUBERNETES_VERSION, *files]

    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "ERROR" not in output
    # The tool only warns about a kind it has no schema for, and this chart uses no such kind.
    assert "WARN" not in output
    assert output.count(" passed for resource ") == len(render.objects)


# --- containers, commands and probes ---


@pytest.mark.parametrize("case", CASES)
def test_every_container_runs_the_chart_image(case):
    render = render_case(case)

    images = {container["image"] for _, container in containers(render)}

    assert images == {IMAGE}
    launcher = render.dagster_yaml()["run_launcher"]["config"]
    assert launcher["job_image"] == IMAGE
    user_code = deployment_container(render, f"{FULLNAME}-user-code")
    assert env_of(user_code)["DAGSTER_CURRENT_IMAGE"]["value"] == IMAGE


@pytest.mark.parametrize("case", CASES)
def test_dagster_commands(case):
    render = render_case(case)
    workspace = f"{DAGSTER_HOME}/workspace.yaml"

    webserver = deployment_container(render, f"{FULLNAME}-dagster-webserver")
    daemon = deployment_container(render, f"{FULLNAME}-dagster-daemon")
    user_code = deployment_container(render, f"{FULLNAME}-user-code")

    assert webserver["command"] == ["dagster-webserver", "-h", "0.0.0.0", "-p", "3000", "-w", workspace]
    assert daemon["command"] == ["dagster-daemon", "run", "-w", workspace]
    assert user_code["command"] == ["dagster", "api", "grpc", "-m", "k8s_analysis.definitions",
                                    "-h", "0.0.0.0", "-p", "3030"]


@pytest.mark.parametrize("case", CASES)
def test_server_and_bot_commands(case):
    render = render_case(case)

    predictor = deployment_container(render, f"{FULLNAME}-predictor")

    assert predictor["command"] == ["k8s-analysis", "serve", "--host", "0.0.0.0", "--port", "8080"]
    if case == "full":
        bot = deployment_container(render, f"{FULLNAME}-bot")
        assert bot["command"] == ["k8s-analysis", "bot", "--host", "0.0.0.0", "--port", "8888",
                                  "--api-url", "https://github.example.com/api/v3", "--dry-run"]


def test_bot_without_dry_run():
    render = render_values({"bot": {"enabled": True}})

    bot = deployment_container(render, f"{FULLNAME}-bot")

    assert bot["command"] == ["k8s-analysis", "bot", "--host", "0.0.0.0", "--port", "8888"]


def probe_target(container: dict, probe: str) -> tuple[str, int]:
    """Return the probe's HTTP path and the number of the container port it names."""
    http_get = container[probe]["httpGet"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    return http_get["path"], ports[http_get["port"]]


@pytest.mark.parametrize("case", CASES)
def test_http_probes(case):
    render = render_case(case)
    webserver = deployment_container(render, f"{FULLNAME}-dagster-webserver")
    predictor = deployment_container(render, f"{FULLNAME}-predictor")

    assert probe_target(webserver, "readinessProbe") == ("/server_info", 3000)
    assert probe_target(webserver, "livenessProbe") == ("/server_info", 3000)
    assert probe_target(predictor, "readinessProbe") == ("/v2/health/ready", 8080)
    assert probe_target(predictor, "livenessProbe") == ("/v2/health/live", 8080)
    if case == "full":
        bot = deployment_container(render, f"{FULLNAME}-bot")
        assert probe_target(bot, "readinessProbe") == ("/healthz", 8888)
        assert probe_target(bot, "livenessProbe") == ("/healthz", 8888)


@pytest.mark.parametrize("case", CASES)
def test_user_code_readiness_checks_grpc(case):
    user_code = deployment_container(render_case(case), f"{FULLNAME}-user-code")

    assert user_code["readinessProbe"]["exec"]["command"] == ["dagster", "api", "grpc-health-check", "-p", "3030"]
    assert user_code["ports"] == [{"name": "grpc", "containerPort": 3030, "protocol": "TCP"}]


# --- Secrets: referenced by name and key, never created ---


@pytest.mark.parametrize("case", CASES)
def test_chart_creates_no_secrets(case):
    assert render_case(case).of_kind("Secret") == []


@pytest.mark.parametrize("case", CASES)
def test_dagster_pods_read_secrets_by_key(case):
    render = render_case(case)
    pg_password = {"name": "k8s-analysis-postgresql", "key": "password"}
    github_token = {"name": "k8s-analysis-github", "key": "token", "optional": True}

    for component in ("dagster-webserver", "dagster-daemon", "user-code"):
        container = deployment_container(render, f"{FULLNAME}-{component}")
        assert secret_key_ref(container, "DAGSTER_PG_PASSWORD") == pg_password, component
        assert env_of(container)["DAGSTER_HOME"]["value"] == DAGSTER_HOME, component
    for component in ("dagster-daemon", "user-code"):
        container = deployment_container(render, f"{FULLNAME}-{component}")
        assert secret_key_ref(container, "GITHUB_TOKEN") == github_token, component
    webserver = deployment_container(render, f"{FULLNAME}-dagster-webserver")
    assert "GITHUB_TOKEN" not in env_of(webserver)


@pytest.mark.parametrize("case", CASES)
def test_run_pods_read_secrets_by_key(case):
    launcher = render_case(case).dagster_yaml()["run_launcher"]["config"]

    run_env = launcher["run_k8s_config"]["container_config"]["env"]
    env = {entry["name"]: entry["valueFrom"]["secretKeyRef"] for entry in run_env}

    assert env == {
        "DAGSTER_PG_PASSWORD": {"name": "k8s-analysis-postgresql", "key": "password"},
        "GITHUB_TOKEN": {"name": "k8s-analysis-github", "key": "token", "optional": True},
    }
    # dagster-k8s would read this Secret's fixed key "postgresql-password" instead.
    assert "postgres_password_secret" not in launcher


def test_bot_requires_its_secrets():
    bot = deployment_container(render_case("full"), f"{FULLNAME}-bot")

    assert secret_key_ref(bot, "GITHUB_TOKEN") == {"name": "k8s-analysis-github", "key": "token"}
    assert secret_key_ref(bot, "GITHUB_WEBHOOK_SECRET") == {"name": "k8s-analysis-webhook", "key": "secret"}


def test_secret_names_and_keys_follow_values():
    render = render_values({
        "postgresql": {"passwordSecret": {"name": "pg", "key": "pw"}},
        "github": {"tokenSecret": {"name": "gh", "key": "pat"}},
        "bot": {"enabled": True, "webhookSecret": {"name": "hook", "key": "hmac"}},
    })

    daemon = deployment_container(render, f"{FULLNAME}-dagster-daemon")
    bot = deployment_container(render, f"{FULLNAME}-bot")
    run_env = render.dagster_yaml()["run_launcher"]["config"]["run_k8s_config"]["container_config"]["env"]

    assert secret_key_ref(daemon, "DAGSTER_PG_PASSWORD") == {"name": "pg", "key": "pw"}
    assert secret_key_ref(daemon, "GITHUB_TOKEN") == {"name": "gh", "key": "pat", "optional": True}
    assert secret_key_ref(bot, "GITHUB_WEBHOOK_SECRET") == {"name": "hook", "key": "hmac"}
    assert run_env[0]["valueFrom"]["secretKeyRef"] == {"name": "pg", "key": "pw"}


def test_storage_credentials_load_into_every_pod():
    render = render_case("full")
    credentials = {"secretRef": {"name": "k8s-analysis-s3"}}

    for name, container in containers(render):
        assert credentials in container["envFrom"], name
    assert render.dagster_yaml()["run_launcher"]["config"]["env_secrets"] == ["k8s-analysis-s3"]
    assert render_case("default").dagster_yaml()["run_launcher"]["config"]["env_secrets"] == []


# --- dagster.yaml and workspace.yaml ---


def test_dagster_yaml_stores_in_postgres():
    render = render_values({"postgresql": {"host": "db.internal", "port": 6432, "username": "pipeline",
                                           "database": "analysis"}})

    storage = render.dagster_yaml()["storage"]

    assert storage == {"postgres": {"postgres_db": {
        "username": "pipeline",
        "password": {"env": "DAGSTER_PG_PASSWORD"},
        "hostname": "db.internal",
        "db_name": "analysis",
        "port": 6432,
        "scheme": "postgresql+psycopg2",
    }}}


@pytest.mark.parametrize("case", CASES)
def test_dagster_yaml_password_from_env(case):
    database = render_case(case).dagster_yaml()["storage"]["postgres"]["postgres_db"]

    assert database["password"] == {"env": "DAGSTER_PG_PASSWORD"}
    assert database["hostname"] == "k8s-analysis-postgresql"
    assert database["port"] == 5432


@pytest.mark.parametrize("case", CASES)
def test_dagster_yaml_keeps_local_run_queue_and_telemetry(case):
    instance = render_case(case).dagster_yaml()
    local = yaml.safe_load(DAGSTER_YAML)

    assert instance["run_coordinator"] == {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator"}
    assert instance["concurrency"] == local["concurrency"]
    assert instance["telemetry"] == local["telemetry"] == {"enabled": False}


def test_dagster_yaml_keeps_step_outputs_on_data_volume():
    instance = render_values({"data": {"mountPath": "/mnt/analysis"}}).dagster_yaml()

    assert instance["local_artifact_storage"]["config"] == {"base_dir": "/mnt/analysis/dagster_home"}
    assert instance["compute_logs"]["config"] == {"base_dir": "/mnt/analysis/dagster_home/storage"}


@pytest.mark.parametrize("case", CASES)
def test_run_launcher_settings(case):
    render = render_case(case)
    instance_map = f"{FULLNAME}-dagster-instance"

    launcher = render.dagster_yaml()["run_launcher"]

    assert (launcher["module"], launcher["class"]) == ("dagster_k8s", "K8sRunLauncher")
    config = launcher["config"]
    assert config["load_incluster_config"] is True
    assert config["job_image"] == IMAGE
    assert config["image_pull_policy"] == "IfNotPresent"
    assert config["service_account_name"] == FULLNAME
    assert render.names("ServiceAccount") == {FULLNAME}
    assert config["job_namespace"] == NAMESPACE
    assert config["dagster_home"] == DAGSTER_HOME
    assert config["instance_config_map"] == instance_map
    assert config["env_config_maps"] == [f"{FULLNAME}-env"]
    assert config["volumes"][0] == {"name": "data", "persistentVolumeClaim": {"claimName": f"{FULLNAME}-data"}}
    assert {"name": "dagster-instance", "mountPath": f"{DAGSTER_HOME}/dagster.yaml",
            "subPath": "dagster.yaml"} in config["volume_mounts"]
    assert config["run_k8s_config"]["container_config"]["resources"] == {"requests": {"cpu": "500m", "memory": "2Gi"}}
    assert config["run_k8s_config"]["pod_spec_config"]["securityContext"]["runAsUser"] == 10001


def test_run_launcher_passes_image_pull_secrets():
    render = render_case("full")

    launcher = render.dagster_yaml()["run_launcher"]["config"]

    assert launcher["image_pull_secrets"] == [{"name": "ghcr-pull"}]
    for name, spec in pod_specs(render):
        assert spec["imagePullSecrets"] == [{"name": "ghcr-pull"}], name


def test_workspace_points_at_user_code_service():
    render = render_values({"dagster": {"userCode": {"port": 4000}}})
    workspace = yaml.safe_load(render.get("ConfigMap", f"{FULLNAME}-dagster-instance")["data"]["workspace.yaml"])

    server = workspace["load_from"][0]["grpc_server"]

    assert len(workspace["load_from"]) == 1
    assert server["location_name"] == "k8s_analysis"
    service = render.get("Service", server["host"])
    assert service["spec"]["ports"][0]["port"] == server["port"] == 4000
    user_code = deployment_container(render, f"{FULLNAME}-user-code")
    assert user_code["ports"][0]["containerPort"] == 4000
    assert user_code["command"][-1] == "4000"
    selected = render.get("Deployment", f"{FULLNAME}-user-code")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= selected.items()


# --- the environment ConfigMap ---


def test_env_defaults():
    data = render_case("default").env_data()

    assert data == {
        "K8S_ANALYSIS_DATA_DIR": "/data",
        "K8S_ANALYSIS_EXECUTOR": "k8s",
        "K8S_ANALYSIS_TRAINING_K8S_CONFIG": "{}",
        "K8S_ANALYSIS_EXPORT_CRON": "0 2 * * *",
        "K8S_ANALYSIS_RETRAIN_THRESHOLD": "50",
        "K8S_ANALYSIS_PREDICTOR_DEPLOYMENT": f"{FULLNAME}-predictor",
        "K8S_ANALYSIS_NAMESPACE": NAMESPACE,
        "K8S_ANALYSIS_ROLLOUT_TIMEOUT": "300",
    }
    assert data["K8S_ANALYSIS_PREDICTOR_DEPLOYMENT"] in render_case("default").names("Deployment")


def test_env_with_optional_settings():
    data = render_case("full").env_data()

    assert data["K8S_ANALYSIS_REPOSITORY"] == "kubernetes/enhancements"
    assert data["K8S_ANALYSIS_GITHUB_API_URL"] == "https://github.example.com/api/v3"
    assert data["K8S_ANALYSIS_STORAGE_URL"] == "s3://k8s-analysis/prod"
    assert json.loads(data["K8S_ANALYSIS_STORAGE_OPTIONS"]) == FULL_VALUES["storage"]["options"]
    assert data["K8S_ANALYSIS_KSERVE_INFERENCESERVICE"] == "kind-bug"
    assert data["K8S_ANALYSIS_CANARY_PERCENT"] == "25"


def test_env_follows_pipeline_values():
    render = render_values({
        "pipeline": {"exportCron": "30 */6 * * *", "retrainThreshold": 1_000_000},
        "redeploy": {"rolloutTimeoutSeconds": 900, "kserve": {"enabled": True}},
        "predictor": {"enabled": False},
    })

    data = render.env_data()

    assert data["K8S_ANALYSIS_EXPORT_CRON"] == "30 */6 * * *"
    # Helm keeps numbers from values as floats, which print as 1e+06 unless converted to int.
    assert data["K8S_ANALYSIS_RETRAIN_THRESHOLD"] == "1000000"
    assert data["K8S_ANALYSIS_ROLLOUT_TIMEOUT"] == "900"
    assert data["K8S_ANALYSIS_KSERVE_INFERENCESERVICE"] == FULLNAME
    assert data["K8S_ANALYSIS_CANARY_PERCENT"] == "10"
    # Without a predictor there is nothing for the redeploy job to patch.
    assert "K8S_ANALYSIS_PREDICTOR_DEPLOYMENT" not in data
    assert f"{FULLNAME}-predictor" not in render.names("Deployment")


# --- GPU training ---


def gpu_requests(render: Render) -> list[str]:
    """Name every container that requests or limits a GPU, run pods included."""
    found = [name for name, container in containers(render)
             if any(GPU in container.get("resources", {}).get(part, {}) for part in ("requests", "limits"))]
    run_resources = render.dagster_yaml()["run_launcher"]["config"]["run_k8s_config"]["container_config"]["resources"]
    if any(GPU in run_resources.get(part, {}) for part in ("requests", "limits")):
        found.append("run pods")
    return found


def test_gpu_off_by_default():
    render = render_case("default")

    assert render.env_data()["K8S_ANALYSIS_TRAINING_K8S_CONFIG"] == "{}"
    assert gpu_requests(render) == []
    assert GPU not in "".join(render.manifests.values())


def test_gpu_only_for_training_step():
    render = render_case("gpu")
    gpu = values_file("gpu-values.yaml")["training"]["gpu"]

    config = json.loads(render.env_data()["K8S_ANALYSIS_TRAINING_K8S_CONFIG"])

    assert config == {
        "container_config": {
            "image": "ghcr.io/k8s-analysis/k8s-analysis:0.1.0-gpu",
            "resources": {"limits": {GPU: 2}},
        },
        "pod_spec_config": {"node_selector": gpu["nodeSelector"], "tolerations": gpu["tolerations"]},
    }
    assert gpu_requests(render) == []
    for name, spec in pod_specs(render):
        assert "nodeSelector" not in spec, name
        assert "tolerations" not in spec, name


def test_gpu_without_image_tag_keeps_chart_image():
    render = render_values({"training": {"gpu": {"enabled": True}}})

    config = json.loads(render.env_data()["K8S_ANALYSIS_TRAINING_K8S_CONFIG"])

    assert config == {"container_config": {"resources": {"limits": {GPU: 1}}},
                      "pod_spec_config": {"node_selector": {}, "tolerations": []}}


# --- values.schema.json ---


def test_defaults_and_ci_values_pass_schema():
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(chart.values)
        chart.validate_schema(chart.merge_values(values_file("gpu-values.yaml")))
        chart.validate_schema(chart.merge_values(FULL_VALUES))


def test_invalid_values_file_fails_schema():
    invalid = values_file("invalid-values.yaml")

    with helm.Chart.load(CHART) as chart:
        with pytest.raises(helm.HelmValuesError) as raised:
            chart.validate_schema(chart.merge_values(invalid))
        with pytest.raises(helm.HelmValuesError):
            chart.render(invalid, name=RELEASE, namespace=NAMESPACE)

    message = str(raised.value)
    assert "'/predictor/replicas': got string, want integer" in message
    assert "additional properties 'replicaCount' not allowed" in message
    assert "'/image/pullPolicy': value must be one of" in message


@pytest.mark.parametrize(("values", "expected"), [
    ({"replicaCount": 2}, "additional properties 'replicaCount' not allowed"),
    ({"predictor": {"replica": 2}}, "additional properties 'replica' not allowed"),
    ({"data": {"persistentVolumeClaim": {"create": "yes"}}},
     "'/data/persistentVolumeClaim/create': got string, want boolean"),
    ({"dagster": {"userCode": {"port": 70000}}}, "'/dagster/userCode/port'"),
    ({"training": {"gpu": {"count": 1.5}}}, "'/training/gpu/count'"),
    ({"redeploy": {"kserve": {"canaryPercent": 150}}}, "'/redeploy/kserve/canaryPercent'"),
    ({"image": {"pullSecrets": "ghcr-pull"}}, "'/image/pullSecrets': got string, want array"),
    ({"github": {"repository": "kubernetes"}}, "'/github/repository'"),
], ids=["unknown-top-level", "unknown-nested", "boolean", "port-range", "integer", "percent", "array",
        "repository"])
def test_schema_rejects_bad_values(values, expected):
    with helm.Chart.load(CHART) as chart:
        with pytest.raises(helm.HelmValuesError) as raised:
            chart.validate_schema(chart.merge_values(values))

    assert expected in str(raised.value)


@pytest.mark.parametrize(("values", "expected"), [
    ({"bot": {"enabled": True, "ingress": {"enabled": True}}}, "bot.ingress.host must be set"),
    ({"data": {"persistentVolumeClaim": {"create": False}}}, "set data.existingClaim"),
    ({"serviceAccount": {"create": False}}, "serviceAccount.name must name an existing ServiceAccount"),
], ids=["ingress-host", "data-volume", "service-account"])
def test_render_names_missing_values(values, expected):
    with helm.Chart.load(CHART) as chart:
        with pytest.raises(helm.HelmError) as raised:
            chart.render(values, name=RELEASE, namespace=NAMESPACE)

    assert expected in str(raised.value)


# --- optional objects ---


def test_hpa_and_ingress_only_when_enabled():
    for case in ("default", "gpu"):
        assert render_case(case).of_kind("HorizontalPodAutoscaler") == [], case
        assert render_case(case).of_kind("Ingress") == [], case
        assert f"{FULLNAME}-bot" not in render_case(case).names("Deployment"), case


def test_hpa_scales_predictor():
    render = render_case("full")

    hpa = render.get("HorizontalPodAutoscaler", f"{FULLNAME}-predictor")

    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": f"{FULLNAME}-predictor"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    assert hpa["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}}]
    # The autoscaler owns the replica count.
    assert "replicas" not in render.get("Deployment", f"{FULLNAME}-predictor")["spec"]
    assert render_case("default").get("Deployment", f"{FULLNAME}-predictor")["spec"]["replicas"] == 1


def test_ingress_routes_hook_to_bot():
    render = render_case("full")

    ingress = render.get("Ingress", f"{FULLNAME}-bot")["spec"]

    assert ingress["ingressClassName"] == "nginx"
    assert ingress["tls"] == [{"hosts": ["hooks.example.com"], "secretName": "hooks-tls"}]
    rule = ingress["rules"][0]
    assert rule["host"] == "hooks.example.com"
    assert rule["http"]["paths"] == [{"path": "/hook", "pathType": "Exact", "backend": {
        "service": {"name": f"{FULLNAME}-bot", "port": {"name": "http"}}}}]
    service = render.get("Service", f"{FULLNAME}-bot")
    assert service["spec"]["ports"][0] == {"name": "http", "port": 8888, "targetPort": "http", "protocol": "TCP"}


def test_rbac_scoped_to_namespace():
    default = render_case("default")
    full = render_case("full")

    assert default.of_kind("ClusterRole") == []
    assert default.of_kind("ClusterRoleBinding") == []
    rules = default.get("Role", FULLNAME)["rules"]
    granted = {(group, resource, verb) for rule in rules for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    for needed in [("batch", "jobs", "create"), ("batch", "jobs", "watch"), ("", "pods", "create"),
                   ("", "pods", "watch"), ("", "pods/log", "get"), ("apps", "deployments", "get"),
                   ("apps", "deployments", "patch"), ("apps", "deployments", "watch")]:
        assert needed in granted, needed
    assert not any(group == "serving.kserve.io" for group, _, _ in granted)
    kserve = [rule for rule in full.get("Role", FULLNAME)["rules"] if rule["apiGroups"] == ["serving.kserve.io"]]
    assert kserve == [{"apiGroups": ["serving.kserve.io"], "resources": ["inferenceservices"],
                       "verbs": ["get", "list", "watch", "patch"]}]
    binding = default.get("RoleBinding", FULLNAME)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": FULLNAME}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]


def test_data_volume_claim():
    default = render_case("default")
    existing = render_values({"data": {"existingClaim": "analysis-data"}})

    claim = default.get("PersistentVolumeClaim", f"{FULLNAME}-data")["spec"]

    assert claim["accessModes"] == ["ReadWriteOnce"]
    assert claim["resources"] == {"requests": {"storage": "20Gi"}}
    assert "storageClassName" not in claim
    assert existing.of_kind("PersistentVolumeClaim") == []
    assert existing.dagster_yaml()["run_launcher"]["config"]["volumes"][0]["persistentVolumeClaim"] == {
        "claimName": "analysis-data"}


def test_predictor_data_mount():
    default = render_case("default")
    with_storage = render_case("full")

    default_spec = default.get("Deployment", f"{FULLNAME}-predictor")["spec"]["template"]["spec"]
    storage_spec = with_storage.get("Deployment", f"{FULLNAME}-predictor")["spec"]["template"]["spec"]

    assert default_spec["volumes"] == [{"name": "data", "persistentVolumeClaim": {
        "claimName": f"{FULLNAME}-data", "readOnly": True}}]
    assert default_spec["containers"][0]["volumeMounts"] == [{"name": "data", "mountPath": "/data", "readOnly": True}]
    # With object storage the model comes from there, and the pod keeps no claim on the volume.
    assert storage_spec["volumes"] == [{"name": "data", "emptyDir": {}}]
    assert default.get("Deployment", f"{FULLNAME}-predictor")["spec"]["template"]["metadata"]["annotations"][
        "k8s-analysis/model-version"] == ""


# --- properties of every render ---


@pytest.mark.parametrize("case", CASES)
def test_references_resolve(case):
    """Every ConfigMap, ServiceAccount and claim that a pod or the run launcher names exists in the render."""
    render = render_case(case)
    config_maps = render.names("ConfigMap")
    claims = render.names("PersistentVolumeClaim")
    accounts = render.names("ServiceAccount")
    referenced: list[tuple[str, str, str]] = []

    for name, spec in pod_specs(render):
        if "serviceAccountName" in spec:
            referenced.append((name, "ServiceAccount", spec["serviceAccountName"]))
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                referenced.append((name, "ConfigMap", volume["configMap"]["name"]))
            if "persistentVolumeClaim" in volume:
                referenced.append((name, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]))
        for container in spec["containers"]:
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    referenced.append((name, "ConfigMap", source["configMapRef"]["name"]))
            for entry in container.get("env", []):
                if "configMapKeyRef" in entry.get("valueFrom", {}):
                    referenced.append((name, "ConfigMap", entry["valueFrom"]["configMapKeyRef"]["name"]))
    launcher = render.dagster_yaml()["run_launcher"]["config"]
    referenced.append(("run launcher", "ServiceAccount", launcher["service_account_name"]))
    referenced.append(("run launcher", "ConfigMap", launcher["instance_config_map"]))
    referenced.extend(("run launcher", "ConfigMap", name) for name in launcher["env_config_maps"])
    for volume in launcher["volumes"]:
        if "configMap" in volume:
            referenced.append(("run launcher", "ConfigMap", volume["configMap"]["name"]))
        if "persistentVolumeClaim" in volume:
            referenced.append(("run launcher", "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]))

    existing = {"ConfigMap": config_maps, "PersistentVolumeClaim": claims, "ServiceAccount": accounts}
    dangling = [(owner, kind, name) for owner, kind, name in referenced if name not in existing[kind]]
    assert dangling == []
    assert {kind for _, kind, _ in referenced} == {"ConfigMap", "PersistentVolumeClaim", "ServiceAccount"}


@pytest.mark.parametrize("case", CASES)
def test_volume_mounts_name_pod_volumes(case):
    render = render_case(case)

    for name, spec in pod_specs(render):
        volumes = {volume["name"] for volume in spec.get("volumes", [])}
        for container in spec["containers"]:
            mounts = {mount["name"] for mount in container.get("volumeMounts", [])}
            assert mounts <= volumes, name


@pytest.mark.parametrize("case", CASES)
def test_services_select_their_deployments(case):
    render = render_case(case)
    pod_labels = [deployment["spec"]["template"]["metadata"]["labels"] for deployment in render.of_kind("Deployment")]

    for service in render.of_kind("Service"):
        selector = service["spec"]["selector"]
        matches = [labels for labels in pod_labels if selector.items() <= labels.items()]
        assert len(matches) == 1, service["metadata"]["name"]


@pytest.mark.parametrize("case", CASES)
def test_pods_run_as_non_root(case):
    render = render_case(case)

    for name, spec in pod_specs(render):
        security = spec["securityContext"]
        assert security["runAsNonRoot"] is True, name
        assert security["runAsUser"] == 10001, name
        assert security["fsGroup"] == 10001, name
    for name, container in containers(render):
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
        assert container["resources"]["requests"], name
        assert container["imagePullPolicy"] == "IfNotPresent", name


@pytest.mark.parametrize("case", CASES)
def test_standard_labels(case):
    render = render_case(case)

    for item in render.objects:
        labels = item["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "k8s-analysis", item["metadata"]["name"]
        assert labels["app.kubernetes.io/instance"] == RELEASE, item["metadata"]["name"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm", item["metadata"]["name"]
        assert labels["app.kubernetes.io/version"] == "0.1.0", item["metadata"]["name"]
        assert labels["app.kubernetes.io/component"], item["metadata"]["name"]
    for deployment in render.of_kind("Deployment"):
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
