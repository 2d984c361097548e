"""``k8s-analysis analyze``: compute analyses from the tables and print or save them."""

from __future__ import annotations

import argparse

import pandas as pd

import sys

from k8s_analysis.analysis.charts import draw, save_as, subtitle
from k8s_analysis.analysis.registry import ANALYSES, SCOPE_TITLES, AnalysisInput, date_range
from k8s_analysis.analysis.report import readable
from k8s_analysis.analysis.series import AnalysisError, NameFilter
from k8s_analysis.atomic import write_parquet, write_text
from k8s_analysis.paths import DataLayout
from k8s_analysis.storage import read_parquet, table_exists

SAVE_FORMATS = (".png", ".svg", ".csv", ".parquet")


def read_tables(layout: DataLayout) -> AnalysisInput:
    frames = {}
    for name in ("issues", "pull_requests", "labels"):
        path = layout.table_path(name)
        if not table_exists(path):
            raise AnalysisError(f"no table {path}: build the tables first with `k8s-analysis --data-dir "
                                f"{layout.root} run`")
        frames[name] = read_parquet(path)
    return AnalysisInput(**frames)


def save_series(series: pd.DataFrame, chart: str, title: str, sub: str, target) -> None:
    """Write exactly ``target``, in the format its suffix names; nothing else is written or removed."""
    suffix = target.suffix.lower()
    if suffix in (".png", ".svg"):
        save_as(draw(chart, series, title, sub), target, suffix[1:])
    elif suffix == ".csv":
        write_text(target, readable(series).to_csv(index=False))
    else:
        write_parquet(series, target)


def run_analyses(args: argparse.Namespace, layout: DataLayout) -> int:
    if args.save is not None and args.save.suffix.lower() not in SAVE_FORMATS:
        raise AnalysisError(f"unsupported --save format {args.save.suffix or '(none)'!r} in {args.save}: "
                            f"use {', '.join(SAVE_FORMATS)}")
    if args.save is not None and len(args.analyses) > 1:
        raise AnalysisError("--save writes one analysis; give only one analysis option with it")
    if args.save is not None and not args.save.parent.resolve().is_dir():
        problem = "is not a folder" if args.save.parent.exists() else "does not exist"
        raise AnalysisError(f"cannot save to {args.save}: {args.save.parent} {problem}")
    ranked = [name for name in args.analyses if ANALYSES[name].ranked]
    if not ranked and (args.include or args.exclude or args.count != 25):
        print("note: --include, --exclude and --count apply to rankings (labels, users) only; ignored here",
              file=sys.stderr)
    name_filter = NameFilter(args.include, args.exclude)
    data = read_tables(layout)
    scope = args.scope or "all"
    status = 0
    for name in args.analyses:
        analysis = ANALYSES[name]
        used_scope = scope if scope in analysis.scopes else analysis.scopes[0]
        if args.scope and used_scope != args.scope:
            raise AnalysisError(f"--{name.replace('_', '-')} covers {SCOPE_TITLES[used_scope]} only; "
                                "drop --issues")
        series = analysis.compute(data, used_scope, name_filter, args.count)
        if series.empty:
            if data.items(used_scope).empty:
                reason = f"the tables hold no {SCOPE_TITLES[used_scope]}"
            else:
                reason = "the selection is empty (check --include and --exclude)"
            print(f"{analysis.title} ({SCOPE_TITLES[used_scope]}): no rows; {reason}")
            status = 1
            continue
        if args.save is not None:
            save_series(series, analysis.chart, analysis.title,
                        subtitle(SCOPE_TITLES[used_scope], date_range(data, used_scope),
                                 name_filter if analysis.ranked else None), args.save)
            print(f"wrote {args.save} ({len(series):,} rows)")
        else:
            print(f"{analysis.title} ({SCOPE_TITLES[used_scope]}):")
            print(readable(series).to_string(index=False))
            print()
    return status
