"""A fake Kubernetes API server on 127.0.0.1 for the tests of the predictor rollout.

The server serves the reads and patches that the official kubernetes client sends for apps/v1
Deployments and KServe InferenceServices (serving.kserve.io/v1beta1), with bodies, Status
errors and patch content types shaped like the real API server's. A patch that changes an
object's spec bumps its ``metadata.generation``. A simulated controller then moves the rollout
one step forward on each GET of the object, and a test chooses whether the rollout succeeds,
never gets available pods (a crash loop), or hits the Deployment's progress deadline.

`write_kubeconfig` writes a kubeconfig that points the client at the server with a dummy token.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import hashlib
import json
import logging
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

TOKEN = "fake-kubernetes-token"
SERVICE_ACCOUNT = "system:serviceaccount:k8s-analysis:pipeline"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
# The API server accepts strategic merge patches for built-in kinds only, not for custom resources.
CUSTOM_RESOURCE_PATCH_TYPES = "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"

DEPLOYMENT_PATH = re.compile(r"/apis/apps/v1/namespaces/(?P<namespace>[^/]+)/deployments/(?P<name>[^/]+)")
INFERENCE_SERVICE_PATH = re.compile(
    r"/apis/serving\.kserve\.io/v1beta1/namespaces/(?P<namespace>[^/]+)/inferenceservices/(?P<name>[^/]+)")


class Rollout(enum.Enum):
    """How the simulated controller handles the next rollout of an object."""

    SUCCEEDS = "succeeds"
    CRASH_LOOP = "crash-loop"
    """The new pods start but never become available, so the rollout never finishes."""
    DEADLINE_EXCEEDED = "deadline-exceeded"
    """As CRASH_LOOP, and the Deployment's Progressing condition reports ProgressDeadlineExceeded."""
    MODEL_LOAD_FAILED = "model-load-failed"
    """For an InferenceService: the new revision's model fails to load (transitionStatus BlockedByFailedLoad)."""


@dataclasses.dataclass(frozen=True)
class RecordedRequest:
    """One request the server received, and the status it returned."""

    method: str
    path: str
    content_type: str | None
    authorization: str | None
    status: int
    body: bytes = b""

    def json(self):
        """The request body parsed as JSON (None when it was empty)."""
        return json.loads(self.body) if self.body else None


@dataclasses.dataclass
class _Stored:
    """An object the server holds, and how its controller treats the next rollout."""

    body: dict
    rollout: Rollout
    revisions: int = 1
    """KServe only: how many predictor revisions exist; the newest is named by this count."""


class _ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.status = status
        self.body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                     "message": message, "reason": reason, "details": details or {}, "code": status}


class FakeKubernetes:
    """A Kubernetes API server on 127.0.0.1 holding Deployments and KServe InferenceServices."""

    def __init__(self, token: str = TOKEN):
        self.token = token
        self.requests: list[RecordedRequest] = []
        self._objects: dict[tuple[str, str, str], _Stored] = {}
        self._forbidden: dict[tuple[str, str], set[str]] = {}
        self._failing_reads: dict[tuple[str, str], list[int]] = {}
        self._lock = threading.Lock()
        self._resource_version = 1000
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("FakeKubernetes has no base_url yet: call start() first")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> FakeKubernetes:
        """Bind a free port on 127.0.0.1 and serve from a background thread."""
        if self._httpd is not None:
            raise RuntimeError(f"FakeKubernetes is already serving at {self.base_url}")
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _RequestHandler)
        self._httpd.fake = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-kubernetes", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and join the server thread."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()
        self._httpd = None
        self._thread = None
        logger.info("fake Kubernetes stopped after %d requests", len(self.requests))

    def __enter__(self) -> FakeKubernetes:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def write_kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        """Write a kubeconfig whose current context is this server with the dummy bearer token."""
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.base_url}}],
            "users": [{"name": "fake", "user": {"token": self.token}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": namespace}}],
            "current-context": "fake",
        }
        # JSON is valid YAML, and the client reads the file with a YAML parser.
        path.write_text(json.dumps(kubeconfig, indent=2), encoding="utf-8")
        return path

    # -- test controls ----------------------------------------------------

    def add_deployment(self, name: str, namespace: str = "default", replicas: int = 2,
                       version: str | None = None, rollout: Rollout = Rollout.SUCCEEDS) -> dict:
        """Add a Deployment whose pods are all available, serving ``version`` if given."""
        annotations = {} if version is None else {"k8s-analysis/model-version": version}
        labels = {"app.kubernetes.io/name": "k8s-analysis", "app.kubernetes.io/component": "predictor"}
        template = {
            "metadata": {"labels": labels, "annotations": annotations},
            "spec": {"containers": [{"name": "server", "image": "k8s-analysis:test",
                                     "args": ["serve", "--host", "0.0.0.0"]}]},
        }
        body = {
            "kind": "Deployment",
            "apiVersion": "apps/v1",
            "metadata": self._metadata(name, namespace),
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": template,
                "strategy": {"type": "RollingUpdate",
                             "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                "progressDeadlineSeconds": 600,
            },
            "status": {
                "observedGeneration": 1,
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
                "conditions": [
                    _condition("Available", "True", "MinimumReplicasAvailable",
                               "Deployment has minimum availability."),
                    _condition("Progressing", "True", "NewReplicaSetAvailable",
                               f'ReplicaSet "{_replica_set(name, template)}" has successfully progressed.'),
                ],
            },
        }
        self._add("deployments", body, rollout)
        return copy.deepcopy(body)

    def add_inference_service(self, name: str, namespace: str = "default", version: str | None = None,
                              rollout: Rollout = Rollout.SUCCEEDS) -> dict:
        """Add a ready serverless-mode InferenceService with one predictor revision."""
        annotations = {} if version is None else {"k8s-analysis/model-version": version}
        revision = _revision(name, 1)
        body = {
            "kind": "InferenceService",
            "apiVersion": "serving.kserve.io/v1beta1",
            "metadata": self._metadata(name, namespace),
            "spec": {"predictor": {
                "annotations": annotations,
                "model": {"modelFormat": {"name": "custom"}, "storageUri": "pvc://models/current"},
            }},
            "status": {
                "observedGeneration": 1,
                "url": f"http://{name}.{namespace}.example.com",
                "conditions": [_condition(kind, "True") for kind in ("IngressReady", "PredictorReady", "Ready")],
                "components": {"predictor": {
                    "latestCreatedRevision": revision,
                    "latestReadyRevision": revision,
                    "latestRolledoutRevision": revision,
                    "traffic": [{"revisionName": revision, "percent": 100, "latestRevision": True}],
                }},
                "modelStatus": _model_status("UpToDate", active="Loaded", target="Loaded"),
            },
        }
        self._add("inferenceservices", body, rollout)
        return copy.deepcopy(body)

    def forbid(self, name: str, namespace: str = "default", verbs: tuple[str, ...] = ("get", "patch")) -> None:
        """Return 403 Forbidden for ``verbs`` on the object ``name``, as RBAC does without a matching Role."""
        with self._lock:
            self._forbidden[(namespace, name)] = set(verbs)

    def fail_reads(self, name: str, namespace: str = "default", status: int = 503, times: int = 1) -> None:
        """Fail the next ``times`` GETs of ``name`` with ``status``, as an API server under load or restarting does."""
        with self._lock:
            self._failing_reads[(namespace, name)] = [status] * times

    def deployment(self, name: str, namespace: str = "default") -> dict:
        """The Deployment as stored now, without moving its rollout."""
        return self._snapshot("deployments", namespace, name)

    def inference_service(self, name: str, namespace: str = "default") -> dict:
        """The InferenceService as stored now, without moving its rollout."""
        return self._snapshot("inferenceservices", namespace, name)

    def writes(self) -> list[RecordedRequest]:
        """The PATCH requests received, in order."""
        return [request for request in list(self.requests) if request.method == "PATCH"]

    def reads(self, name: str) -> int:
        """Count the GET requests for the object ``name``."""
        return sum(1 for request in list(self.requests)
                   if request.method == "GET" and request.path.endswith(f"/{name}"))

    # -- request handling -------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, dict]:
        """Serve one request and record it. Return the status and the JSON response body."""
        path = urlsplit(target).path
        try:
            status, response_body = self._respond(method, path, headers, body)
        except _ApiError as error:
            status, response_body = error.status, error.body
        with self._lock:
            self.requests.append(RecordedRequest(method, path, headers.get("content-type"),
                                                 headers.get("authorization"), status, body))
        return status, response_body

    def _respond(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict]:
        if headers.get("authorization") != f"Bearer {self.token}":
            raise _ApiError(401, "Unauthorized", "Unauthorized")
        match = DEPLOYMENT_PATH.fullmatch(path)
        resource, group = "deployments", "apps"
        if match is None:
            match = INFERENCE_SERVICE_PATH.fullmatch(path)
            resource, group = "inferenceservices", "serving.kserve.io"
        if match is None or method not in ("GET", "PATCH"):
            raise _ApiError(404, "NotFound", "the server could not find the requested resource")

        namespace, name = match["namespace"], match["name"]
        verb = method.lower()
        with self._lock:
            if verb in self._forbidden.get((namespace, name), ()):
                raise _ApiError(403, "Forbidden",
                                f'{resource}.{group} "{name}" is forbidden: User "{SERVICE_ACCOUNT}" cannot {verb} '
                                f'resource "{resource}" in API group "{group}" in the namespace "{namespace}"',
                                {"name": name, "group": group, "kind": resource})
            failures = self._failing_reads.get((namespace, name))
            if method == "GET" and failures:
                status = failures.pop()
                raise _ApiError(status, HTTPStatus(status).phrase.replace(" ", ""), HTTPStatus(status).phrase)
            stored = self._objects.get((resource, namespace, name))
            if stored is None:
                raise _ApiError(404, "NotFound", f'{resource}.{group} "{name}" not found',
                                {"name": name, "group": group, "kind": resource})
            if method == "PATCH":
                self._patch(resource, stored, headers.get("content-type", ""), body)
            else:
                self._advance(resource, stored)
            return 200, copy.deepcopy(stored.body)

    def _patch(self, resource: str, stored: _Stored, content_type: str, body: bytes) -> None:
        """Apply a merge or strategic merge patch; a spec change bumps generation and restarts the rollout."""
        media_type = content_type.split(";")[0].strip()
        accepted = (MERGE_PATCH,) if resource == "inferenceservices" else (MERGE_PATCH, STRATEGIC_MERGE_PATCH)
        if media_type not in accepted:
            known = CUSTOM_RESOURCE_PATCH_TYPES if resource == "inferenceservices" else ", ".join(accepted)
            raise _ApiError(415, "UnsupportedMediaType",
                            f"the body of the request was in an unknown format - accepted media types include: "
                            f"{known}")
        try:
            patch = json.loads(body)
        except ValueError as error:
            raise _ApiError(400, "BadRequest", f"error decoding patch: {error}") from None
        if not isinstance(patch, dict):
            raise _ApiError(400, "BadRequest", "the patch must be a JSON object")

        before = copy.deepcopy(stored.body)
        # The status of an object changes only through its /status subresource.
        patch.pop("status", None)
        _merge(stored.body, patch)
        if stored.body == before:
            return
        self._resource_version += 1
        stored.body["metadata"]["resourceVersion"] = str(self._resource_version)
        if stored.body["spec"] != before["spec"]:
            stored.body["metadata"]["generation"] += 1
            if resource == "inferenceservices" and _pod_spec_changed(before, stored.body):
                stored.revisions += 1

    def _advance(self, resource: str, stored: _Stored) -> None:
        """Run one step of the object's controller; a status change bumps resourceVersion."""
        status_before = copy.deepcopy(stored.body["status"])
        if resource == "deployments":
            _advance_deployment(stored)
        else:
            _advance_inference_service(stored)
        if stored.body["status"] != status_before:
            self._resource_version += 1
            stored.body["metadata"]["resourceVersion"] = str(self._resource_version)

    def _metadata(self, name: str, namespace: str) -> dict:
        uid = hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()
        return {"name": name, "namespace": namespace, "generation": 1,
                "uid": f"{uid[:8]}-{uid[8:12]}-{uid[12:16]}-{uid[16:20]}-{uid[20:32]}",
                "creationTimestamp": "2025-01-01T00:00:00Z"}

    def _add(self, resource: str, body: dict, rollout: Rollout) -> None:
        key = (resource, body["metadata"]["namespace"], body["metadata"]["name"])
        with self._lock:
            self._resource_version += 1
            body["metadata"]["resourceVersion"] = str(self._resource_version)
            self._objects[key] = _Stored(copy.deepcopy(body), rollout)

    def _snapshot(self, resource: str, namespace: str, name: str) -> dict:
        with self._lock:
            return copy.deepcopy(self._objects[(resource, namespace, name)].body)


# -- the simulated controllers -----------------------------------------------------------


def _advance_deployment(stored: _Stored) -> None:
    """Move a Deployment's rollout one step: seen, new pods started, new pods available, old pods gone."""
    body = stored.body
    status = body["status"]
    desired = body["spec"]["replicas"]
    generation = body["metadata"]["generation"]
    replica_set = _replica_set(body["metadata"]["name"], body["spec"]["template"])
    if status["observedGeneration"] < generation:
        status.update(observedGeneration=generation, updatedReplicas=0)
        _set_condition(status, "Progressing", "True", "ReplicaSetUpdated",
                       f'ReplicaSet "{replica_set}" is progressing.')
    elif status["updatedReplicas"] < desired:
        # The new pods run beside the old ones, which stay available until the new ones are.
        status.update(updatedReplicas=desired, replicas=2 * desired, availableReplicas=desired,
                      readyReplicas=desired, unavailableReplicas=desired)
        if stored.rollout is Rollout.DEADLINE_EXCEEDED:
            _set_condition(status, "Progressing", "False", "ProgressDeadlineExceeded",
                           f'ReplicaSet "{replica_set}" has timed out progressing.')
    elif stored.rollout is not Rollout.SUCCEEDS:
        return
    elif status["availableReplicas"] < status["replicas"]:
        status.update(availableReplicas=2 * desired, readyReplicas=2 * desired)
        status.pop("unavailableReplicas", None)
    elif status["replicas"] > desired:
        status.update(replicas=desired, availableReplicas=desired, readyReplicas=desired)
        _set_condition(status, "Progressing", "True", "NewReplicaSetAvailable",
                       f'ReplicaSet "{replica_set}" has successfully progressed.')


def _advance_inference_service(stored: _Stored) -> None:
    """Move an InferenceService's rollout one step: new revision created, then ready with its traffic share."""
    body = stored.body
    status = body["status"]
    predictor = status["components"]["predictor"]
    generation = body["metadata"]["generation"]
    newest = _revision(body["metadata"]["name"], stored.revisions)
    if status["observedGeneration"] < generation:
        status["observedGeneration"] = generation
        if predictor["latestCreatedRevision"] != newest:
            predictor["latestCreatedRevision"] = newest
            status["modelStatus"] = _model_status("InProgress", active="Loaded", target="Pending")
            for kind in ("PredictorReady", "Ready"):
                _set_condition(status, kind, "Unknown", "RevisionMissing", f'Revision "{newest}" is starting.')
            return
    elif predictor["latestReadyRevision"] == newest:
        return
    if predictor["latestReadyRevision"] != newest and stored.rollout is Rollout.MODEL_LOAD_FAILED:
        message = "Model failed to load: the weights archive is truncated"
        status["modelStatus"] = _model_status("BlockedByFailedLoad", active="Loaded", target="FailedToLoad")
        status["modelStatus"]["lastFailureInfo"] = {
            "location": f"{newest}-deployment-7c9d5b6f4-x2k8q", "reason": "ModelLoadFailed",
            "message": message, "exitCode": 1}
        for kind in ("PredictorReady", "Ready"):
            _set_condition(status, kind, "False", "RevisionFailed",
                           f'Revision "{newest}" failed with message: {message}.')
        return
    if predictor["latestReadyRevision"] != newest and stored.rollout is not Rollout.SUCCEEDS:
        return
    predictor["latestReadyRevision"] = newest
    status["modelStatus"] = _model_status("UpToDate", active="Loaded", target="Loaded")
    _route_traffic(body)
    for kind in ("PredictorReady", "Ready"):
        _set_condition(status, kind, "True")


def _model_status(transition: str, active: str, target: str) -> dict:
    """Build KServe's ``status.modelStatus`` for one predictor copy."""
    failed = 1 if target == "FailedToLoad" else 0
    return {"transitionStatus": transition,
            "states": {"activeModelState": active, "targetModelState": target},
            "copies": {"failedCopies": failed, "totalCopies": 1}}


def _route_traffic(body: dict) -> None:
    """Split the traffic as KServe does.

    The newest ready revision gets the canary share, and the last rolled out revision the rest.
    With 100 percent, the newest ready revision becomes the rolled out one.
    """
    predictor = body["status"]["components"]["predictor"]
    percent = body["spec"]["predictor"].get("canaryTrafficPercent", 100)
    ready = predictor["latestReadyRevision"]
    rolled_out = predictor.get("latestRolledoutRevision")
    if percent == 100 or rolled_out in (None, ready):
        if rolled_out != ready:
            predictor["previousRolledoutRevision"] = rolled_out
        predictor["latestRolledoutRevision"] = ready
        predictor["traffic"] = [{"revisionName": ready, "percent": 100, "latestRevision": True}]
        return
    predictor["traffic"] = [
        {"revisionName": ready, "percent": percent, "latestRevision": True, "tag": "latest"},
        {"revisionName": rolled_out, "percent": 100 - percent, "latestRevision": False, "tag": "prev"},
    ]


# -- helpers ----------------------------------------------------------------------------------


def _merge(target: dict, patch: dict) -> None:
    """Apply a JSON merge patch (RFC 7386) in place: objects merge, null deletes, other values replace.

    A strategic merge patch gets the same treatment, which differs from the API server's only for
    lists, and the rollout patches only maps.
    """
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _pod_spec_changed(before: dict, after: dict) -> bool:
    """True when the predictor changed in more than its traffic share, so KServe makes a new revision."""
    def pod_fields(body: dict) -> dict:
        return {key: value for key, value in body["spec"]["predictor"].items() if key != "canaryTrafficPercent"}
    return pod_fields(before) != pod_fields(after)


def _condition(kind: str, status: str, reason: str | None = None, message: str | None = None) -> dict:
    condition = {"type": kind, "status": status, "lastTransitionTime": "2025-01-01T00:00:00Z"}
    if reason is not None:
        condition["reason"] = reason
    if message is not None:
        condition["message"] = message
    return condition


def _set_condition(status: dict, kind: str, value: str, reason: str | None = None, message: str | None = None) -> None:
    conditions = [condition for condition in status.get("conditions", []) if condition["type"] != kind]
    status["conditions"] = conditions + [_condition(kind, value, reason, message)]


def _replica_set(deployment: str, template: dict) -> str:
    """A ReplicaSet name with a hash of the pod template, as the Deployment controller names them."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
    return f"{deployment}-{digest[:10]}"


def _revision(service: str, number: int) -> str:
    return f"{service}-predictor-{number:05d}"


class _RequestHandler(BaseHTTPRequestHandler):
    server_version = "FakeKubernetes/1.0"

    def do_GET(self) -> None:
        self._serve("GET")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        status, response_body = self.server.fake.handle(method, self.path, headers, body)
        data = json.dumps(response_body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args) -> None:
        logger.debug("%s %s", self.address_string(), format % args)
