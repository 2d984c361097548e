"""Rolling the predictor on Kubernetes, with the real kubernetes client against a fake API server."""

import logging
import time

import kubernetes_validate
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from k8s_analysis.deploy import RolloutError, RolloutResult, RolloutSettings, roll_out
from k8s_analysis.deploy.kubernetes import (
    CANARY_PERCENT_ENV,
    DEPLOYMENT,
    DEPLOYMENT_ENV,
    INFERENCE_SERVICE,
    INFERENCE_SERVICE_ENV,
    MODEL_VERSION_ANNOTATION,
    NAMESPACE_ENV,
    ROLLOUT_TIMEOUT_ENV,
    _inference_service_progress,
    new_api_client,
)
from k8s_analysis_tests.fake_kubernetes import MERGE_PATCH, STRATEGIC_MERGE_PATCH, Rollout

OLD = "20250301T000000Z-0000a001"
NEW = "20250302T000000Z-0000a002"
NAME = "predictor"
DEPLOYMENT_PATH = f"/apis/apps/v1/namespaces/default/deployments/{NAME}"
INFERENCE_SERVICE_PATH = f"/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices/{NAME}"
# Short enough that a failing rollout ends in about a second.
FAST = {"poll_interval_s": 0.01, "log_interval_s": 0.05}


@pytest.fixture
def log(caplog):
    caplog.set_level(logging.INFO, logger="rollout-test")
    return logging.getLogger("rollout-test")


def deployment_settings(name: str = NAME, timeout_s: int = 5) -> RolloutSettings:
    return RolloutSettings(DEPLOYMENT, name, "default", timeout_s=timeout_s)


def inference_service_settings(name: str = NAME, canary_percent: int = 100, timeout_s: int = 5) -> RolloutSettings:
    return RolloutSettings(INFERENCE_SERVICE, name, "default", timeout_s=timeout_s, canary_percent=canary_percent)


def annotations(template_metadata: dict) -> dict:
    return template_metadata.get("annotations") or {}


# -- settings -------------------------------------------------------------------------------


def test_settings_deployment_defaults(tmp_path):
    settings = RolloutSettings.from_environment({DEPLOYMENT_ENV: NAME}, namespace_file=tmp_path / "missing")

    assert settings == RolloutSettings(DEPLOYMENT, NAME, "default", timeout_s=300, canary_percent=100)
    assert settings.name_env == DEPLOYMENT_ENV


@pytest.mark.parametrize(("content", "namespace"), [("ml-serving\n", "ml-serving"), ("\n", "default")])
def test_settings_namespace_from_file(tmp_path, content, namespace):
    namespace_file = tmp_path / "namespace"
    namespace_file.write_text(content, encoding="utf-8")

    settings = RolloutSettings.from_environment({DEPLOYMENT_ENV: NAME}, namespace_file=namespace_file)

    assert settings.namespace == namespace


def test_settings_namespace_variable_first(tmp_path):
    namespace_file = tmp_path / "namespace"
    namespace_file.write_text("ml-serving", encoding="utf-8")

    settings = RolloutSettings.from_environment({DEPLOYMENT_ENV: NAME, NAMESPACE_ENV: "staging"},
                                                namespace_file=namespace_file)

    assert settings.namespace == "staging"


def test_settings_inference_service(tmp_path):
    environ = {INFERENCE_SERVICE_ENV: "kind-bug", CANARY_PERCENT_ENV: "25", ROLLOUT_TIMEOUT_ENV: "60",
               NAMESPACE_ENV: "kserve"}

    settings = RolloutSettings.from_environment(environ, namespace_file=tmp_path / "missing")

    assert settings == RolloutSettings(INFERENCE_SERVICE, "kind-bug", "kserve", timeout_s=60, canary_percent=25)
    assert settings.name_env == INFERENCE_SERVICE_ENV


def test_settings_inference_service_wins(tmp_path):
    environ = {INFERENCE_SERVICE_ENV: "kind-bug", DEPLOYMENT_ENV: NAME}

    settings = RolloutSettings.from_environment(environ, namespace_file=tmp_path / "missing")

    assert settings.kind == INFERENCE_SERVICE
    assert settings.name == "kind-bug"


@pytest.mark.parametrize("environ", [{}, {DEPLOYMENT_ENV: "", INFERENCE_SERVICE_ENV: ""},
                                     {ROLLOUT_TIMEOUT_ENV: "60", NAMESPACE_ENV: "ml"}])
def test_settings_none_without_names(environ, tmp_path):
    assert RolloutSettings.from_environment(environ, namespace_file=tmp_path / "missing") is None


@pytest.mark.parametrize(("variable", "value", "expected"), [
    (ROLLOUT_TIMEOUT_ENV, "5m", "invalid K8S_ANALYSIS_ROLLOUT_TIMEOUT='5m': give a whole number of 1 or more "
                                "(default 300)"),
    (ROLLOUT_TIMEOUT_ENV, "0", "invalid K8S_ANALYSIS_ROLLOUT_TIMEOUT=0: give a whole number of 1 or more "
                               "(default 300)"),
    (CANARY_PERCENT_ENV, "0", "invalid K8S_ANALYSIS_CANARY_PERCENT=0: give a whole number from 1 to 100 "
                              "(default 100)"),
    (CANARY_PERCENT_ENV, "101", "invalid K8S_ANALYSIS_CANARY_PERCENT=101: give a whole number from 1 to 100"),
    (CANARY_PERCENT_ENV, "25%", "invalid K8S_ANALYSIS_CANARY_PERCENT='25%': give a whole number from 1 to 100"),
    (DEPLOYMENT_ENV, "Predictor_1", "invalid K8S_ANALYSIS_PREDICTOR_DEPLOYMENT='Predictor_1': a Kubernetes name "
                                    "has only lower-case letters, digits, '-' and '.'"),
    (NAMESPACE_ENV, "ml.serving", "invalid K8S_ANALYSIS_NAMESPACE='ml.serving': a Kubernetes name has only "
                                  "lower-case letters, digits and '-'"),
])
def test_settings_invalid_values(variable, value, expected, tmp_path):
    environ = {DEPLOYMENT_ENV: NAME, variable: value}

    with pytest.raises(ValueError) as raised:
        RolloutSettings.from_environment(environ, namespace_file=tmp_path / "missing")

    assert expected in str(raised.value)


def test_roll_out_without_settings(log, caplog):
    assert roll_out(None, NEW, log) is None
    assert caplog.records == []


# -- client configuration -----------------------------------------------------------------


def test_client_missing_kubeconfig(tmp_path):
    missing = tmp_path / "no-kubeconfig"

    with pytest.raises(RolloutError) as raised:
        new_api_client({"KUBECONFIG": str(missing)})

    assert f"could not load the kubeconfig '{missing}'" in str(raised.value)
    assert "set KUBECONFIG to a kubeconfig file" in str(raised.value)


def test_client_in_cluster_without_token():
    # Outside a pod the service account token file is missing, so nothing is sent anywhere.
    with pytest.raises(RolloutError) as raised:
        new_api_client({"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"})

    assert "invalid in-cluster Kubernetes configuration" in str(raised.value)


def test_client_leaves_global_configuration(cluster):
    default_host = client.Configuration.get_default_copy().host

    with new_api_client() as api_client:
        assert api_client.configuration.host == cluster.base_url

    assert client.Configuration.get_default_copy().host == default_host
    assert default_host != cluster.base_url


# -- Deployment -----------------------------------------------------------------------------


def test_deployment_rollout_succeeds(cluster, log, caplog):
    cluster.add_deployment(NAME, replicas=2, version=OLD)

    result = roll_out(deployment_settings(), NEW, log, **FAST)

    [patch] = cluster.writes()
    assert patch.path == DEPLOYMENT_PATH
    assert patch.content_type == STRATEGIC_MERGE_PATCH
    assert patch.authorization == f"Bearer {cluster.token}"
    assert patch.json() == {"spec": {"template": {"metadata": {"annotations": {MODEL_VERSION_ANNOTATION: NEW}}}}}
    assert patch.status == 200

    deployment = cluster.deployment(NAME)
    assert annotations(deployment["spec"]["template"]["metadata"]) == {MODEL_VERSION_ANNOTATION: NEW}
    assert deployment["metadata"]["generation"] == 2
    # Seen, new pods started, new pods available, old pods gone: the fourth read is complete.
    assert cluster.reads(NAME) == 4
    assert deployment["status"]["observedGeneration"] == 2
    assert deployment["status"]["replicas"] == 2
    assert deployment["status"]["updatedReplicas"] == 2
    assert deployment["status"]["availableReplicas"] == 2

    assert result.kind == DEPLOYMENT
    assert result.name == NAME
    assert result.namespace == "default"
    assert result.version == NEW
    assert result.canary_percent is None
    assert 0 <= result.waited_s < 5
    assert result.as_metadata() == {"rollout_kind": DEPLOYMENT, "rollout_object": f"default/{NAME}",
                                    "rollout_version": NEW, "rollout_waited_s": round(result.waited_s, 1)}
    messages = [record.getMessage() for record in caplog.records]
    assert messages[-1].startswith(f"Deployment default/{NAME} serves model version {NEW} after ")
    assert messages[-1].endswith("2 of 2 replicas updated, 2 available, 2 in total (0 old)")


def test_fake_deployment_matches_schema(cluster, log):
    initial = cluster.add_deployment(NAME, version=OLD)
    roll_out(deployment_settings(), NEW, log, **FAST)
    rolled = cluster.deployment(NAME)

    for body in (initial, rolled):
        # Raises ValidationError for a field the apps/v1 schema lacks or a value of the wrong type.
        kubernetes_validate.validate(body, kubernetes_validate.latest_version(), strict=True)
    assert int(rolled["metadata"]["resourceVersion"]) > int(initial["metadata"]["resourceVersion"])


def test_deployment_same_version_twice(cluster, log):
    cluster.add_deployment(NAME, version=OLD)
    roll_out(deployment_settings(), NEW, log, **FAST)
    reads_before = cluster.reads(NAME)

    started = time.monotonic()
    result = roll_out(deployment_settings(), NEW, log, **FAST)

    assert time.monotonic() - started < 2
    assert result.version == NEW
    assert cluster.deployment(NAME)["metadata"]["generation"] == 2
    assert len(cluster.writes()) == 2
    assert cluster.reads(NAME) - reads_before == 1


def test_deployment_crash_loop_times_out(cluster, log):
    cluster.add_deployment(NAME, replicas=2, version=OLD, rollout=Rollout.CRASH_LOOP)

    started = time.monotonic()
    with pytest.raises(RolloutError) as raised:
        roll_out(deployment_settings(timeout_s=1), NEW, log, **FAST)

    assert 1 <= time.monotonic() - started < 4
    message = str(raised.value)
    assert isinstance(raised.value, RuntimeError)
    assert message.startswith(f"Deployment default/{NAME} did not finish rolling out model version {NEW} within "
                              "1 s (K8S_ANALYSIS_ROLLOUT_TIMEOUT)")
    assert "last seen: 2 of 2 replicas updated, 2 available, 4 in total (2 old)" in message
    assert f"kubectl describe deployment {NAME} -n default" in message
    assert f"kubectl rollout undo deployment/{NAME} -n default" in message
    assert "k8s-analysis rollback" in message


def test_deployment_deadline_exceeded_fails_fast(cluster, log):
    cluster.add_deployment(NAME, version=OLD, rollout=Rollout.DEADLINE_EXCEEDED)

    started = time.monotonic()
    with pytest.raises(RolloutError) as raised:
        roll_out(deployment_settings(timeout_s=60), NEW, log, **FAST)

    assert time.monotonic() - started < 5
    assert cluster.reads(NAME) == 2
    message = str(raised.value)
    assert message.startswith(f"Deployment default/{NAME} failed to roll out model version {NEW} after ")
    assert "ProgressDeadlineExceeded: ReplicaSet " in message
    assert "has timed out progressing." in message
    assert "kubectl rollout undo" in message


def test_deployment_progress_log_interval(cluster, log, caplog):
    cluster.add_deployment(NAME, version=OLD, rollout=Rollout.CRASH_LOOP)

    with pytest.raises(RolloutError):
        roll_out(deployment_settings(timeout_s=1), NEW, log, poll_interval_s=0.01, log_interval_s=60)

    progress = [record.getMessage() for record in caplog.records if "elapsed" in record.getMessage()]
    assert cluster.reads(NAME) > 3
    assert len(progress) == 1
    assert progress[0].startswith(f"Deployment default/{NAME} rollout of model version {NEW}: 0 of 2 replicas "
                                  "updated, 2 available, 2 in total (2 old), ")


def test_deployment_read_errors_retried(cluster, log, caplog):
    cluster.add_deployment(NAME, version=OLD)
    cluster.fail_reads(NAME, status=503, times=2)

    # With a long log interval, only the first of the two failed reads is logged.
    result = roll_out(deployment_settings(), NEW, log, poll_interval_s=0.01, log_interval_s=60)

    assert result.version == NEW
    assert [request.status for request in cluster.requests if request.method == "GET"][:3] == [503, 503, 200]
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"reading Deployment default/{NAME} failed after ")
    assert "HTTP 503: Service Unavailable" in warnings[0]


def test_deployment_not_found(cluster, log):
    with pytest.raises(RolloutError) as raised:
        roll_out(deployment_settings(name="missing"), NEW, log, **FAST)

    message = str(raised.value)
    assert message.startswith('Deployment default/missing not found (HTTP 404: deployments.apps "missing" not '
                              "found)")
    assert f"check {DEPLOYMENT_ENV}='missing' and {NAMESPACE_ENV}='default'" in message


def test_deployment_patch_forbidden(cluster, log):
    cluster.add_deployment(NAME, version=OLD)
    cluster.forbid(NAME, verbs=("patch",))

    with pytest.raises(RolloutError) as raised:
        roll_out(deployment_settings(), NEW, log, **FAST)

    message = str(raised.value)
    assert message.startswith("the service account lacks RBAC permission to patch deployments.apps in namespace "
                              "default (HTTP 403: ")
    assert 'cannot patch resource "deployments" in API group "apps"' in message
    assert "grant it get and patch on deployments.apps there" in message
    assert annotations(cluster.deployment(NAME)["spec"]["template"]["metadata"]) == {MODEL_VERSION_ANNOTATION: OLD}


def test_deployment_get_forbidden(cluster, log):
    cluster.add_deployment(NAME, version=OLD)
    cluster.forbid(NAME, verbs=("get",))

    with pytest.raises(RolloutError) as raised:
        roll_out(deployment_settings(), NEW, log, **FAST)

    assert str(raised.value).startswith("the service account lacks RBAC permission to get deployments.apps in "
                                        "namespace default")
    assert len(cluster.writes()) == 1


def test_deployment_rejected_token(cluster, log):
    cluster.add_deployment(NAME, version=OLD)
    cluster.token = "rotated-token"

    with pytest.raises(RolloutError) as raised:
        roll_out(deployment_settings(), NEW, log, **FAST)

    assert str(raised.value).startswith("the Kubernetes API server rejected the credentials (HTTP 401: ")
    assert "fake-kubernetes-token" not in str(raised.value)


# -- KServe InferenceService ----------------------------------------------------------------


def test_inference_service_full_traffic(cluster, log):
    cluster.add_inference_service(NAME, version=OLD)

    result = roll_out(inference_service_settings(canary_percent=100), NEW, log, **FAST)

    [patch] = cluster.writes()
    assert patch.path == INFERENCE_SERVICE_PATH
    assert patch.content_type == MERGE_PATCH
    assert patch.json() == {"spec": {"predictor": {"annotations": {MODEL_VERSION_ANNOTATION: NEW},
                                                   "canaryTrafficPercent": 100}}}
    service = cluster.inference_service(NAME)
    assert service["spec"]["predictor"]["annotations"] == {MODEL_VERSION_ANNOTATION: NEW}
    assert service["metadata"]["generation"] == 2
    # Seen with the new revision starting, then the new revision ready.
    assert cluster.reads(NAME) == 2
    predictor = service["status"]["components"]["predictor"]
    assert predictor["latestCreatedRevision"] == f"{NAME}-predictor-00002"
    assert predictor["latestReadyRevision"] == f"{NAME}-predictor-00002"
    assert predictor["traffic"] == [{"revisionName": f"{NAME}-predictor-00002", "percent": 100,
                                     "latestRevision": True}]
    assert service["status"]["modelStatus"]["transitionStatus"] == "UpToDate"
    assert result == RolloutResult(INFERENCE_SERVICE, NAME, "default", NEW, result.waited_s, 100)


def test_inference_service_canary(cluster, log):
    cluster.add_inference_service(NAME, version=OLD)

    result = roll_out(inference_service_settings(canary_percent=25), NEW, log, **FAST)

    [patch] = cluster.writes()
    assert patch.json()["spec"]["predictor"]["canaryTrafficPercent"] == 25
    service = cluster.inference_service(NAME)
    assert service["spec"]["predictor"]["canaryTrafficPercent"] == 25
    traffic = {target["revisionName"]: target["percent"]
               for target in service["status"]["components"]["predictor"]["traffic"]}
    assert traffic == {f"{NAME}-predictor-00002": 25, f"{NAME}-predictor-00001": 75}
    assert result.canary_percent == 25
    assert result.as_metadata()["rollout_canary_percent"] == 25


def test_inference_service_same_version_twice(cluster, log):
    cluster.add_inference_service(NAME, version=OLD)
    roll_out(inference_service_settings(), NEW, log, **FAST)
    reads_before = cluster.reads(NAME)

    result = roll_out(inference_service_settings(), NEW, log, **FAST)

    assert result.version == NEW
    assert cluster.inference_service(NAME)["metadata"]["generation"] == 2
    assert cluster.reads(NAME) - reads_before == 1


def test_inference_service_crash_loop_times_out(cluster, log):
    cluster.add_inference_service(NAME, version=OLD, rollout=Rollout.CRASH_LOOP)

    with pytest.raises(RolloutError) as raised:
        roll_out(inference_service_settings(timeout_s=1), NEW, log, **FAST)

    message = str(raised.value)
    assert message.startswith(f"InferenceService default/{NAME} did not finish rolling out model version {NEW} "
                              "within 1 s")
    assert (f"Ready=Unknown (RevisionMissing: Revision \"{NAME}-predictor-00002\" is starting.), latest created "
            f"revision {NAME}-predictor-00002, latest ready revision {NAME}-predictor-00001") in message
    assert f"kubectl describe inferenceservice {NAME} -n default" in message
    assert "k8s-analysis rollback" in message


def test_inference_service_model_load_fails_fast(cluster, log):
    cluster.add_inference_service(NAME, version=OLD, rollout=Rollout.MODEL_LOAD_FAILED)

    started = time.monotonic()
    with pytest.raises(RolloutError) as raised:
        roll_out(inference_service_settings(timeout_s=60), NEW, log, **FAST)

    assert time.monotonic() - started < 5
    # Seen with the new revision starting, then with its model failed.
    assert cluster.reads(NAME) == 2
    message = str(raised.value)
    assert message.startswith(f"InferenceService default/{NAME} failed to roll out model version {NEW} after ")
    assert ("BlockedByFailedLoad: ModelLoadFailed: Model failed to load: the weights archive is truncated "
            f"(exit code 1, in {NAME}-predictor-00002-deployment-") in message
    assert "model transition BlockedByFailedLoad" in message
    assert f"latest ready revision {NAME}-predictor-00001" in message
    assert "k8s-analysis rollback" in message
    # The old revision keeps all the traffic.
    traffic = cluster.inference_service(NAME)["status"]["components"]["predictor"]["traffic"]
    assert traffic == [{"revisionName": f"{NAME}-predictor-00001", "percent": 100, "latestRevision": True}]


@pytest.mark.parametrize(("model_status", "failure"), [
    ({"transitionStatus": "InvalidSpec"}, "InvalidSpec: no reason given"),
    ({"transitionStatus": "InvalidSpec",
      "lastFailureInfo": {"reason": "NoSupportingRuntime", "message": "No runtime supports format custom"}},
     "InvalidSpec: NoSupportingRuntime: No runtime supports format custom"),
    ({"transitionStatus": "BlockedByFailedLoad", "lastFailureInfo": {"reason": "RuntimeUnhealthy", "exitCode": 137}},
     "BlockedByFailedLoad: RuntimeUnhealthy (exit code 137)"),
])
def test_inference_service_failed_transitions(model_status, failure):
    service = {"metadata": {"generation": 3},
               "status": {"observedGeneration": 3, "modelStatus": model_status,
                          "conditions": [{"type": "Ready", "status": "False"}]}}

    progress = _inference_service_progress(service)

    assert progress.failure == failure
    assert not progress.done


def test_inference_service_stale_failure_ignored():
    # Until KServe observes the patched generation, its modelStatus describes the spec before it.
    service = {"metadata": {"generation": 4},
               "status": {"observedGeneration": 3, "modelStatus": {"transitionStatus": "BlockedByFailedLoad"}}}

    progress = _inference_service_progress(service)

    assert progress.failure is None
    assert progress.summary == "waiting for KServe to see generation 4 (it has seen 3)"


def test_inference_service_rejects_strategic_patch(cluster):
    # The API server takes strategic merge patches for built-in kinds only, so the rollout sends a merge patch.
    cluster.add_inference_service(NAME, version=OLD)
    patch = {"spec": {"predictor": {"annotations": {MODEL_VERSION_ANNOTATION: NEW}}}}

    with new_api_client() as api_client, pytest.raises(ApiException) as raised:
        client.CustomObjectsApi(api_client).patch_namespaced_custom_object(
            "serving.kserve.io", "v1beta1", "default", "inferenceservices", NAME, patch,
            _content_type=STRATEGIC_MERGE_PATCH)

    assert raised.value.status == 415
    assert cluster.inference_service(NAME)["spec"]["predictor"]["annotations"] == {MODEL_VERSION_ANNOTATION: OLD}


def test_inference_service_not_found(cluster, log):
    with pytest.raises(RolloutError) as raised:
        roll_out(inference_service_settings(name="missing"), NEW, log, **FAST)

    message = str(raised.value)
    assert message.startswith("InferenceService default/missing not found (HTTP 404: ")
    assert f"check {INFERENCE_SERVICE_ENV}='missing' and {NAMESPACE_ENV}='default'" in message
    assert "KServe's InferenceService resource is installed" in message


def test_inference_service_forbidden(cluster, log):
    cluster.add_inference_service(NAME, version=OLD)
    cluster.forbid(NAME)

    with pytest.raises(RolloutError) as raised:
        roll_out(inference_service_settings(), NEW, log, **FAST)

    assert str(raised.value).startswith("the service account lacks RBAC permission to patch "
                                        "inferenceservices.serving.kserve.io in namespace default")
