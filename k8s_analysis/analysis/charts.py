"""Charts of the analysis series, drawn with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from k8s_analysis.atomic import write_with  # noqa: E402

# User and label names may hold characters that DejaVu Sans lacks (CJK); they show as boxes.
warnings.filterwarnings("ignore", message="Glyph .* missing from font", category=UserWarning)

FORMATS = ("png", "svg")
LABEL_WIDTH = 38  # characters per line of a bar label before it wraps
DPI = 110


def subtitle(scope_title: str, span: tuple[pd.Timestamp, pd.Timestamp] | None) -> str:
    if span is None:
        return f"{scope_title}: no data"
    first, last = span
    return f"{scope_title}, {first:%Y-%m-%d} to {last:%Y-%m-%d}"


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
    paths = []
    for suffix in FORMATS:
        path = base.with_suffix(f".{suffix}")
        write_with(path, lambda tmp, suffix=suffix: figure.savefig(tmp, format=suffix, dpi=DPI))
        paths.append(path)
    plt.close(figure)
    return paths


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
        rows = series[series["type"] == kind]
        if rows.empty:
            continue
        axes.plot(rows["quarter"], rows["median_days"], marker="o", color=color, label=f"{kind}s, median")
        axes.plot(rows["quarter"], rows["p90_days"], marker=".", linestyle="--", color=color,
                  label=f"{kind}s, 90th percentile")
    if not series.empty:
        axes.legend(fontsize=8)
        axes.set_yscale("symlog", linthresh=1)
        _thin_ticks(axes)
    axes.grid(alpha=0.3)
    axes.set_xlabel("quarter of closing")
    axes.set_ylabel("days from creation to close")
    return figure


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


def _thin_ticks(axes, most: int = 16) -> None:
    """Show at most ``most`` category labels, rotated, so long axes stay readable."""
    labels = axes.get_xticklabels()
    step = max(1, len(labels) // most + (1 if len(labels) % most else 0))
    for index, label in enumerate(labels):
        label.set_visible(index % step == 0)
        label.set_rotation(45)
        label.set_horizontalalignment("right")
        label.set_fontsize(8)
