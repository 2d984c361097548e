"""Benchmark: the bot's response time to GitHub, and how many pull requests it labels per second.

The fake GitHub server (``k8s_analysis_tests/fake_github.py``) runs in this process with
``--latency-ms`` (default 150) added to every response, about what github.com takes for a
write. The bot runs as a real ``k8s-analysis bot`` process with the promoted model. Every
delivery is an ``opened`` event of a real kubernetes pull request with a release note,
signed as GitHub signs it.

Figures printed:
- reference: an idle bot gets one delivery at a time, and the script times it from sending
  until the bot has carried it out (its comment is on the fake server). A bot that made its
  GitHub calls before responding would respond after that long. The median is the reference.
- responses: ``--deliveries`` deliveries (default 300, each for its own pull request) from
  ``--senders`` concurrent senders (default 8). Target: p99 of the response time under 1 s,
  a tenth of GitHub's 10-second timeout.
- throughput: pull requests carried out per second from the first delivery until the queue
  is empty, with the write limits raised out of the way (in production, 80 writes a minute
  allow 40 pull requests a minute at 2 writes each).
- peak RSS of the bot process (target under 400 MB).

Run: ``.venv/bin/python benchmarks/bot.py [--model-dir data/models/current]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY_ROOT))

from k8s_analysis.parsing.release_note import extract_release_note  # noqa: E402
from k8s_analysis_tests.bot.running import RunningBot, pull_request_payload, real_pull_requests, TOKEN  # noqa: E402
from k8s_analysis_tests.fake_github import FakeGitHub  # noqa: E402

TARGET_ANSWER_P99_S = 1.0
TARGET_RSS_MB = 400.0
REFERENCE_DELIVERIES = 10


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_for_comment(fake: FakeGitHub, number: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fake.comments(number):
            return
        time.sleep(0.005)
    raise RuntimeError(f"no comment on #{number} within {timeout} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=REPOSITORY_ROOT / "data" / "models" / "current")
    parser.add_argument("--deliveries", type=int, default=300)
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--latency-ms", type=float, default=150.0)
    args = parser.parse_args()
    if not (args.model_dir / "manifest.json").is_file():
        parser.error(f"no model at {args.model_dir}: run `make run` first, or pass --model-dir")

    items = [item for item in real_pull_requests() if extract_release_note(item.get("body")).has_note]
    needed = REFERENCE_DELIVERIES + args.deliveries
    if len(items) < needed:
        # More pull requests than the shared data contains: copies under new numbers.
        items = [{**items[index % len(items)], "number": 900_000 + index, "id": 9_000_000_000 + index}
                 for index in range(needed)]
    items = items[:needed]
    fake = FakeGitHub(items, token=TOKEN, latency_s=args.latency_ms / 1000).start()
    data_dir = Path(tempfile.mkdtemp(prefix="bot-benchmark-")) / "data"
    bot = RunningBot(data_dir, fake.base_url, "--writes-per-minute", "1000000", model_dir=args.model_dir)
    try:
        reference = []
        for item in items[:REFERENCE_DELIVERIES]:
            started = time.perf_counter()
            bot.deliver("pull_request", pull_request_payload(item, "opened"))
            wait_for_comment(fake, item["number"])
            reference.append(time.perf_counter() - started)
        bot.wait_idle()

        load = items[REFERENCE_DELIVERIES:]
        answers: list[float] = []
        failures: list[int] = []
        lock = threading.Lock()
        next_index = iter(range(len(load)))

        def sender() -> None:
            for index in next_index:
                started = time.perf_counter()
                status, _ = bot.deliver("pull_request", pull_request_payload(load[index], "opened"),
                                        delivery_id=str(uuid.uuid4()))
                with lock:
                    answers.append(time.perf_counter() - started)
                    if status != 202:
                        failures.append(status)

        writes_before = len(fake.writes())
        started = time.perf_counter()
        threads = [threading.Thread(target=sender) for _ in range(args.senders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        sent_in = time.perf_counter() - started
        bot.wait_idle(timeout=600)
        drained_in = time.perf_counter() - started
        rss = peak_rss_mb(bot.process.pid)
        writes = len(fake.writes()) - writes_before
    finally:
        bot.stop()
        fake.stop()

    results = {
        "latency_ms_per_github_call": args.latency_ms,
        "reference_inline_answer_s": statistics.median(reference),
        "deliveries": len(load),
        "senders": args.senders,
        "answer_p50_ms": 1000 * percentile(answers, 0.50),
        "answer_p99_ms": 1000 * percentile(answers, 0.99),
        "answer_max_ms": 1000 * max(answers),
        "non_202_answers": len(failures),
        "sent_in_s": sent_in,
        "drained_in_s": drained_in,
        "pull_requests_per_s": len(load) / drained_in,
        "github_writes": writes,
        "peak_rss_mb": rss,
    }
    results["ratio_answer_p99_to_inline"] = results["answer_p99_ms"] / 1000 / results["reference_inline_answer_s"]
    print(f"reference: a bot calling GitHub before answering would answer after "
          f"{results['reference_inline_answer_s'] * 1000:.0f} ms (median of {REFERENCE_DELIVERIES})")
    print(f"answers: {len(load)} deliveries from {args.senders} senders: p50 {results['answer_p50_ms']:.1f} ms, "
          f"p99 {results['answer_p99_ms']:.1f} ms, max {results['answer_max_ms']:.1f} ms, "
          f"{len(failures)} not 202 (target p99 < {TARGET_ANSWER_P99_S * 1000:.0f} ms)")
    print(f"throughput: {results['pull_requests_per_s']:.1f} pull requests/s carried out "
          f"({results['drained_in_s']:.1f} s for {len(load)}, {writes} writes)")
    print(f"peak RSS of the bot: {rss:.0f} MB (target < {TARGET_RSS_MB:.0f} MB)")
    print(f"ratio: answer p99 / inline answer = {results['ratio_answer_p99_to_inline']:.3f}")
    print(json.dumps(results))
    met = (results["answer_p99_ms"] < TARGET_ANSWER_P99_S * 1000 and not failures and rss < TARGET_RSS_MB)
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
