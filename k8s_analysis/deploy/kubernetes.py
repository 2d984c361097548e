"""Roll the prediction server on Kubernetes to a newly promoted model, and wait until it serves it.

The prediction server loads the model when its pods start, so a promotion only reaches a cluster
once the pods are replaced. For a Deployment, this module sets the pod template annotation
``k8s-analysis/model-version``, which makes the Deployment controller replace the pods, and then
waits as ``kubectl rollout status`` does. For a KServe InferenceService, it sets the same
annotation on the predictor, so KServe creates a new revision, and sets the share of traffic that
revision gets. It then waits until that revision is the latest ready one.

The settings come from environment variables that the Helm chart sets in every pipeline pod.
When neither object name is set, the pipeline runs outside Kubernetes and there is nothing to
roll. Each call builds its own API client from the in-cluster service account or a kubeconfig
file, and never changes the kubernetes package's global configuration.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

DEPLOYMENT_ENV = "K8S_ANALYSIS_PREDICTOR_DEPLOYMENT"
INFERENCE_SERVICE_ENV = "K8S_ANALYSIS_KSERVE_INFERENCESERVICE"
NAMESPACE_ENV = "K8S_ANALYSIS_NAMESPACE"
CANARY_PERCENT_ENV = "K8S_ANALYSIS_CANARY_PERCENT"
ROLLOUT_TIMEOUT_ENV = "K8S_ANALYSIS_ROLLOUT_TIMEOUT"
# The namespace of the pod's own service account, mounted in every pod that has one.
SERVICE_ACCOUNT_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
DEFAULT_NAMESPACE = "default"
DEFAULT_ROLLOUT_TIMEOUT_S = 300
DEFAULT_CANARY_PERCENT = 100
MODEL_VERSION_ANNOTATION = "k8s-analysis/model-version"

DEPLOYMENT = "Deployment"
INFERENCE_SERVICE = "InferenceService"
KSERVE_GROUP = "serving.kserve.io"
KSERVE_VERSION = "v1beta1"
KSERVE_PLURAL = "inferenceservices"
# modelStatus.transitionStatus values that report a failed rollout (KServe's v1beta1 API).
KSERVE_FAILED_TRANSITIONS = ("BlockedByFailedLoad", "InvalidSpec")
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"

# Object names are DNS subdomains and namespaces are DNS labels, both in the sense of RFC 1123.
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_NAME_PATTERN = re.compile(rf"{_DNS_LABEL}(\.{_DNS_LABEL})*")
_NAMESPACE_PATTERN = re.compile(_DNS_LABEL)
_MAX_NAME_LENGTH = 253
_MAX_NAMESPACE_LENGTH = 63
# Statuses of a read worth trying again, because the API server may be restarting or shedding load.
_TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
_MAX_REQUEST_TIMEOUT_S = 30.0

Log = logging.Logger | logging.LoggerAdapter


class RolloutError(RuntimeError):
    """The predictor could not be rolled to the new model: an API error, a failed rollout or a timeout."""


@dataclasses.dataclass(frozen=True)
class RolloutSettings:
    """The predictor object to roll, its namespace, the rollout timeout and the canary share."""

    kind: str
    """``Deployment`` or ``InferenceService``."""
    name: str
    namespace: str
    timeout_s: int = DEFAULT_ROLLOUT_TIMEOUT_S
    canary_percent: int = DEFAULT_CANARY_PERCENT
    """Share of traffic the new KServe revision gets; 100 means no canary. Deployments ignore it."""

    @property
    def name_env(self) -> str:
        """The environment variable that named the object."""
        return INFERENCE_SERVICE_ENV if self.kind == INFERENCE_SERVICE else DEPLOYMENT_ENV

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None,
                         namespace_file: Path = SERVICE_ACCOUNT_NAMESPACE_FILE) -> RolloutSettings | None:
        """Read the settings from ``environ`` (default ``os.environ``).

        Return None when neither object name is set, because the pipeline then runs outside
        Kubernetes. When both are set, the InferenceService is the one to roll. Raise ValueError,
        naming the variable, for an invalid value.
        """
        environ = os.environ if environ is None else environ
        inference_service = environ.get(INFERENCE_SERVICE_ENV, "")
        deployment = environ.get(DEPLOYMENT_ENV, "")
        timeout_s = _int_setting(environ, ROLLOUT_TIMEOUT_ENV, DEFAULT_ROLLOUT_TIMEOUT_S, 1, None)
        canary_percent = _int_setting(environ, CANARY_PERCENT_ENV, DEFAULT_CANARY_PERCENT, 1, 100)
        if inference_service:
            kind, name_env, name = INFERENCE_SERVICE, INFERENCE_SERVICE_ENV, inference_service
        elif deployment:
            kind, name_env, name = DEPLOYMENT, DEPLOYMENT_ENV, deployment
        else:
            return None
        _check_name(name_env, name, _NAME_PATTERN, _MAX_NAME_LENGTH)
        namespace = environ.get(NAMESPACE_ENV) or _pod_namespace(namespace_file)
        _check_name(NAMESPACE_ENV, namespace, _NAMESPACE_PATTERN, _MAX_NAMESPACE_LENGTH)
        return cls(kind, name, namespace, timeout_s, canary_percent)


@dataclasses.dataclass(frozen=True)
class RolloutResult:
    """Summary of a finished rollout for the run's metadata: the object, the model version and the wait."""

    kind: str
    name: str
    namespace: str
    version: str
    waited_s: float
    """Seconds from the patch until the new pods or revision were ready."""
    canary_percent: int | None
    """Share of traffic on the new KServe revision; None for a Deployment."""

    def as_metadata(self) -> dict[str, str | int | float]:
        """Return the fields as Dagster metadata values, leaving out the canary percent of a Deployment."""
        metadata: dict[str, str | int | float] = {
            "rollout_kind": self.kind,
            "rollout_object": f"{self.namespace}/{self.name}",
            "rollout_version": self.version,
            "rollout_waited_s": round(self.waited_s, 1),
        }
        if self.canary_percent is not None:
            metadata["rollout_canary_percent"] = self.canary_percent
        return metadata


@dataclasses.dataclass(frozen=True)
class _Progress:
    """One look at the object being rolled: finished, failed for good, or still moving."""

    done: bool
    summary: str
    failure: str | None = None


def roll_out(settings: RolloutSettings | None, version: str, log: Log, *, poll_interval_s: float = 2.0,
             log_interval_s: float = 10.0) -> RolloutResult | None:
    """Roll the predictor to model ``version`` and wait until it serves it.

    Return None when ``settings`` is None (nothing to roll outside Kubernetes). Raise
    RolloutError when the API rejects the patch or read, when the rollout fails, or when it is
    not ready within ``settings.timeout_s``. Progress is logged at most every ``log_interval_s``.
    """
    if settings is None:
        return None
    with new_api_client() as api_client:
        if settings.kind == INFERENCE_SERVICE:
            waited_s = _roll_inference_service(api_client, settings, version, log, poll_interval_s, log_interval_s)
            canary_percent = settings.canary_percent
        else:
            waited_s = _roll_deployment(api_client, settings, version, log, poll_interval_s, log_interval_s)
            canary_percent = None
    return RolloutResult(settings.kind, settings.name, settings.namespace, version, waited_s, canary_percent)


def new_api_client(environ: Mapping[str, str] | None = None) -> client.ApiClient:
    """Build an API client from the pod's service account, or else from the kubeconfig file.

    Inside a pod (``KUBERNETES_SERVICE_HOST`` set) it uses the mounted service account token.
    Elsewhere it reads ``KUBECONFIG`` (a list of files joined by ':') or ``~/.kube/config``. The
    variable is read at each call, because the kubernetes package reads it only once, at import.
    """
    environ = os.environ if environ is None else environ
    configuration = client.Configuration()
    if environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            config.load_incluster_config(client_configuration=configuration)
        except ConfigException as error:
            raise RolloutError(f"invalid in-cluster Kubernetes configuration: {error}; a pod needs "
                               "KUBERNETES_SERVICE_HOST, KUBERNETES_SERVICE_PORT and a mounted service account "
                               "token (automountServiceAccountToken: true)") from None
        return client.ApiClient(configuration)

    kubeconfig = environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    try:
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    except (ConfigException, OSError) as error:
        raise RolloutError(f"could not load the kubeconfig {kubeconfig!r}: {error}; set KUBECONFIG to a "
                           "kubeconfig file, or run the pipeline in a pod with a service account") from None
    return client.ApiClient(configuration)


# -- Deployment ---------------------------------------------------------------------------------


def _roll_deployment(api_client: client.ApiClient, settings: RolloutSettings, version: str, log: Log,
                     poll_interval_s: float, log_interval_s: float) -> float:
    apps = client.AppsV1Api(api_client)
    patch = {"spec": {"template": {"metadata": {"annotations": {MODEL_VERSION_ANNOTATION: version}}}}}
    with _api_errors(settings, "patch"):
        patched = apps.patch_namespaced_deployment(settings.name, settings.namespace, patch,
                                                   _content_type=STRATEGIC_MERGE_PATCH,
                                                   _request_timeout=_MAX_REQUEST_TIMEOUT_S)
    log.info("set %s=%s on the pod template of Deployment %s/%s (generation %s); waiting up to %d s for "
             "the rollout", MODEL_VERSION_ANNOTATION, version, settings.namespace, settings.name,
             patched.metadata.generation, settings.timeout_s)

    def observe(request_timeout_s: float) -> _Progress:
        with _api_errors(settings, "get"):
            deployment = apps.read_namespaced_deployment(settings.name, settings.namespace,
                                                         _request_timeout=request_timeout_s)
        return _deployment_progress(deployment)

    return _wait(observe, settings, version, log, poll_interval_s, log_interval_s, _deployment_fix(settings))


def _deployment_progress(deployment: client.V1Deployment) -> _Progress:
    """Judge a Deployment's rollout by the rules of ``kubectl rollout status``.

    The controller must have seen the latest spec (observedGeneration), every desired replica
    must run the new pod template, no old replica may remain, and every new one must be
    available. A Progressing condition with reason ProgressDeadlineExceeded means the controller
    gave up, so waiting longer cannot help.
    """
    status = deployment.status or client.V1DeploymentStatus()
    generation = deployment.metadata.generation or 0
    if (status.observed_generation or 0) < generation:
        return _Progress(False, f"waiting for the Deployment controller to see generation {generation} "
                                f"(it has seen {status.observed_generation or 0})")

    desired = deployment.spec.replicas if deployment.spec.replicas is not None else 1
    updated = status.updated_replicas or 0
    total = status.replicas or 0
    available = status.available_replicas or 0
    summary = (f"{updated} of {desired} replicas updated, {available} available, {total} in total "
               f"({max(total - updated, 0)} old)")
    for condition in status.conditions or []:
        if condition.type == "Progressing" and condition.reason == "ProgressDeadlineExceeded":
            return _Progress(False, summary, failure=f"ProgressDeadlineExceeded: {condition.message}")
    done = updated >= desired and total <= updated and available >= updated
    return _Progress(done, summary)


def _deployment_fix(settings: RolloutSettings) -> str:
    target = f"deployment/{settings.name} -n {settings.namespace}"
    return (f"See why with `kubectl describe deployment {settings.name} -n {settings.namespace}` and "
            f"`kubectl get pods -n {settings.namespace}`; go back to the old pods with `kubectl rollout undo "
            f"{target}`, and point models/current back at the previous version with `k8s-analysis rollback`.")


# -- KServe InferenceService --------------------------------------------------------------------


def _roll_inference_service(api_client: client.ApiClient, settings: RolloutSettings, version: str, log: Log,
                            poll_interval_s: float, log_interval_s: float) -> float:
    custom = client.CustomObjectsApi(api_client)
    # An annotation change makes a new revision because it changes the predictor's pod spec.
    # canaryTrafficPercent is always sent, so that 100 replaces the share an earlier canary left.
    patch = {"spec": {"predictor": {"annotations": {MODEL_VERSION_ANNOTATION: version},
                                    "canaryTrafficPercent": settings.canary_percent}}}
    with _api_errors(settings, "patch"):
        patched = custom.patch_namespaced_custom_object(KSERVE_GROUP, KSERVE_VERSION, settings.namespace,
                                                        KSERVE_PLURAL, settings.name, patch,
                                                        _request_timeout=_MAX_REQUEST_TIMEOUT_S)
    log.info("set %s=%s and canaryTrafficPercent=%d on the predictor of InferenceService %s/%s (generation %s); "
             "waiting up to %d s for the new revision", MODEL_VERSION_ANNOTATION, version, settings.canary_percent,
             settings.namespace, settings.name, patched.get("metadata", {}).get("generation"), settings.timeout_s)

    def observe(request_timeout_s: float) -> _Progress:
        with _api_errors(settings, "get"):
            service = custom.get_namespaced_custom_object(KSERVE_GROUP, KSERVE_VERSION, settings.namespace,
                                                          KSERVE_PLURAL, settings.name,
                                                          _request_timeout=request_timeout_s)
        return _inference_service_progress(service)

    waited_s = _wait(observe, settings, version, log, poll_interval_s, log_interval_s,
                     _inference_service_fix(settings))
    if settings.canary_percent < 100:
        log.info("the new revision of InferenceService %s/%s gets %d%% of the traffic; to send it all, patch "
                 "spec.predictor.canaryTrafficPercent to 100, or redeploy with %s=100", settings.namespace,
                 settings.name, settings.canary_percent, CANARY_PERCENT_ENV)
    return waited_s


def _inference_service_progress(service: dict) -> _Progress:
    """Judge a KServe InferenceService's rollout from its status.

    KServe reports the latest spec it acted on as ``status.observedGeneration``, and its
    aggregated readiness as the ``Ready`` condition. In serverless mode each predictor change
    makes a Knative revision: ``latestCreatedRevision`` is the newest one, and
    ``latestReadyRevision`` the newest that passed its readiness checks. While the new revision
    starts, the old one can keep the service Ready, so the rollout is done only when the two
    names agree. In raw deployment mode KServe reports no revisions, and Ready alone decides.

    ``status.modelStatus.transitionStatus`` BlockedByFailedLoad (the new model failed to load)
    or InvalidSpec (KServe rejected the predictor spec) ends the wait at once, with
    ``lastFailureInfo`` as the reason, as ProgressDeadlineExceeded does for a Deployment.
    """
    generation = service.get("metadata", {}).get("generation") or 0
    status = service.get("status") or {}
    observed = status.get("observedGeneration") or 0
    if observed < generation:
        return _Progress(False, f"waiting for KServe to see generation {generation} (it has seen {observed})")

    ready = next((condition for condition in status.get("conditions") or [] if condition.get("type") == "Ready"),
                 {})
    predictor = (status.get("components") or {}).get("predictor") or {}
    created = predictor.get("latestCreatedRevision")
    latest_ready = predictor.get("latestReadyRevision")
    summary = f"Ready={ready.get('status', 'missing')}"
    if ready.get("reason") or ready.get("message"):
        summary += f" ({ready.get('reason') or 'no reason'}: {ready.get('message') or 'no message'})"
    summary += f", latest created revision {created or 'none'}, latest ready revision {latest_ready or 'none'}"
    traffic = ", ".join(f"{target.get('revisionName')} {target.get('percent')}%"
                        for target in predictor.get("traffic") or [] if target.get("percent"))
    if traffic:
        summary += f", traffic {traffic}"
    model_status = status.get("modelStatus") or {}
    transition = model_status.get("transitionStatus")
    if transition:
        summary += f", model transition {transition}"
    if transition in KSERVE_FAILED_TRANSITIONS:
        # NOTE: this trusts that KServe recomputed modelStatus when it observed the patched
        # generation (not checked against its controller's source). A failure left over from an
        # earlier spec would end the wait early, naming that older failure.
        return _Progress(False, summary, failure=_model_failure(transition, model_status))
    return _Progress(ready.get("status") == "True" and created == latest_ready, summary)


def _model_failure(transition: str, model_status: dict) -> str:
    """Describe KServe's ``lastFailureInfo``: reason, message, exit code and where it happened."""
    info = model_status.get("lastFailureInfo") or {}
    failure = f"{transition}: {info.get('reason') or 'no reason given'}"
    if info.get("message"):
        failure += f": {info['message']}"
    details = []
    if info.get("exitCode") is not None:
        details.append(f"exit code {info['exitCode']}")
    if info.get("location"):
        details.append(f"in {info['location']}")
    if details:
        failure += f" ({', '.join(details)})"
    return failure


def _inference_service_fix(settings: RolloutSettings) -> str:
    return (f"See why with `kubectl describe inferenceservice {settings.name} -n {settings.namespace}` and "
            f"`kubectl get revisions -n {settings.namespace}`. Until the new revision is ready, KServe routes the "
            "traffic to the revision rolled out before it. "
            "Point models/current back at the previous version with `k8s-analysis rollback`.")


# -- waiting and errors -------------------------------------------------------------------------


def _wait(observe: Callable[[float], _Progress], settings: RolloutSettings, version: str, log: Log,
          poll_interval_s: float, log_interval_s: float, fix: str) -> float:
    """Call ``observe`` every ``poll_interval_s`` until it reports done; return the seconds waited.

    A transient failure of a read (HTTP 429 or 5xx, or no connection) is logged and the next
    poll tries again, because the API server may restart during a cluster upgrade.
    """
    target = _describe(settings)
    started = time.monotonic()
    last_logged: float | None = None
    summary = "no status read yet"
    while True:
        elapsed = time.monotonic() - started
        request_timeout_s = max(min(_MAX_REQUEST_TIMEOUT_S, settings.timeout_s - elapsed), 1.0)
        try:
            progress = observe(request_timeout_s)
        except _TransientReadError as error:
            progress = None
            if last_logged is None or elapsed - last_logged >= log_interval_s:
                log.warning("reading %s failed after %.0f s (%s); trying again until the %d s timeout",
                            target, elapsed, error, settings.timeout_s)
                last_logged = elapsed
        if progress is not None:
            summary = progress.summary
            if progress.failure is not None:
                raise RolloutError(f"{target} failed to roll out model version {version} after {elapsed:.0f} s: "
                                   f"{progress.failure} ({summary}). {fix}")
            if progress.done:
                log.info("%s serves model version %s after %.1f s: %s", target, version, elapsed, summary)
                return elapsed
            if last_logged is None or elapsed - last_logged >= log_interval_s:
                log.info("%s rollout of model version %s: %s, %.0f s elapsed", target, version, summary, elapsed)
                last_logged = elapsed
        if elapsed >= settings.timeout_s:
            raise RolloutError(f"{target} did not finish rolling out model version {version} within "
                               f"{settings.timeout_s} s ({ROLLOUT_TIMEOUT_ENV}); last seen: {summary}. {fix}")
        time.sleep(max(min(poll_interval_s, settings.timeout_s - elapsed), 0.0))


class _TransientReadError(Exception):
    """Raised for a read that may succeed when tried again."""


@contextlib.contextmanager
def _api_errors(settings: RolloutSettings, verb: str) -> Iterator[None]:
    """Turn an API failure of one call into a RolloutError that names the object and the fix.

    A read (``verb`` "get") that failed for a transient reason raises _TransientReadError instead.
    """
    try:
        yield
    except ApiException as error:
        if verb == "get" and error.status in _TRANSIENT_STATUSES:
            raise _TransientReadError(f"HTTP {error.status}: {_server_message(error)}") from error
        raise RolloutError(_api_error_message(settings, verb, error)) from None
    except urllib3.exceptions.HTTPError as error:
        if verb == "get":
            raise _TransientReadError(str(error)) from error
        raise RolloutError(f"could not reach the Kubernetes API server to {verb} {_describe(settings)}: {error}; "
                           "check the server address in the kubeconfig, or the network policy of the pod") from None


def _api_error_message(settings: RolloutSettings, verb: str, error: ApiException) -> str:
    server_message = _server_message(error)
    resource = f"{KSERVE_PLURAL}.{KSERVE_GROUP}" if settings.kind == INFERENCE_SERVICE else "deployments.apps"
    if error.status == 404:
        hint = f"check {settings.name_env}={settings.name!r} and {NAMESPACE_ENV}={settings.namespace!r}"
        if settings.kind == INFERENCE_SERVICE:
            hint += ", and that KServe's InferenceService resource is installed in the cluster"
        return f"{_describe(settings)} not found (HTTP 404: {server_message}); {hint}"
    if error.status == 403:
        return (f"the service account lacks RBAC permission to {verb} {resource} in namespace {settings.namespace} "
                f"(HTTP 403: {server_message}); grant it get and patch on {resource} there with a Role and "
                "RoleBinding")
    if error.status == 401:
        return (f"the Kubernetes API server rejected the credentials (HTTP 401: {server_message}); check the "
                "kubeconfig user, or the service account token of the pod")
    return f"{verb} {_describe(settings)} failed with HTTP {error.status}: {server_message}"


def _describe(settings: RolloutSettings) -> str:
    return f"{settings.kind} {settings.namespace}/{settings.name}"


def _server_message(error: ApiException) -> str:
    """Return the ``message`` of the Status object in the error response, or else the HTTP reason."""
    try:
        body = json.loads(error.body or b"")
    except (TypeError, ValueError):
        return str(error.reason)
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or error.reason)


# -- settings helpers -----------------------------------------------------------------------------


def _int_setting(environ: Mapping[str, str], name: str, default: int, minimum: int, maximum: int | None) -> int:
    raw = environ.get(name, "")
    if raw == "":
        return default
    bounds = f"from {minimum} to {maximum}" if maximum is not None else f"of {minimum} or more"
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"invalid {name}={raw!r}: give a whole number {bounds} (default {default})") from None
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"invalid {name}={value}: give a whole number {bounds} (default {default})")
    return value


def _check_name(variable: str, value: str, pattern: re.Pattern[str], max_length: int) -> None:
    if len(value) > max_length or not pattern.fullmatch(value):
        characters = "lower-case letters, digits and '-'"
        if pattern is _NAME_PATTERN:
            characters = "lower-case letters, digits, '-' and '.'"
        raise ValueError(f"invalid {variable}={value!r}: a Kubernetes name has only {characters}, starts and ends "
                         f"with a letter or digit, and has at most {max_length} characters")


def _pod_namespace(namespace_file: Path) -> str:
    """Read the namespace of the pod's service account, or return ``default`` outside a pod."""
    try:
        namespace = namespace_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return DEFAULT_NAMESPACE
    return namespace or DEFAULT_NAMESPACE
