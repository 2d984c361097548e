"""Benchmark: every analysis series on 135,000 items, with the seconds of each and peak RSS.

The items are the real objects in ../shared/data (744 kubernetes pull requests and 388
issues and pull requests from other repositories), repeated with new ids and numbers. Their
``created_at`` is spread over ten years in number order. Each copy keeps the open or closed
state and the time to close of the object it copies, so ``closed_at`` always follows
``created_at``. Each stage runs in its own process, so its peak RSS is its own:

- ``tables`` (not timed): parse the items and write ``issues``, ``pull_requests`` and
  ``labels`` as Parquet.
- ``series``: read the whole Parquet tables as the IO manager does, then run every analysis in
  ``k8s_analysis.analysis.series`` for the scopes ``all``, ``issues`` and ``pull_requests``.
- ``reference``: the backlog by day and the label ranking for scope ``all``, computed by a
  plain Python loop over the rows with dict counters. The run checks that both ways give
  the same final backlog and the same top-25 label counts.

Run: ``.venv/bin/python benchmarks/analysis.py [--items 135000]``
"""

from __future__ import annotations

import argparse
import json
import random
import re
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

from common import peak_rss_mb, real_objects, run_stage  # benchmarks/ is on sys.path when run as a script

TABLES = ("issues", "pull_requests", "labels")
SCOPES = ("all", "issues", "pull_requests")
LABEL_EXCLUDE = "^(lgtm|approved)$|^size/"
TOP_COUNT = 25
FIRST_CREATED = datetime(2016, 1, 1, tzinfo=timezone.utc)
SPAN = timedelta(days=3652)
TARGET_SECONDS = 20.0


def github_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def synthetic_items(count: int, seed: int = 135):
    """Yield ``count`` real objects, repeated, with new ids, numbers and times.

    ``created_at`` grows with the number over ten years, with up to a day of jitter. A closed
    object keeps its original time to close (at least one minute). ``updated_at`` falls
    within 30 days after ``closed_at``, or after ``created_at`` for an open object.
    """
    rng = random.Random(seed)
    templates = [json.dumps(item) for item in real_objects()]
    for index in range(count):
        item = json.loads(templates[index % len(templates)])
        created = FIRST_CREATED + SPAN * (index / count) + timedelta(seconds=rng.uniform(0, 86_400))
        last_change = created
        if item.get("closed_at"):
            original = datetime.fromisoformat(item["closed_at"]) - datetime.fromisoformat(item["created_at"])
            last_change = created + max(original, timedelta(minutes=1))
            item["closed_at"] = github_time(last_change)
        item["id"] = 10_000_000_000 + index
        item["number"] = index + 1
        item["created_at"] = github_time(created)
        item["updated_at"] = github_time(last_change + timedelta(seconds=rng.uniform(0, 30 * 86_400)))
        yield item


def stage_tables(tables_dir: Path, count: int) -> dict:
    from k8s_analysis.atomic import write_parquet
    from k8s_analysis.tables.items import build_item_tables

    started = time.perf_counter()
    tables = build_item_tables(synthetic_items(count))
    for name in TABLES:
        write_parquet(getattr(tables, name), tables_dir / f"{name}.parquet")
    return {"seconds": time.perf_counter() - started, "issues": len(tables.issues),
            "pull_requests": len(tables.pull_requests), "labels": len(tables.labels)}


class Stopwatch:
    """Seconds of each named step, summed over all scopes, and for scope ``all`` alone."""

    def __init__(self) -> None:
        self.scope = ""
        self.seconds: dict[str, float] = {}
        self.seconds_all: dict[str, float] = {}

    def measure(self, name: str, function, *args, **kwargs):
        started = time.perf_counter()
        result = function(*args, **kwargs)
        elapsed = time.perf_counter() - started
        self.seconds[name] = self.seconds.get(name, 0.0) + elapsed
        if self.scope == "all":
            self.seconds_all[name] = self.seconds_all.get(name, 0.0) + elapsed
        return result


def stage_series(tables_dir: Path) -> dict:
    import pandas as pd

    from k8s_analysis.analysis import series

    watch = Stopwatch()
    tables = {}
    for name in TABLES:
        tables[name] = watch.measure("read Parquet", pd.read_parquet, tables_dir / f"{name}.parquet")
    label_filter = series.NameFilter(exclude=LABEL_EXCLUDE)
    checks = {}
    for scope in SCOPES:
        watch.scope = scope
        items = watch.measure("select_items", series.select_items,
                              tables["issues"], tables["pull_requests"], scope)
        watch.measure("created_over_time", series.created_over_time, items)
        watch.measure("closed_over_time", series.closed_over_time, items)
        backlog = watch.measure("created_vs_closed", series.created_vs_closed, items)
        ranking = watch.measure("labels_by_name", series.labels_by_name,
                                tables["labels"], scope, label_filter, TOP_COUNT)
        watch.measure("labels_by_group", series.labels_by_group, tables["labels"], scope, label_filter, TOP_COUNT)
        watch.measure("users_by_created", series.users_by_created, items, count=TOP_COUNT)
        watch.measure("users_by_closed", series.users_by_closed, items, count=TOP_COUNT)
        watch.measure("time_to_close", series.time_to_close, items)
        watch.measure("monthly_throughput", series.monthly_throughput, items)
        if scope == "all":
            checks = {"items": len(items), "final_backlog": int(backlog["open"].iloc[-1]), "days": len(backlog),
                      "top_labels": dict(zip(ranking["label"], ranking["count"].tolist()))}
    # release_note_stats takes no scope because it always reads the pull requests, so it runs once.
    watch.scope = ""
    watch.measure("release_note_stats", series.release_note_stats, tables["pull_requests"])
    return {"seconds": watch.seconds, "seconds_all": watch.seconds_all, **checks}



def loop_backlog(items) -> list[tuple]:
    """Return (UTC day, open items) for each day with an event, counting row by row."""
    import pandas as pd

    changes: dict = {}
    for row in items.itertuples(index=False):
        created_day = row.created_at.date()
        changes[created_day] = changes.get(created_day, 0) + 1
        if row.closed_at is not pd.NaT:
            closed_day = row.closed_at.date()
            changes[closed_day] = changes.get(closed_day, 0) - 1
    backlog = []
    open_items = 0
    for day in sorted(changes):
        open_items += changes[day]
        backlog.append((day, open_items))
    return backlog


def loop_label_ranking(labels, exclude: str, count: int) -> list[tuple[str, int]]:
    """Count the label rows that the ``exclude`` pattern does not match, row by row."""
    pattern = re.compile(exclude)
    counts: Counter = Counter()
    for row in labels.itertuples(index=False):
        if row.label is not None and not pattern.search(row.label):
            counts[row.label] += 1
    return counts.most_common(count)


def stage_reference(tables_dir: Path) -> dict:
    import pandas as pd

    from k8s_analysis.analysis import series

    tables = {name: pd.read_parquet(tables_dir / f"{name}.parquet") for name in TABLES}
    items = series.select_items(tables["issues"], tables["pull_requests"], "all")
    watch = Stopwatch()
    backlog = watch.measure("created_vs_closed", loop_backlog, items)
    ranking = watch.measure("labels_by_name", loop_label_ranking, tables["labels"], LABEL_EXCLUDE, TOP_COUNT)
    return {"seconds": watch.seconds, "items": len(items), "final_backlog": backlog[-1][1], "days": len(backlog),
            "top_labels": dict(ranking)}


def child(args: argparse.Namespace) -> None:
    tables_dir = Path(args.work)
    if args.stage == "tables":
        figures = stage_tables(tables_dir, args.items)
    elif args.stage == "series":
        figures = stage_series(tables_dir)
    else:
        figures = stage_reference(tables_dir)
    figures["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(figures))


def check_same_results(vectorised: dict, loop: dict) -> None:
    """Raise AssertionError unless both ways found the same backlog and top label counts."""
    assert vectorised["items"] == loop["items"], (vectorised["items"], loop["items"])
    assert vectorised["final_backlog"] == loop["final_backlog"], (vectorised["final_backlog"], loop["final_backlog"])
    assert vectorised["days"] == loop["days"], (vectorised["days"], loop["days"])
    # Labels tied on count may be ranked in another order, and a tie at the last place may
    # keep another label. So the counts are compared as sorted lists, and by name for every
    # label counted more often than the last place.
    vectorised_counts = sorted(vectorised["top_labels"].values(), reverse=True)
    loop_counts = sorted(loop["top_labels"].values(), reverse=True)
    assert vectorised_counts == loop_counts, (vectorised_counts, loop_counts)
    last_place = vectorised_counts[-1]
    for label, count in vectorised["top_labels"].items():
        if count > last_place:
            assert loop["top_labels"].get(label) == count, (label, count, loop["top_labels"].get(label))


def report(tables: dict, series_figures: dict, reference: dict) -> None:
    print(f"tables (set-up, not timed): {tables['issues']:,} issues, {tables['pull_requests']:,} pull requests, "
          f"{tables['labels']:,} label rows in {tables['seconds']:.1f} s")
    print(f"series: seconds per step, summed over the scopes {', '.join(SCOPES)}")
    for name, seconds in series_figures["seconds"].items():
        print(f"  {name:<20} {seconds:>7.3f} s")
    total = sum(series_figures["seconds"].values())
    print(f"  {'total':<20} {total:>7.3f} s   peak RSS {series_figures['peak_rss_mb']:,.0f} MB")
    print(f"  {'total without read':<20} {total - series_figures['seconds']['read Parquet']:>7.3f} s")
    print(f"reference (plain Python loop, scope all): peak RSS {reference['peak_rss_mb']:,.0f} MB")
    for name in ("created_vs_closed", "labels_by_name"):
        vectorised = series_figures["seconds_all"][name]
        loop = reference["seconds"][name]
        print(f"  {name:<20} vectorised {vectorised:.3f} s, loop {loop:.3f} s, "
              f"vectorised / loop {vectorised / loop:.3f}")
    print(f"same results: final backlog {series_figures['final_backlog']:,} over {series_figures['days']:,} days, "
          f"top {TOP_COUNT} label counts equal")
    print(f"target for series: total under {TARGET_SECONDS:.0f} s: {'met' if total < TARGET_SECONDS else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=135_000, help="number of issue objects (default 135000)")
    parser.add_argument("--stage", choices=["tables", "series", "reference"], help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        child(args)
        return
    with tempfile.TemporaryDirectory(prefix="k8s-analysis-bench-") as work:
        tables = run_stage(__file__, "tables", "--work", work, "--items", str(args.items))
        series_figures = run_stage(__file__, "series", "--work", work)
        reference = run_stage(__file__, "reference", "--work", work)
    check_same_results(series_figures, reference)
    report(tables, series_figures, reference)


if __name__ == "__main__":
    main()
