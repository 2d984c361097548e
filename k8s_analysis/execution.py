"""The executor of a run's steps: one process here, one Kubernetes Job per step on a cluster.

Both settings come from the environment, which the Helm chart fills in every Dagster pod:

- ``K8S_ANALYSIS_EXECUTOR``: ``k8s`` runs each step in its own pod through dagster-k8s's
  ``k8s_job_executor``; unset or ``default`` keeps Dagster's default executor.
- ``K8S_ANALYSIS_TRAINING_K8S_CONFIG``: a JSON object in dagster-k8s's ``dagster-k8s/config``
  shape (``container_config``, ``pod_spec_config``, ...). It is put on the training step only,
  so only that step requests a GPU, lands on the GPU nodes and tolerates their taints.

The values are read when the code location loads, so a change needs a redeploy of the user
code, as any change to the definitions does.
"""

from __future__ import annotations

import json
import os

EXECUTOR_ENV = "K8S_ANALYSIS_EXECUTOR"
TRAINING_K8S_CONFIG_ENV = "K8S_ANALYSIS_TRAINING_K8S_CONFIG"
K8S_CONFIG_TAG = "dagster-k8s/config"
EXECUTORS = ("default", "k8s")
# The keys dagster-k8s reads from the tag. Any other key is a typo that dagster-k8s would ignore silently.
K8S_CONFIG_KEYS = frozenset({
    "container_config", "pod_template_spec_metadata", "pod_spec_config", "job_config", "job_metadata",
    "job_spec_config", "merge_behavior",
})


class ExecutionSettingError(ValueError):
    """Error for an execution variable whose value the code location cannot use."""


def executor_name() -> str:
    value = (os.environ.get(EXECUTOR_ENV) or "default").strip()
    if value not in EXECUTORS:
        raise ExecutionSettingError(
            f"invalid {EXECUTOR_ENV}={value!r}: set it to one of "
            f"{', '.join(EXECUTORS)} or unset it")
    return value


def executor_from_environment():
    """Return dagster-k8s's step-per-pod executor when configured, else None (Dagster's default)."""
    if executor_name() == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    return None


def training_k8s_config() -> dict:
    """Parse the training step's dagster-k8s configuration. An unset variable or ``{}`` gives ``{}``."""
    raw = (os.environ.get(TRAINING_K8S_CONFIG_ENV) or "").strip()
    if not raw:
        return {}
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ExecutionSettingError(
            f"invalid {TRAINING_K8S_CONFIG_ENV}, not JSON ({error}): {raw[:200]!r}. Set it to a JSON object such as "
            '{"container_config": {"resources": {"limits": {"nvidia.com/gpu": 1}}}}') from error
    if not isinstance(config, dict):
        raise ExecutionSettingError(
            f"invalid {TRAINING_K8S_CONFIG_ENV}: expected a JSON object, not {type(config).__name__}: {raw[:200]!r}")
    unknown = sorted(set(config) - K8S_CONFIG_KEYS)
    if unknown:
        raise ExecutionSettingError(
            f"invalid {TRAINING_K8S_CONFIG_ENV}: dagster-k8s does not read the key(s) {', '.join(unknown)}. "
            f"use only {', '.join(sorted(K8S_CONFIG_KEYS))}")
    return config


def training_op_tags() -> dict[str, object]:
    """Return the training step's op tags: its dagster-k8s configuration, when one is set."""
    config = training_k8s_config()
    return {K8S_CONFIG_TAG: config} if config else {}
