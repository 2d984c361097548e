"""Readiness, hot reload and refused versions, on real server processes."""

import http.client
import json
import os
import signal
import threading
import time

import pytest

from k8s_analysis.model.bundle import Predictor, promote
from k8s_analysis_tests.serving.running import MODEL, PREDICT, RunningServer, broken_version, copy_version
from k8s_analysis_tests.serving.test_server import BUG_NOTE, metric_samples

FIRST = "20250301T000000Z-0000b001"
SECOND = "20250302T000000Z-0000b002"
BROKEN = "20250303T000000Z-0000b003"
THIRD = "20250304T000000Z-0000b004"
LOAD = f"/v1/models/{MODEL}/load"
MODEL_ROUTE = f"/v1/models/{MODEL}"


@pytest.fixture(scope="module")
def versions(served_model_dir, tmp_path_factory):
    """Three good versions that score BUG_NOTE differently, and one whose weights are garbage."""
    models_dir = tmp_path_factory.mktemp("models")
    copy_version(served_model_dir, models_dir, FIRST)
    copy_version(served_model_dir, models_dir, SECOND, bias_shift=-3.0)
    copy_version(served_model_dir, models_dir, THIRD, bias_shift=2.0)
    broken_version(served_model_dir, models_dir, BROKEN)
    scores = {version: round(float(Predictor(models_dir / version).score([BUG_NOTE])[0][0]), 6)
              for version in (FIRST, SECOND, THIRD)}
    assert len(set(scores.values())) == 3
    return models_dir, scores


def start(models_dir, tmp_path_factory, *options) -> RunningServer:
    return RunningServer(models_dir / "current", tmp_path_factory.mktemp("server") / "server.log", *options)


def test_readiness_waits_for_a_model(versions, tmp_path_factory):
    models_dir, scores = versions
    (models_dir / "current").unlink(missing_ok=True)
    server = start(models_dir, tmp_path_factory, "--reload-interval", "0.2")
    try:
        server.wait_until(lambda: server.request("GET", "/v2/health/live")[0] == 200, description="liveness")
        assert server.request("GET", "/v2/health/ready") == (503, {"ready": False})
        status, body = server.request("GET", f"/v1/models/{MODEL}")
        assert status == 503
        assert body["ready"] is False
        assert "no model at" in body["error"]
        status, body = server.request("POST", PREDICT, {"text": BUG_NOTE})
        assert status == 503
        assert "no model is loaded yet" in body["error"]
        assert server.request("GET", f"/v2/models/{MODEL}/ready")[0] == 503
        status, body = server.request("POST", LOAD)
        assert status == 503
        assert "no model at" in body["error"]
        # Nothing to load is not a failed load.
        assert ("k8s_analysis_model_reloads_total", (("outcome", "failure"),)) not in metric_samples(server)

        promote(models_dir, FIRST)
        server.wait_ready()

        status, body = server.request("POST", PREDICT, {"text": BUG_NOTE})
        assert status == 200
        assert body["model_version"] == FIRST
        assert body["result"] == scores[FIRST]
    finally:
        # uvicorn shuts down cleanly, then re-raises SIGTERM, as servers conventionally do.
        assert server.stop() == -signal.SIGTERM
    assert "Application shutdown complete" in server.log()
    assert "prediction server stopped" in server.log()


def test_load_route_swaps_and_rejects_broken(versions, tmp_path_factory):
    models_dir, scores = versions
    promote(models_dir, FIRST)
    server = start(models_dir, tmp_path_factory, "--reload-interval", "0")
    try:
        server.wait_ready()
        assert server.request("POST", LOAD) == (200, {"name": MODEL, "ready": True, "model_version": FIRST,
                                                      "reloaded": False})
        promote(models_dir, SECOND)
        # With the watcher off, nothing changes until the load request.
        assert server.serving_version() == FIRST

        assert server.request("POST", LOAD)[1]["reloaded"] is True
        status, body = server.request("POST", PREDICT, {"text": BUG_NOTE})
        assert (status, body["model_version"], body["result"]) == (200, SECOND, scores[SECOND])
        status, body = server.request("GET", MODEL_ROUTE)
        assert (status, body["model_version"]) == (200, SECOND)
        assert body["model_source"] == os.path.realpath(models_dir / SECOND)

        promote(models_dir, BROKEN)
        status, body = server.request("POST", LOAD)
        assert status == 500
        assert f"cannot load {models_dir / BROKEN}" in body["error"]
        assert "is not a readable weights archive" in body["error"]
        assert "pickle" not in body["error"]
        assert f"still serving {SECOND}" in body["error"]
        assert body["model_version"] == SECOND
        status, body = server.request("POST", PREDICT, {"text": BUG_NOTE})
        assert (status, body["model_version"]) == (200, SECOND)
        assert metric_samples(server)[("k8s_analysis_model_reloads_total", (("outcome", "failure"),))] == 1

        promote(models_dir, THIRD)
        assert server.request("POST", LOAD)[1] == {"name": MODEL, "ready": True, "model_version": THIRD,
                                                   "reloaded": True}
        samples = metric_samples(server)
        assert samples[("k8s_analysis_model_info", (("name", MODEL), ("version", THIRD)))] == 1
        assert samples[("k8s_analysis_model_info", (("name", MODEL), ("version", SECOND)))] == 0
    finally:
        server.stop()
    log = server.log()
    assert f"model reloaded: {SECOND} replaces {FIRST}" in log
    assert f"cannot load {models_dir / BROKEN}" in log


def hammer(port: int, stop: threading.Event, answers: list, failures: list) -> None:
    """Send single-text predictions on one keep-alive connection until ``stop`` is set."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = json.dumps({"text": BUG_NOTE})
    while not stop.is_set():
        try:
            connection.request("POST", PREDICT, body=body)
            response = connection.getresponse()
            content = response.read()
        except (OSError, http.client.HTTPException) as error:
            failures.append(repr(error))
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            continue
        if response.status != 200:
            failures.append(f"{response.status} {content[:200]!r}")
            continue
        answer = json.loads(content)
        answers.append((answer["model_version"], answer["result"]))
    connection.close()


def test_reload_under_load_loses_nothing(versions, tmp_path_factory):
    models_dir, scores = versions
    promote(models_dir, FIRST)
    server = start(models_dir, tmp_path_factory, "--reload-interval", "0.1")
    answers, failures, stop = [], [], threading.Event()
    threads = [threading.Thread(target=hammer, args=(server.port, stop, answers, failures)) for _ in range(8)]
    try:
        server.wait_ready()
        for thread in threads:
            thread.start()
        sequence = [SECOND, FIRST, BROKEN, THIRD, FIRST, SECOND]
        for version in sequence:
            promote(models_dir, version)
            if version != BROKEN:
                # The watcher finds some versions; the load request finds the others first.
                if version == THIRD:
                    server.request("POST", LOAD)
                server.wait_until(lambda v=version: server.serving_version() == v, description=f"serving {version}")
            else:
                time.sleep(0.5)
                assert server.serving_version() == FIRST
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        server.stop()

    assert failures == []
    assert len(answers) > 200
    served = {version for version, _ in answers}
    assert served == {FIRST, SECOND, THIRD}
    # Each answer's probability is its own version's: no request mixed two models.
    assert all(result == scores[version] for version, result in answers)
