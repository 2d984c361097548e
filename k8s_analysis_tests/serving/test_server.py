"""Every route and every error of a real ``k8s-analysis serve`` process on 127.0.0.1."""

import http.client
import json
import os

import pytest
from prometheus_client.parser import text_string_to_metric_families

from k8s_analysis.model.bundle import Predictor
from k8s_analysis.model.explain import explain_texts
from k8s_analysis_tests.serving.running import INFER, MODEL, PREDICT, RunningServer, promoted_copy

BUG_NOTE = "Fixed a bug where the kubelet panicked with a nil pointer dereference when a pod had no containers."
FEATURE_NOTE = "Added a new --output flag to kubectl get that prints resources as YAML."
VERSION = "20250201T000000Z-0000a001"


@pytest.fixture(scope="module")
def models_dir(served_model_dir, tmp_path_factory):
    return promoted_copy(served_model_dir, tmp_path_factory.mktemp("models"), VERSION)


@pytest.fixture(scope="module")
def server(models_dir, tmp_path_factory):
    running = RunningServer(models_dir / "current", tmp_path_factory.mktemp("server") / "server.log",
                            "--reload-interval", "0")
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def predictor(models_dir):
    return Predictor(models_dir / "current")


def expected(predictor, texts):
    probabilities, informative = predictor.score(texts)
    return [round(float(value), 6) for value in probabilities], [not value for value in informative]


def test_v1_text_returns_result_and_version(server, predictor):
    status, body = server.request("POST", PREDICT, {"text": BUG_NOTE})

    assert status == 200
    probabilities, _ = expected(predictor, [BUG_NOTE])
    assert body["result"] == pytest.approx(probabilities[0], abs=1e-6)
    assert body["kind_bug"] is (body["result"] >= predictor.threshold)
    assert body["low_information"] is False
    assert body["model_version"] == VERSION
    assert body["threshold"] == pytest.approx(predictor.threshold)


def test_v1_instances_keep_order(server, predictor):
    texts = [BUG_NOTE, FEATURE_NOTE, BUG_NOTE.upper()]

    status, body = server.request("POST", PREDICT, {"instances": texts})

    assert status == 200
    probabilities, low_information = expected(predictor, texts)
    assert body["predictions"] == pytest.approx(probabilities, abs=1e-6)
    assert body["low_information"] == low_information == [False, False, False]
    assert body["kind_bug"] == [value >= predictor.threshold for value in body["predictions"]]
    assert body["model_version"] == VERSION


def test_v1_instance_objects_with_labels(server, predictor):
    status, body = server.request("POST", PREDICT, {"instances": [
        {"text": BUG_NOTE, "sigs": ["sig/node"], "areas": ["kubelet"]}, FEATURE_NOTE]})

    assert status == 200
    assert body["predictions"] == pytest.approx(expected(predictor, [BUG_NOTE, FEATURE_NOTE])[0], abs=1e-6)


# case-20: a null text becomes "", and each blank text gets a flagged prediction of its own.
@pytest.mark.parametrize(("body", "count"), [
    ({"text": None}, 1),
    ({"instances": [None]}, 1),
    ({"instances": ["", "   "]}, 2),
    ({"instances": [{"text": None}, "<!-- NONE -->"]}, 2),
])
def test_v1_blank_texts_flagged_low_information(server, body, count):
    status, answer = server.request("POST", PREDICT, body)

    assert status == 200
    flags = [answer["low_information"]] if "result" in answer else answer["low_information"]
    verdicts = [answer["kind_bug"]] if "result" in answer else answer["kind_bug"]
    assert len(flags) == count
    assert all(flags)
    assert not any(verdicts)


def test_v2_infer_returns_three_tensors(server, predictor):
    texts = [BUG_NOTE, FEATURE_NOTE, ""]
    status, body = server.request("POST", INFER, {
        "id": "request-7", "inputs": [{"name": "text", "shape": [3], "datatype": "BYTES", "data": texts}]})

    assert status == 200
    assert body["model_name"] == MODEL
    assert body["model_version"] == VERSION
    assert body["id"] == "request-7"
    outputs = {output["name"]: output for output in body["outputs"]}
    assert outputs["probability"]["datatype"] == "FP32"
    assert outputs["probability"]["shape"] == [3]
    assert outputs["probability"]["data"] == pytest.approx(expected(predictor, texts)[0], abs=1e-6)
    assert outputs["low_information"]["data"] == [False, False, True]
    assert outputs["kind_bug"]["datatype"] == "BOOL"
    assert body["parameters"]["threshold"] == pytest.approx(predictor.threshold)


def test_v2_nested_rows_and_chosen_output(server, predictor):
    status, body = server.request("POST", INFER, {
        "inputs": [{"name": "text", "shape": [2, 1], "datatype": "BYTES", "data": [[BUG_NOTE], [FEATURE_NOTE]]}],
        "outputs": [{"name": "probability"}]})

    assert status == 200
    assert [output["name"] for output in body["outputs"]] == ["probability"]
    assert body["outputs"][0]["data"] == pytest.approx(expected(predictor, [BUG_NOTE, FEATURE_NOTE])[0], abs=1e-6)


def test_explain_matches_in_process_explanation(server, predictor):
    reference = explain_texts(predictor, [BUG_NOTE], top=5)[0]

    single = server.request("POST", PREDICT, {"text": BUG_NOTE, "explain": True})[1]["explanation"]
    batch = server.request("POST", PREDICT, {"instances": [BUG_NOTE, ""], "explain": True})[1]["explanations"]
    v2 = server.request("POST", INFER, {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES",
                                                    "data": [BUG_NOTE]}], "parameters": {"explain": True}})[1]
    explain_route = server.request("POST", f"/v1/models/{MODEL}:explain", {"text": BUG_NOTE})[1]["explanation"]

    for answer in (single, batch[0], v2["parameters"]["explanations"][0], explain_route):
        assert answer == reference
    assert len(reference["up"]) == 5
    assert batch[1] == {"up": [], "down": []}


def test_status_metadata_and_health_routes(server, models_dir):
    assert server.request("GET", f"/v1/models/{MODEL}") == (200, {
        "name": MODEL, "ready": True, "model_version": VERSION,
        "model_source": os.path.realpath(models_dir / VERSION)})
    assert server.request("GET", "/v1/models") == (200, {"models": [MODEL]})
    assert server.request("GET", "/v2/health/live") == (200, {"live": True})
    assert server.request("GET", "/v2/health/ready") == (200, {"ready": True})
    assert server.request("GET", f"/v2/models/{MODEL}/ready") == (200, {"name": MODEL, "ready": True})
    status, metadata = server.request("GET", f"/v2/models/{MODEL}")
    assert status == 200
    assert metadata["versions"] == [VERSION]
    assert metadata["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert {output["name"]: output["datatype"] for output in metadata["outputs"]} == {
        "probability": "FP32", "kind_bug": "BOOL", "low_information": "BOOL"}
    status, server_metadata = server.request("GET", "/v2")
    assert status == 200
    assert server_metadata["name"] == "k8s-analysis"


TWO_MB = json.dumps({"instances": ["x" * 2_000_000]}).encode()


@pytest.mark.parametrize(("method", "path", "raw", "status", "message"), [
    ("POST", PREDICT, b'{"text": "unterminated', 400, "invalid JSON: Unterminated string"),
    ("POST", PREDICT, b"", 400, "the request body is empty"),
    ("POST", PREDICT, b"\xff\xfe\x00", 400, "not UTF-8"),
    ("POST", PREDICT, b'["a text"]', 400, "must be a JSON object"),
    ("POST", PREDICT, b'{"texts": ["a"]}', 400, 'got keys: "texts"'),
    ("POST", PREDICT, b'{"text": "a", "instances": ["b"]}', 400, "not both"),
    ("POST", PREDICT, b'{"text": 42}', 400, '"text" must be a string'),
    # case-20 b and c: a bare string is rejected, never scored one character at a time; [] too.
    ("POST", PREDICT, b'{"instances": "kubelet panics on start"}', 400, "not one string; wrap it in a list"),
    ("POST", PREDICT, b'{"instances": []}', 400, "empty list"),
    ("POST", PREDICT, b'{"instances": {"text": "a"}}', 400, "must be a list of texts, not an object"),
    ("POST", PREDICT, b'{"instances": ["a", 7]}', 400, "instances[1] must be a string"),
    ("POST", PREDICT, b'{"instances": [{"sigs": ["node"]}]}', 400, 'instances[0] is an object without "text"'),
    ("POST", PREDICT, b'{"instances": [{"text": "a", "sigs": "node"}]}', 400, "instances[0].sigs must be a list"),
    ("POST", PREDICT, b'{"text": "a", "explain": "yes"}', 400, '"explain" must be true or false'),
    ("POST", PREDICT, json.dumps({"instances": ["a"] * 101, "explain": True}).encode(), 400,
     "explanations are limited to 100 texts per request, and this one has 101"),
    ("POST", INFER, b'{"inputs": [{"name": "text", "shape": [1], "datatype": "FP32", "data": [1.0]}]}', 400,
     'datatype \'FP32\'; texts go in a "BYTES" tensor'),
    ("POST", INFER, b'{"inputs": [{"name": "text", "shape": [3], "datatype": "BYTES", "data": ["a"]}]}', 400,
     "shape [3] but 1 text; use [1]"),
    ("POST", INFER, b'{"inputs": [{"name": "text", "shape": [0], "datatype": "BYTES", "data": []}]}', 400,
     "has no texts"),
    ("POST", INFER, b'{"inputs": []}', 400, '"inputs" must be a non-empty list'),
    ("POST", INFER, b'{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a"]}], '
                    b'"explain": true}', 400, 'in V2, "explain" goes in "parameters"'),
    ("POST", INFER, b'{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [5]}]}', 400,
     "data[0] must be a string"),
    ("POST", INFER, b'{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a"]}], '
                    b'"outputs": [{"name": "score"}]}', 400, "unknown output 'score'"),
    # case-20 e: a 2 MB body is refused before it is parsed.
    ("POST", PREDICT, TWO_MB, 413, "over this server's limit of 1,048,576"),
    ("POST", "/v1/models/other-model:predict", b'{"text": "a"}', 404, "unknown model 'other-model'"),
    ("POST", "/v2/models/other-model/infer", b'{"inputs": []}', 404, "unknown model 'other-model'"),
    ("GET", "/v1/models/other-model", None, 404, "unknown model"),
    ("GET", "/v2/models/other-model", None, 404, "unknown model"),
    ("POST", "/v1/models/other-model/load", None, 404, "unknown model"),
    ("GET", "/v3/anything", None, 404, "no route /v3/anything"),
    ("POST", f"/v1/models/{MODEL}:predit", b'{"text": "a"}', 404, "the V1 verbs are :predict and :explain"),
    ("POST", PREDICT, b'{"text": {"text": "a"}}', 400, '"text" must be a string, not an object'),
    ("GET", PREDICT, None, 405, f"GET is not allowed on {PREDICT}"),
    ("GET", f"/v1/models/{MODEL}:explain", None, 405, "GET is not allowed on"),
    ("DELETE", "/v2/health/ready", None, 405, "DELETE is not allowed"),
])
def test_client_mistake_returns_json_error(server, method, path, raw, status, message):
    answer_status, body = server.request(method, path, raw=raw)

    assert answer_status == status
    assert isinstance(body, dict) and set(body) == {"error"}
    assert message in body["error"]
    assert "Traceback" not in body["error"]
    assert f"{method} {path}: {status} " in server.log()


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("GET", INFER, "POST"),
    ("GET", PREDICT, "POST"),
    ("PUT", PREDICT, "POST"),
    ("POST", f"/v1/models/{MODEL}", "GET, HEAD"),
])
def test_wrong_method_names_allowed_method(server, method, path, allowed):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request(method, path)
    response = connection.getresponse()
    response.read()
    connection.close()

    assert response.status == 405
    # Starlette keeps a route's methods in a set, so their order varies between processes.
    assert set(response.getheader("allow").split(", ")) == set(allowed.split(", "))


def test_routing_errors_are_counted(server):
    before = metric_samples(server)
    server.request("GET", "/no/such/route")
    server.request("GET", INFER)
    after = metric_samples(server)

    unmatched = ("k8s_analysis_http_request_errors_total", (("route", "unmatched"), ("status", "404")))
    wrong_method = ("k8s_analysis_http_request_errors_total",
                    (("route", "/v2/models/{name}/infer"), ("status", "405")))
    assert after[unmatched] - before.get(unmatched, 0) == 1
    assert after[wrong_method] - before.get(wrong_method, 0) == 1
    # A routing error takes no handler time, so it stays out of the latency histogram.
    latency = ("k8s_analysis_http_request_duration_seconds_count", (("route", "/v2/models/{name}/infer"),))
    assert after.get(latency, 0) == before.get(latency, 0)


def test_chunked_body_over_limit_returns_413(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    chunks = (b"x" * 65_536 for _ in range(40))
    connection.request("POST", PREDICT, body=chunks, encode_chunked=True)
    response = connection.getresponse()

    assert response.status == 413
    assert "over this server's limit" in json.loads(response.read())["error"]
    connection.close()


def metric_samples(server) -> dict:
    status, text = server.request("GET", "/metrics")
    assert status == 200
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_count_requests_and_version(server):
    before = metric_samples(server)
    for _ in range(3):
        server.request("POST", PREDICT, {"text": BUG_NOTE})
    server.request("POST", PREDICT, {"instances": [BUG_NOTE, FEATURE_NOTE]})
    server.request("POST", PREDICT, raw=b"{")
    after = metric_samples(server)

    route = ("route", "/v1/models/{name}:predict")

    def grown(name, *labels):
        key = (name, tuple(sorted(labels)))
        return after.get(key, 0) - before.get(key, 0)

    assert grown("k8s_analysis_http_requests_total", route, ("status", "200")) == 4
    assert grown("k8s_analysis_http_requests_total", route, ("status", "400")) == 1
    assert grown("k8s_analysis_http_request_errors_total", route, ("status", "400")) == 1
    assert grown("k8s_analysis_http_request_duration_seconds_count", route) == 5
    assert grown("k8s_analysis_predictions_total") == 5
    assert after[("k8s_analysis_model_info", (("name", MODEL), ("version", VERSION)))] == 1
    assert after[("k8s_analysis_model_ready", ())] == 1
    assert after[("k8s_analysis_model_reloads_total", (("outcome", "success"),))] == 1


def test_server_process_without_tensorflow(server):
    maps = open(f"/proc/{server.process.pid}/maps", encoding="utf-8").read()

    assert "tensorflow" not in maps
    assert "sklearn" in maps or "scipy" in maps  # the check reads the right process's libraries
