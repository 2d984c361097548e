"""Deploying the promoted model beyond this machine: rolling the prediction server on Kubernetes."""

from k8s_analysis.deploy.kubernetes import RolloutError, RolloutResult, RolloutSettings, roll_out

__all__ = ["RolloutError", "RolloutResult", "RolloutSettings", "roll_out"]
