"""The executor and the training step's dagster-k8s configuration, read from the environment.

The definitions read both variables when they load, so each setting is checked in a fresh
interpreter that loads ``k8s_analysis.definitions`` the way the user-code server does. The
step's Kubernetes Job is then built by dagster-k8s itself from the op tags, as its
``k8s_job_executor`` does for each step.
"""

import json
import os
import subprocess
import sys

import pytest
from dagster_k8s.job import DagsterK8sJobConfig, construct_dagster_k8s_job, get_user_defined_k8s_config

from k8s_analysis.execution import (
    EXECUTOR_ENV,
    K8S_CONFIG_TAG,
    TRAINING_K8S_CONFIG_ENV,
    ExecutionSettingError,
    executor_from_environment,
    training_op_tags,
)

GPU_CONFIG = {
    "container_config": {"image": "ghcr.io/k8s-analysis/k8s-analysis:0.1.0-gpu",
                         "resources": {"limits": {"nvidia.com/gpu": 2}}},
    "pod_spec_config": {
        "node_selector": {"cloud.google.com/gke-accelerator": "nvidia-l4"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    },
}

# Prints every asset's op tags and every job's executor, as the code server loads them.
DESCRIBE = """
import json, warnings
warnings.simplefilter("ignore")
from k8s_analysis.definitions import defs
repo = defs.get_repository_def()
print(json.dumps({
    "tags": {key.to_user_string(): dict(asset.op.tags) for key, asset in repo.assets_defs_by_key.items()},
    "executors": {job.name: job.executor_def.name for job in repo.get_all_jobs()},
}))
"""


def describe_definitions(**env: str) -> dict:
    environment = {key: value for key, value in os.environ.items()
                   if key not in (EXECUTOR_ENV, TRAINING_K8S_CONFIG_ENV)}
    completed = subprocess.run([sys.executable, "-c", DESCRIBE], env={**environment, **env},
                               capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def step_job(tags: dict):
    """Build the Kubernetes Job dagster-k8s would launch for a step with these op tags."""
    config = DagsterK8sJobConfig(job_image="ghcr.io/k8s-analysis/k8s-analysis:0.1.0",
                                 dagster_home="/opt/dagster/dagster_home")
    return construct_dagster_k8s_job(config, ["dagster", "api", "execute_step"], "step-job",
                                     user_defined_k8s_config=get_user_defined_k8s_config(tags))


def test_gpu_config_only_on_training():
    described = describe_definitions(**{EXECUTOR_ENV: "k8s", TRAINING_K8S_CONFIG_ENV: json.dumps(GPU_CONFIG)})
    tagged = {name for name, tags in described["tags"].items() if K8S_CONFIG_TAG in tags}
    assert tagged == {"kind_bug_classifier"}
    assert set(described["executors"].values()) == {"k8s"}

    pod = step_job(described["tags"]["kind_bug_classifier"]).spec.template.spec
    assert pod.containers[0].image == "ghcr.io/k8s-analysis/k8s-analysis:0.1.0-gpu"
    assert pod.containers[0].resources.limits == {"nvidia.com/gpu": "2"}
    assert pod.node_selector == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert [(t.key, t.operator, t.effect) for t in pod.tolerations] == [("nvidia.com/gpu", "Exists", "NoSchedule")]

    evaluation = step_job(described["tags"]["classifier_evaluation"]).spec.template.spec
    assert evaluation.containers[0].image == "ghcr.io/k8s-analysis/k8s-analysis:0.1.0"
    assert evaluation.containers[0].resources.limits is None
    assert evaluation.node_selector is None
    assert evaluation.tolerations is None


def test_defaults_add_no_step_config():
    described = describe_definitions()
    assert all(K8S_CONFIG_TAG not in tags for tags in described["tags"].values())
    assert "k8s" not in described["executors"].values()
    assert described["executors"]["materialize_all"] == "multi_or_in_process_executor"


def test_training_config_empty_object(monkeypatch):
    monkeypatch.setenv(TRAINING_K8S_CONFIG_ENV, "{}")
    assert training_op_tags() == {}


def test_executor_from_environment(monkeypatch):
    monkeypatch.setenv(EXECUTOR_ENV, "k8s")
    assert executor_from_environment().name == "k8s"
    monkeypatch.setenv(EXECUTOR_ENV, "default")
    assert executor_from_environment() is None


@pytest.mark.parametrize(("name", "value", "message"), [
    (EXECUTOR_ENV, "kubernetes", "invalid K8S_ANALYSIS_EXECUTOR='kubernetes': set it to one of default, k8s"),
    (TRAINING_K8S_CONFIG_ENV, "{gpu: 1}", "invalid K8S_ANALYSIS_TRAINING_K8S_CONFIG, not JSON"),
    (TRAINING_K8S_CONFIG_ENV, "[1]", "expected a JSON object, not list"),
    (TRAINING_K8S_CONFIG_ENV, '{"container": {}}', "dagster-k8s does not read the key(s) container."),
])
def test_invalid_setting_names_variable(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(ExecutionSettingError) as raised:
        executor_from_environment() if name == EXECUTOR_ENV else training_op_tags()
    assert message in str(raised.value)
