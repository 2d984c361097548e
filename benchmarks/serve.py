"""Benchmark: the HTTP prediction server (`k8s-analysis serve`) against Keras model.predict per request.

Every text is a real published release note from ``SHARED_DATA / "release-notes"`` (entries
marked ``do_not_publish`` and texts with no words left after ``clean_text`` are skipped). The
script starts each server itself on a free 127.0.0.1 port and stops it at the end, even when a
step fails. It measures:

- start-up: seconds from spawning ``k8s-analysis serve`` to the first 200 from
  ``GET /v2/health/ready`` (target under 3 s), and the server's resident memory, the process
  plus its children, right after ready and once warmed by the runs below (target under 400 MB).
  With ``--workers`` above 1 the RSS sum counts pages the workers share once per worker, so the
  PSS sum is printed beside it. The script then sends predictions on new connections until 20 in
  a row succeed, and counts any 503 before that (every worker should be ready before it accepts).
- single text: a child process (the ``load`` stage) sends ``{"text": ...}`` requests back to
  back from 16 concurrent workers over one aiohttp session with keep-alive connections (on uvloop
  when it is installed), cycling through the texts. After a warm-up of 2 s that is not counted, it records each request's
  latency for 10 s. Targets: at least 1,000 requests/s and p99 under 20 ms.
- batch: one ``{"instances": [...]}`` request with 1,000 texts, timed 10 times after 2 untimed
  tries. Target: median under 150 ms.
- reference: the original tool's path, a Starlette app run by uvicorn in its own process that
  loads the same model folder and, per request, turns the one text into a dense feature row and
  calls Keras ``model.predict``. The same load stage measures it (5 s by default, because it is
  slow), and the output gives our throughput and p99 as ratios against it. The script also
  compares the two servers' probabilities on 50 texts.

The load generator shares the CPU cores with the server, so on a small machine its own work
lowers the measured throughput. The closing line is one JSON object with every figure.

Run: ``.venv/bin/python benchmarks/serve.py [--model-dir data/models/current] [--workers N]``
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import itertools
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from common import REPOSITORY, SHARED_DATA, run_stage  # benchmarks/ is on sys.path when run as a script

DEFAULT_MODEL_DIR = REPOSITORY / "data" / "models" / "current"
SERVE_EXECUTABLE = Path(sys.executable).parent / "k8s-analysis"
PREDICT_PATH = "/v1/models/kubernetes-analysis:predict"
READY_PATH = "/v2/health/ready"
TARGET_RPS = 1_000.0
TARGET_P99_MS = 20.0
TARGET_BATCH_MS = 150.0
TARGET_STARTUP_SECONDS = 3.0
TARGET_RSS_MB = 400.0
READY_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 10.0
BATCH_WARMUP_TRIES = 2
AGREEMENT_TEXTS = 50
SETTLED_REQUESTS = 20
MB = 1024 * 1024


def release_note_texts() -> list[str]:
    """Return the distinct published note texts in a fixed shuffled order, so long and short notes mix."""
    from k8s_analysis.model.text import clean_text

    texts = {}
    for path in sorted((SHARED_DATA / "release-notes").glob("**/*.json")):
        for entry in json.loads(path.read_text()).values():
            text = entry.get("text")
            if entry.get("do_not_publish") or not isinstance(text, str) or not clean_text(text):
                continue
            texts[text] = None
    ordered = list(texts)
    random.Random(0).shuffle(ordered)
    return ordered


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    """A server process started by this script, with its URL and the file that collects its output."""

    name: str
    process: subprocess.Popen
    url: str
    log_path: Path
    ready_seconds: float = 0.0

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def start_server(name: str, command: list[str], port: int, log_dir: Path, env: dict | None = None) -> Server:
    """Spawn ``command`` and wait for its first 200 from the ready route, timed from the spawn as ``ready_seconds``."""
    log_path = log_dir / f"{name}.log"
    with open(log_path, "wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPOSITORY,
                                   env={**os.environ, **(env or {})})
    server = Server(name, process, f"http://127.0.0.1:{port}", log_path)
    try:
        server.ready_seconds = wait_ready(server, started)
    except BaseException:
        stop_server(server)
        raise
    return server


def wait_ready(server: Server, started: float) -> float:
    """Poll the ready route every 10 ms and return the seconds from ``started`` to the first 200."""
    deadline = started + READY_TIMEOUT_SECONDS
    while time.perf_counter() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with code {server.process.returncode} before it was ready. "
                               f"Its last output:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(server.url + READY_PATH, timeout=1) as response:
                if response.status == 200:
                    return time.perf_counter() - started
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass  # not listening yet, or not ready (an HTTPError such as 503 is a URLError)
        time.sleep(0.01)
    raise TimeoutError(f"{server.name} was not ready within {READY_TIMEOUT_SECONDS:.0f} s. "
                       f"Its last output:\n{server.log_tail()}")


def stop_server(server: Server) -> dict:
    """Terminate the server, wait, then kill it and any child still running, by PID.

    Returns how long SIGTERM took and the exit code, or ``killed: True`` when it had to be killed.
    """
    import psutil

    try:
        children = psutil.Process(server.process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    started = time.perf_counter()
    killed = False
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
            killed = True
    stop_seconds = time.perf_counter() - started
    for child in children:
        try:
            child.wait(STOP_TIMEOUT_SECONDS if not killed else 0)
        except psutil.TimeoutExpired:
            child.kill()
            killed = True
        except psutil.NoSuchProcess:
            pass
    return {"stop_seconds": stop_seconds, "exit_code": server.process.returncode, "killed": killed}


def resident_mb(server: Server) -> dict:
    """Return the RSS and PSS of the server process plus all its children, in MB, and the number of children.

    PSS splits each shared page among the processes that map it, so unlike the RSS sum it does
    not count pages shared by the workers more than once. It is None where psutil cannot read it.
    """
    import psutil

    process = psutil.Process(server.process.pid)
    children = process.children(recursive=True)
    rss = pss = 0
    for member in [process, *children]:
        try:
            memory = member.memory_full_info()
        except psutil.NoSuchProcess:
            continue
        rss += memory.rss
        pss = pss + memory.pss if pss is not None and hasattr(memory, "pss") else None
    return {"rss_mb": rss / MB, "pss_mb": None if pss is None else pss / MB, "children": len(children)}


def post_json(connection: http.client.HTTPConnection, body: bytes) -> tuple[int, bytes]:
    connection.request("POST", PREDICT_PATH, body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status, response.read()


def predict_one(connection: http.client.HTTPConnection, text: str) -> dict:
    status, payload = post_json(connection, json.dumps({"text": text}).encode())
    if status != 200:
        raise RuntimeError(f"POST {PREDICT_PATH} with one text returned {status}: {payload[:300]!r}")
    return json.loads(payload)


def predict_batch(connection: http.client.HTTPConnection, texts: list[str]) -> dict:
    status, payload = post_json(connection, json.dumps({"instances": texts}).encode())
    if status != 200:
        raise RuntimeError(f"POST {PREDICT_PATH} with {len(texts)} instances returned {status}: {payload[:300]!r}")
    return json.loads(payload)


def connect(server: Server) -> http.client.HTTPConnection:
    host, port = server.url.removeprefix("http://").split(":")
    return http.client.HTTPConnection(host, int(port), timeout=60)


def wait_all_workers(server: Server, text: str) -> dict:
    """Send single-text requests on new connections until ``SETTLED_REQUESTS`` in a row return 200.

    With several workers, one worker may return 200 from the ready route while another is still
    loading the model and rejects predictions with 503. Each new connection may reach another worker, so
    this returns the number of 503 responses and the seconds it took until every worker responded.
    """
    body = json.dumps({"text": text}).encode()
    started = time.perf_counter()
    not_ready = in_a_row = 0
    while in_a_row < SETTLED_REQUESTS:
        if time.perf_counter() - started > READY_TIMEOUT_SECONDS:
            raise TimeoutError(f"{server.name} still returned 503 to predictions {READY_TIMEOUT_SECONDS:.0f} s "
                               f"after it was ready. Its last output:\n{server.log_tail()}")
        connection = connect(server)
        try:
            status, payload = post_json(connection, body)
        finally:
            connection.close()
        if status == 503:
            not_ready += 1
            in_a_row = 0
            time.sleep(0.01)
        elif status == 200:
            in_a_row += 1
        else:
            raise RuntimeError(f"POST {PREDICT_PATH} with one text returned {status}: {payload[:300]!r}")
    return {"not_ready_responses": not_ready, "seconds": time.perf_counter() - started}


def check_contract(server: Server, texts: list[str]) -> dict:
    """Check the single-text and batch response shapes and return the model versions and both sets of probabilities."""
    connection = connect(server)
    try:
        singles = [predict_one(connection, text) for text in texts]
        batch = predict_batch(connection, texts)
    finally:
        connection.close()
    for response in singles:
        if not {"result", "model_version"} <= set(response):
            raise RuntimeError(f"a single-text response lacks \"result\" or \"model_version\": {response}")
    predictions = batch.get("predictions")
    if not isinstance(predictions, list) or len(predictions) != len(texts):
        raise RuntimeError(f"a batch of {len(texts)} texts returned {str(batch)[:300]}")
    versions = {response["model_version"] for response in singles} | {batch.get("model_version")}
    return {"model_versions": sorted(map(str, versions)),
            "response_keys": {"single": sorted(singles[0]), "batch": sorted(batch)},
            "single": [response["result"] for response in singles], "batch": predictions}


def time_batch(server: Server, texts: list[str], tries: int) -> dict:
    """Time ``tries`` batch requests of ``texts`` over one keep-alive connection, after untimed warm-up tries."""
    body = json.dumps({"instances": texts}).encode()
    connection = connect(server)
    milliseconds = []
    try:
        for attempt in range(BATCH_WARMUP_TRIES + tries):
            started = time.perf_counter()
            status, payload = post_json(connection, body)
            elapsed = (time.perf_counter() - started) * 1000
            if status != 200:
                raise RuntimeError(f"a batch of {len(texts)} texts returned {status}: {payload[:300]!r}")
            if len(json.loads(payload)["predictions"]) != len(texts):
                raise RuntimeError(f"a batch of {len(texts)} texts did not return {len(texts)} predictions")
            if attempt >= BATCH_WARMUP_TRIES:
                milliseconds.append(elapsed)
    finally:
        connection.close()
    return {"texts": len(texts), "tries": tries, "median_ms": statistics.median(milliseconds),
            "min_ms": min(milliseconds), "max_ms": max(milliseconds), "request_bytes": len(body)}


def reference_probabilities(server: Server, texts: list[str]) -> list[float]:
    connection = connect(server)
    try:
        return [predict_one(connection, text)["result"] for text in texts]
    finally:
        connection.close()


def max_difference(first: list, second: list) -> float | None:
    pairs = [(a, b) for a, b in zip(first, second, strict=True) if isinstance(a, float) and isinstance(b, float)]
    return max((abs(a - b) for a, b in pairs), default=None)


# The load stage, run in its own process so the client does not share an interpreter with the parent.

async def generate_load(url: str, concurrency: int, seconds: float, warmup: float) -> dict:
    """Send single-text requests from ``concurrency`` workers; record those started after the warm-up."""
    import aiohttp
    import numpy as np

    bodies = itertools.cycle([json.dumps({"text": text}).encode() for text in release_note_texts()])
    headers = {"Content-Type": "application/json"}
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    failures: list[str] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        measure_from = time.perf_counter() + warmup
        stop_at = measure_from + seconds

        async def worker() -> None:
            while (started := time.perf_counter()) < stop_at:
                try:
                    async with session.post(url, data=next(bodies), headers=headers) as response:
                        await response.read()
                        status = response.status
                except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                    if started >= measure_from:
                        failures.append(f"{type(error).__name__}: {error}")
                    await asyncio.sleep(0.01)  # keeps a dead server from turning this loop into a busy wait
                    continue
                if started >= measure_from:
                    latencies.append(time.perf_counter() - started)
                    statuses[status] = statuses.get(status, 0) + 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - measure_from
    milliseconds = np.array(latencies) * 1000
    figures = {"concurrency": concurrency, "seconds": elapsed, "warmup_seconds": warmup,
               "requests": len(latencies), "rps": len(latencies) / elapsed,
               "non_200": sum(count for status, count in statuses.items() if status != 200),
               "statuses": {str(status): count for status, count in sorted(statuses.items())},
               "failed": len(failures), "first_failures": failures[:3]}
    if len(latencies):
        p50, p90, p99 = np.percentile(milliseconds, [50, 90, 99])
        figures.update(p50_ms=float(p50), p90_ms=float(p90), p99_ms=float(p99), max_ms=float(milliseconds.max()))
    return figures


def stage_load(args: argparse.Namespace) -> dict:
    try:
        import uvloop
    except ImportError:
        uvloop = None
    loop_factory = uvloop.new_event_loop if uvloop else None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        figures = runner.run(generate_load(args.url, args.concurrency, args.seconds, args.warmup))
    figures["client_loop"] = "uvloop" if uvloop else "asyncio"
    return figures


# The reference server: Keras model.predict on one dense row per request.

def reference_app(model_dir: Path):
    import keras
    import numpy as np
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from k8s_analysis.model.features import NoteFeatures
    from k8s_analysis.model.text import clean_text

    model = keras.saving.load_model(model_dir / "network.keras")
    with open(model_dir / "features.json", encoding="utf-8") as handle:
        features = NoteFeatures.from_dict(json.load(handle))
    manifest = model_dir / "manifest.json"
    version = json.loads(manifest.read_text()).get("version") if manifest.exists() else None
    model.predict(np.zeros((1, features.n_features), dtype=np.float32), verbose=0)

    async def ready(request: Request) -> Response:
        return Response(status_code=200)

    async def predict(request: Request) -> Response:
        text = (await request.json()).get("text")
        if not isinstance(text, str):
            return JSONResponse({"error": "expected a JSON object with a string \"text\""}, status_code=400)
        # model.predict runs on the event loop thread, so this server handles one request at a time.
        row = features.transform([clean_text(text)]).toarray()
        probability = float(model.predict(row, verbose=0)[0, 0])
        return JSONResponse({"result": probability, "model_version": version})

    return Starlette(routes=[Route(READY_PATH, ready), Route(PREDICT_PATH, predict, methods=["POST"])])


def stage_reference_server(args: argparse.Namespace) -> None:
    import uvicorn

    uvicorn.run(reference_app(args.model_dir), host="127.0.0.1", port=args.port, log_level="warning",
                access_log=False)


# The parent: start each server, measure it, stop it, and report.

def load_stage(server: Server, concurrency: int, seconds: float, warmup: float) -> dict:
    try:
        return run_stage(__file__, "load", "--url", server.url + PREDICT_PATH, "--concurrency", str(concurrency),
                         "--seconds", str(seconds), "--warmup", str(warmup))
    except subprocess.CalledProcessError as error:
        print(f"the load stage against {server.name} failed:\n{error.stderr}", file=sys.stderr)
        raise


def measure_ours(args: argparse.Namespace, texts: list[str], log_dir: Path) -> dict:
    port = free_port()
    command = [str(SERVE_EXECUTABLE), "serve", "--model-dir", str(args.model_dir), "--host", "127.0.0.1",
               "--port", str(port)]
    if args.workers is not None:
        command += ["--workers", str(args.workers)]
    server = start_server("k8s-analysis serve", command, port, log_dir)
    figures: dict = {"command": command[1:], "startup_seconds": server.ready_seconds}
    try:
        figures["ready_memory"] = resident_mb(server)
        figures["after_ready"] = wait_all_workers(server, texts[0])
        figures["contract"] = check_contract(server, texts[:AGREEMENT_TEXTS])
        figures["load"] = load_stage(server, args.concurrency, args.seconds, args.warmup)
        figures["batch"] = time_batch(server, texts[:args.batch_size], args.tries)
        figures["warm_memory"] = resident_mb(server)
        figures["still_running"] = server.process.poll() is None
    finally:
        figures["stop"] = stop_server(server)
        figures["log_tail"] = server.log_tail(5)
    return figures


def measure_reference(args: argparse.Namespace, texts: list[str], log_dir: Path) -> dict:
    port = free_port()
    command = [sys.executable, __file__, "--stage", "reference_server", "--model-dir", str(args.model_dir),
               "--port", str(port)]
    server = start_server("Keras reference", command, port, log_dir, env={"TF_CPP_MIN_LOG_LEVEL": "2"})
    figures: dict = {"startup_seconds": server.ready_seconds}
    try:
        figures["probabilities"] = reference_probabilities(server, texts[:AGREEMENT_TEXTS])
        figures["load"] = load_stage(server, args.concurrency, args.reference_seconds, args.warmup)
        figures["warm_memory"] = resident_mb(server)
    finally:
        figures["stop"] = stop_server(server)
    return figures


def verdict(met: bool) -> str:
    return "ok" if met else "MISSED"


def load_line(name: str, load: dict) -> str:
    if not load["requests"]:
        return f"{name}, concurrency {load['concurrency']}: no request answered ({load['first_failures']})"
    problems = f"{load['non_200']:,} non-200" + (f", {load['failed']:,} failed" if load["failed"] else "")
    return (f"{name}, concurrency {load['concurrency']}: {load['rps']:,.0f} req/s, p50 {load['p50_ms']:.1f} ms, "
            f"p90 {load['p90_ms']:.1f} ms, p99 {load['p99_ms']:.1f} ms, max {load['max_ms']:.1f} ms, "
            f"{problems} ({load['requests']:,} requests in {load['seconds']:.1f} s)")


def report_ours(args: argparse.Namespace, texts: list[str], ours: dict) -> dict:
    """Print our server's figures against their targets and return them as the summary."""
    load, batch, contract = ours["load"], ours["batch"], ours["contract"]
    after_ready, warm, ready = ours["after_ready"], ours["warm_memory"], ours["ready_memory"]
    met = {"startup": ours["startup_seconds"] < TARGET_STARTUP_SECONDS, "memory": warm["rss_mb"] < TARGET_RSS_MB,
           "single_text": load["requests"] > 0 and load["rps"] >= TARGET_RPS and load["p99_ms"] < TARGET_P99_MS,
           "batch": batch["median_ms"] < TARGET_BATCH_MS}

    workers = "server default" if args.workers is None else str(args.workers)
    print(f"model {args.model_dir} (version {', '.join(contract['model_versions'])}), "
          f"{len(texts):,} distinct release-note texts, workers: {workers}")
    print(f"start-up to ready: {ours['startup_seconds']:.2f} s "
          f"(target < {TARGET_STARTUP_SECONDS:.0f} s) {verdict(met['startup'])}")
    if after_ready["not_ready_responses"]:
        print(f"NOTE: after the ready route returned 200, {after_ready['not_ready_responses']} predictions got 503 "
              f"(model still loading) for {after_ready['seconds']:.2f} s")

    pss = "" if warm["pss_mb"] is None else f", PSS {warm['pss_mb']:,.0f} MB"
    print(f"resident memory once warm: {warm['rss_mb']:,.0f} MB, process and {warm['children']} children "
          f"(target < {TARGET_RSS_MB:,.0f} MB) {verdict(met['memory'])}{pss}. "
          f"Right after ready: {ready['rss_mb']:,.0f} MB")

    print(f"{load_line('single text', load)} "
          f"(target >= {TARGET_RPS:,.0f} req/s, p99 < {TARGET_P99_MS:.0f} ms) {verdict(met['single_text'])}")
    print(f"batch of {batch['texts']:,} texts: median {batch['median_ms']:.1f} ms, max {batch['max_ms']:.1f} ms, "
          f"min {batch['min_ms']:.1f} ms over {batch['tries']} tries "
          f"(target < {TARGET_BATCH_MS:.0f} ms) {verdict(met['batch'])}")

    single_vs_batch = max_difference(contract["single"], contract["batch"])
    print(f"probabilities from single-text and batch requests for the same {AGREEMENT_TEXTS} texts "
          f"differ by at most {single_vs_batch}")
    return {"texts": len(texts), "model_dir": str(args.model_dir), "workers": args.workers,
            "startup_seconds": ours["startup_seconds"], "after_ready": after_ready,
            "ready_rss_mb": ready["rss_mb"], "warm_rss_mb": warm["rss_mb"], "warm_pss_mb": warm["pss_mb"],
            "children": warm["children"], "load": load, "batch": batch,
            "model_versions": contract["model_versions"], "response_keys": contract["response_keys"],
            "single_vs_batch_max_difference": single_vs_batch, "stop": ours["stop"],
            "server_log_tail": ours["log_tail"], "targets_met": met}


def report_reference(summary: dict, ours: dict, reference: dict) -> None:
    """Print the reference's figures and our ratios against it, and add them to ``summary``."""
    load, contract, reference_load = ours["load"], ours["contract"], reference["load"]
    print(load_line("Keras model.predict per request", reference_load)
          + f", start-up {reference['startup_seconds']:.1f} s, {reference['warm_memory']['rss_mb']:,.0f} MB")
    summary["reference"] = {key: value for key, value in reference.items() if key != "probabilities"}
    summary["ours_vs_keras_max_difference"] = max_difference(contract["single"], reference["probabilities"])
    if load["requests"] and reference_load["requests"]:
        throughput_ratio = load["rps"] / reference_load["rps"]
        p99_ratio = load["p99_ms"] / reference_load["p99_ms"]
        summary.update(throughput_ratio=throughput_ratio, p99_ratio=p99_ratio)
        print(f"ratio vs Keras model.predict per request: {throughput_ratio:,.1f}x throughput, "
              f"p99 {p99_ratio:.3f}x ({1 / p99_ratio:,.1f}x lower)")
    print(f"probabilities of ours and of Keras for the same {AGREEMENT_TEXTS} texts differ by at most "
          f"{summary['ours_vs_keras_max_difference']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR,
                        help=f"model version folder to serve (default: {DEFAULT_MODEL_DIR.relative_to(REPOSITORY)})")
    parser.add_argument("--workers", type=int, help="passed to `k8s-analysis serve --workers` (default: not passed)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent client workers (default 16)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds of the load run (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="uncounted seconds before each load run (default 2)")
    parser.add_argument("--reference-seconds", type=float, default=5.0,
                        help="measured seconds of the load run against the Keras reference (default 5)")
    parser.add_argument("--batch-size", type=int, default=1_000, help="texts in the batch request (default 1000)")
    parser.add_argument("--tries", type=int, default=10, help="timed batch requests (default 10)")
    parser.add_argument("--skip-reference", action="store_true", help="do not start the Keras reference server")
    parser.add_argument("--stage", choices=["load", "reference_server"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage == "load":
        print(json.dumps(stage_load(args)))
        return
    if args.stage == "reference_server":
        stage_reference_server(args)
        return

    args.model_dir = args.model_dir.absolute()
    missing = [name for name in ("network.keras", "features.json") if not (args.model_dir / name).is_file()]
    if missing:
        sys.exit(f"no model in {args.model_dir} ({', '.join(missing)} not found): run `make run` first "
                 f"to train one, or pass --model-dir")
    texts = release_note_texts()
    if len(texts) < args.batch_size:
        sys.exit(f"only {len(texts):,} release-note texts found under {SHARED_DATA / 'release-notes'}, "
                 f"fewer than --batch-size {args.batch_size:,}")
    with tempfile.TemporaryDirectory(prefix="serve-benchmark-") as log_dir:
        ours = measure_ours(args, texts, Path(log_dir))
        summary = report_ours(args, texts, ours)
        if not args.skip_reference:
            report_reference(summary, ours, measure_reference(args, texts, Path(log_dir)))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
