"""Charts of the analysis series, drawn with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
# Names and filters are plain text: "robot$|\[bot\]$" must not be read as a maths formula.
matplotlib.rcParams["text.parse_math"] = False

import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from k8s_analysis.atomic import write_with  # noqa: E402

# User and label names may hold characters that DejaVu Sans lacks (CJK); they show as boxes.
warnings.filterwarnings("ignore", message="Glyph .* missing from font", category=UserWarning)

FORMATS = ("png", "svg")
LABEL_WIDTH = 38  # characters per line of a bar label before it wraps
DPI = 110


def subtitle(scope_title: str, span: tuple[pd.Timestamp, pd.Timestamp] | None, name_filter=None) -> str:
    """Say which items the chart covers, their dates, and any name filter applied."""
    if span is None:
        return f"{scope_title}: no data"
    first, last = span
    text = f"{scope_title}, {first:%Y-%m-%d} to {last:%Y-%m-%d}"
    if name_filter is None:
        return text
    if name_filter.include:
        text += f"; only names matching {name_filter.include}"
    if name_filter.exclude:
        text += f"; without names matching {name_filter.exclude}"
    if not name_filter.include and not name_filter.exclude:
        text += "; no name filter"
    return text


def draw(chart: str, series: pd.DataFrame, title: str, sub: str):
    """Return a matplotlib figure for one series."""
    drawer = {"cumulative": _cumulative, "backlog": _backlog, "ranking": _ranking,
              "quarterly": _quarterly, "monthly": _monthly}[chart]
    figure = drawer(series)
    figure.suptitle(title, fontsize=13, fontweight="bold", x=0.02, ha="left")
    figure.axes[0].set_title(sub, fontsize=9, color="#555555", loc="left")
    figure.tight_layout()
    return figure


def save(figure, base: Path) -> list[Path]:
    """Write ``base.png`` and ``base.svg`` atomically and close the figure."""
    paths = [save_as(figure, base.parent / f"{base.name}.{suffix}", suffix, close=False) for suffix in FORMATS]
    plt.close(figure)
    return paths


def save_as(figure, path: Path, image_format: str, close: bool = True) -> Path:
    """Write the figure to exactly ``path`` in ``image_format`` (png or svg), atomically."""
    write_with(path, lambda tmp: figure.savefig(tmp, format=image_format, dpi=DPI))
    if close:
        plt.close(figure)
    return path


def _empty(axes) -> None:
    axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes, color="#777777")
    axes.set_xticks([])
    axes.set_yticks([])


def _dates(axes) -> None:
    locator = mdates.AutoDateLocator()
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    axes.grid(alpha=0.3)


def _cumulative(series: pd.DataFrame):
    figure, axes = plt.subplots(figsize=(9, 4.5))
    column = series.columns[1]
    if series.empty:
        _empty(axes)
    else:
        axes.step(series["date"].dt.tz_convert(None), series[column], where="post", color="#1f6fb2")
        _dates(axes)
    axes.set_xlabel("date (UTC)")
    axes.set_ylabel(f"items {column} (cumulative)")
    return figure


def _backlog(series: pd.DataFrame):
    figure, axes = plt.subplots(figsize=(9, 4.5))
    if series.empty:
        _empty(axes)
    else:
        axes.step(series["date"].dt.tz_convert(None), series["open"], where="post", color="#c0392b")
        _dates(axes)
    axes.set_xlabel("date (UTC)")
    axes.set_ylabel("open items (created - closed)")
    return figure


def _ranking(series: pd.DataFrame):
    names = [textwrap.shorten(str(name), LABEL_WIDTH, placeholder="...") for name in series.iloc[:, 0]]
    figure, axes = plt.subplots(figsize=(9, max(2.5, 0.32 * len(names) + 1.2)))
    if series.empty:
        _empty(axes)
    else:
        positions = range(len(names))
        bars = axes.barh(list(positions), series["count"], color="#2e8b57")
        axes.set_yticks(list(positions), names, fontsize=8)
        axes.invert_yaxis()
        axes.bar_label(bars, fontsize=7, padding=2)
        axes.grid(axis="x", alpha=0.3)
    axes.set_xlabel("items")
    axes.set_ylabel(series.columns[0])
    return figure


def _quarterly(series: pd.DataFrame):
    figure, axes = plt.subplots(figsize=(9, 4.5))
    if series.empty:
        _empty(axes)
    for kind, color in (("issue", "#8e44ad"), ("pull request", "#1f6fb2")):
        rows = quarters_with_gaps(series[series["type"] == kind])
        if rows.empty:
            continue
        axes.plot(rows.index, rows["median_days"], marker="o", color=color, label=f"{kind}s, median")
        axes.plot(rows.index, rows["p90_days"], marker=".", linestyle="--", color=color,
                  label=f"{kind}s, 90th percentile")
    if not series.empty:
        axes.legend(fontsize=8)
        _dates(axes)
        axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.set_xlabel("quarter of closing")
    axes.set_ylabel("days from creation to close")
    return figure


def quarters_with_gaps(rows: pd.DataFrame) -> pd.DataFrame:
    """Index rows by the middle of their quarter, with empty quarters as NaN so lines break there."""
    if rows.empty:
        return rows
    periods = pd.PeriodIndex(rows["quarter"], freq="Q")
    indexed = rows.set_index(periods).reindex(pd.period_range(periods.min(), periods.max(), freq="Q"))
    indexed.index = indexed.index.to_timestamp(how="start") + pd.Timedelta(days=45)
    return indexed


def _monthly(series: pd.DataFrame):
    figure, axes = plt.subplots(figsize=(10, 4.5))
    if series.empty:
        _empty(axes)
    else:
        # Bars on a real date axis: each month's two bars share its first half, side by side.
        starts = pd.PeriodIndex(series["month"], freq="M").to_timestamp()
        half = pd.Timedelta(days=13)
        axes.bar(starts, series["opened"], width=half, align="edge", label="opened", color="#1f6fb2")
        axes.bar(starts + half, series["closed"], width=half, align="edge", label="closed", color="#e67e22")
        _dates(axes)
        axes.legend(fontsize=8)
    axes.set_xlabel("month (UTC)")
    axes.set_ylabel("items")
    return figure
