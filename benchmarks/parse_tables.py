"""Benchmark: parse 100,000 issue objects into the tables; print items/s and peak RSS.

The objects are the real ones in ../shared/data (744 kubernetes pull requests and 388
issues and pull requests from other repositories), repeated with new ids and numbers.
Each stage runs in its own process so its peak RSS is its own:

- ``import``: upsert the objects into an empty raw store (what ``k8s-analysis import`` does);
- ``tables``: read the raw store, parse every object, write the three Parquet tables
  (what the ``issues``/``pull_requests``/``labels`` assets do);
- ``reference``: read the same raw store and flatten it with ``pandas.json_normalize``,
  the usual quick way to tabulate API JSON, with no release-note parsing.

Run: ``.venv/bin/python benchmarks/parse_tables.py [--items 100000]``
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from common import peak_rss_mb, real_objects, run_stage  # benchmarks/ is on sys.path when run as a script

TARGET_SECONDS = 60.0
TARGET_RSS_MB = 2048.0


def synthetic_items(count: int):
    """Yield ``count`` real objects, repeated, each with a new unique id and number."""
    templates = [json.dumps(item) for item in real_objects()]
    for index in range(count):
        item = json.loads(templates[index % len(templates)])
        item["id"] = 10_000_000_000 + index
        item["number"] = index + 1
        yield item


def stage_import(store_dir: Path, count: int) -> dict:
    from k8s_analysis.raw_store import RawIssueStore

    started = time.perf_counter()
    stats = RawIssueStore(store_dir).upsert(synthetic_items(count))
    return {"seconds": time.perf_counter() - started, "items": stats.inserted}


def stage_tables(store_dir: Path, out_dir: Path) -> dict:
    from k8s_analysis.atomic import write_parquet
    from k8s_analysis.raw_store import RawIssueStore
    from k8s_analysis.tables.items import build_item_tables

    started = time.perf_counter()
    tables = build_item_tables(RawIssueStore(store_dir).iter_items())
    for name in ("issues", "pull_requests", "labels"):
        write_parquet(getattr(tables, name), out_dir / f"{name}.parquet")
    items = len(tables.issues) + len(tables.pull_requests)
    return {"seconds": time.perf_counter() - started, "items": items,
            "release_notes": int((tables.pull_requests["release_note_status"] == "note").sum())}


def stage_reference(store_dir: Path) -> dict:
    import pandas as pd

    from k8s_analysis.raw_store import RawIssueStore

    started = time.perf_counter()
    frame = pd.json_normalize(list(RawIssueStore(store_dir).iter_items()), max_level=1)
    return {"seconds": time.perf_counter() - started, "items": len(frame)}


def child(args: argparse.Namespace) -> None:
    store_dir = Path(args.work) / "raw"
    if args.stage == "import":
        figures = stage_import(store_dir, args.items)
    elif args.stage == "tables":
        figures = stage_tables(store_dir, Path(args.work) / "tables")
    else:
        figures = stage_reference(store_dir)
    figures["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(figures))


def report(name: str, figures: dict) -> None:
    rate = figures["items"] / figures["seconds"]
    print(f"{name:<10} {figures['items']:>8,} items {figures['seconds']:>7.1f} s "
          f"{rate:>9,.0f} items/s  peak RSS {figures['peak_rss_mb']:>7,.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000, help="number of issue objects (default 100000)")
    parser.add_argument("--stage", choices=["import", "tables", "reference"], help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        child(args)
        return
    with tempfile.TemporaryDirectory(prefix="k8s-analysis-bench-") as work:
        imported = run_stage(__file__, "import", "--work", work, "--items", str(args.items))
        tables = run_stage(__file__, "tables", "--work", work)
        reference = run_stage(__file__, "reference", "--work", work)
    report("import", imported)
    report("tables", tables)
    report("reference", reference)
    print(f"release notes found: {tables['release_notes']:,}")
    print(f"tables / reference time ratio: {tables['seconds'] / reference['seconds']:.2f} "
          "(reference: pandas.json_normalize, no release-note parsing)")
    within = tables["seconds"] < TARGET_SECONDS and tables["peak_rss_mb"] < TARGET_RSS_MB
    print(f"target for tables: under {TARGET_SECONDS:.0f} s and {TARGET_RSS_MB:,.0f} MB: "
          f"{'met' if within else 'MISSED'}")


if __name__ == "__main__":
    main()
