"""Benchmark: a full export of 135,000 items from the fake GitHub server, then deltas.

The fake server (``k8s_analysis_tests/fake_github.py``) runs in this process and serves
items built from the real objects in ../shared/data, with 50 ms added to every response.
Each export runs in a child process, so its wall time and peak RSS are its own.

Figures printed:
- full export: requests, wall time and peak RSS (targets: at most 1,360 requests, under
  3 minutes, under 1.5 GB);
- reference: the per-item way of the original tool (PyGithub's ``raw_data`` on each listed
  issue, which fetches the single issue) on a 2,000-item slice without added latency, as
  requests per item, scaled to the full repository for the ratio;
- a delta after 300 items changed (target: at most 5 requests);
- a delta with nothing changed (target: 1 request that returns 304).

Run: ``.venv/bin/python benchmarks/export.py [--items 135000] [--latency-ms 50]``
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY_ROOT))

from k8s_analysis_tests.fake_github import FakeGitHub, make_item_index  # noqa: E402

REPOSITORY = "kubernetes/kubernetes"
TOKEN = "benchmark-token"
REFERENCE_ITEMS = 2_000
CHANGED_ITEMS = 300


def child_export(api_url: str, data_dir: str, mode: str) -> dict:
    from k8s_analysis.export.client import GitHubClient
    from k8s_analysis.export.exporter import Exporter
    from k8s_analysis.paths import DataLayout

    started = time.perf_counter()
    client = GitHubClient(api_url, TOKEN)
    result = Exporter(client, DataLayout(Path(data_dir)), REPOSITORY).run(mode)
    return {"seconds": time.perf_counter() - started, "items": result.items, "pages": result.pages,
            "not_modified": result.not_modified}


def child_reference(api_url: str) -> dict:
    """List the issues and read ``raw_data`` on each, as the original exporter did."""
    import github

    client = github.Github(base_url=api_url, auth=github.Auth.Token(TOKEN), per_page=100,
                           seconds_between_requests=0, retry=None)
    started = time.perf_counter()
    items = sum(1 for issue in client.get_repo(REPOSITORY, lazy=True).get_issues(state="all") if issue.raw_data)
    return {"seconds": time.perf_counter() - started, "items": items}


def run_child(*args: str) -> dict:
    output = subprocess.run([sys.executable, __file__, "--child", *args], check=True,
                            capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def requests_during(server: FakeGitHub, action) -> tuple[dict, list]:
    before = len(server.requests)
    figures = action()
    return figures, server.requests[before:]


def touch_items(server: FakeGitHub, count: int, total: int) -> None:
    """Edit ``count`` random items at times spread over one day, as comments and labels would."""
    numbers = random.Random(0).sample(range(1, total + 1), count)
    for index, number in enumerate(numbers):
        item = server.item(number)
        seconds = index * 86_400 // count
        item["updated_at"] = f"2031-01-01T{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}Z"
        item["comments"] = (item.get("comments") or 0) + 1
        server.upsert_item(item)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=135_000, help="items on the fake server (default 135000)")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="added to every response (default 50)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        stage, *rest = args.child
        figures = child_export(*rest) if stage == "export" else child_reference(*rest)
        figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(figures))
        return

    latency = args.latency_ms / 1000
    # The reference runs without added latency: one request per item at 50 ms would take minutes.
    with FakeGitHub(make_item_index(REFERENCE_ITEMS), token=TOKEN) as reference_server:
        reference, reference_requests = requests_during(
            reference_server, lambda: run_child("reference", reference_server.base_url))
    per_item = len(reference_requests) / reference["items"]

    index = make_item_index(args.items)
    with FakeGitHub(index, token=TOKEN, latency_s=latency, rate_limit=10_000_000) as server, \
            tempfile.TemporaryDirectory(prefix="k8s-analysis-export-bench-") as data_dir:
        full, full_requests = requests_during(server, lambda: run_child("export", server.base_url, data_dir, "full"))
        touch_items(server, CHANGED_ITEMS, args.items)
        delta, delta_requests = requests_during(server, lambda: run_child("export", server.base_url, data_dir, "delta"))
        same, same_requests = requests_during(server, lambda: run_child("export", server.base_url, data_dir, "delta"))

    counted = [r for r in full_requests if r.path != "/rate_limit"]
    print(f"fake server: {args.items:,} items, {args.latency_ms:.0f} ms added per response")
    print(f"full export:    {len(counted):>7,} requests  {full['items']:>8,} items  {full['seconds']:>6.1f} s  "
          f"peak RSS {full['peak_rss_mb']:,.0f} MB  ({full['items'] / full['seconds']:,.0f} items/s)")
    print(f"reference:      {len(reference_requests):>7,} requests for {reference['items']:,} items "
          f"({per_item:.3f} per item) in {reference['seconds']:.1f} s without added latency; "
          f"scaled to {args.items:,} items: "
          f"{per_item * args.items:,.0f} requests")
    print(f"request ratio:  {len(counted) / (per_item * args.items):.4f} "
          f"(full export / per-item reference, same server and latency)")
    print(f"delta ({CHANGED_ITEMS} changed): {len(delta_requests)} requests, {delta['items']} items received, "
          f"{delta['seconds']:.1f} s")
    print(f"unchanged delta: {len(same_requests)} request(s), statuses {[r.status for r in same_requests]}")
    targets = [len(counted) <= 1_360, full["seconds"] < 180, full["peak_rss_mb"] < 1_536,
               len(delta_requests) <= 5, [r.status for r in same_requests] == [304]]
    print(f"targets (<= 1,360 requests, < 180 s, < 1,536 MB, delta <= 5, unchanged = one 304): "
          f"{'all met' if all(targets) else 'MISSED ' + str(targets)}")


if __name__ == "__main__":
    main()
