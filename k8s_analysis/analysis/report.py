"""The analysis report: one self-contained HTML page with every chart and the numbers behind it."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from k8s_analysis.atomic import write_text

TABLE_ROWS = 15

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
h2 {{ margin-top: 2.5em; border-bottom: 1px solid #ccc; }}
img {{ max-width: 100%; }}
table {{ border-collapse: collapse; font-size: 0.85em; margin-top: 0.5em; }}
td, th {{ border: 1px solid #ddd; padding: 2px 8px; text-align: right; }}
nav ul {{ columns: 3; font-size: 0.85em; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p>Newest item update: {data_date}. {sections} charts; each chart's subtitle gives the span from the first
item created to the last one closed. Each table shows {rows} rows of the chart's series: the top of a
ranking, the most recent end of a time series.{skipped}</p>
<nav><ul>{links}</ul></nav>
{body}
</body>
</html>
"""


@dataclass(frozen=True)
class ReportSection:
    anchor: str
    title: str
    png: Path
    series: pd.DataFrame
    newest_last: bool = False  # a time series: show its last rows


def readable(frame: pd.DataFrame) -> pd.DataFrame:
    """Dates as YYYY-MM-DD and fractions to one decimal, for the page's tables."""
    shown = frame.copy()
    for column in shown.columns:
        if pd.api.types.is_datetime64_any_dtype(shown[column]):
            shown[column] = shown[column].dt.strftime("%Y-%m-%d")
        elif pd.api.types.is_float_dtype(shown[column]):
            shown[column] = shown[column].round(1)
    return shown


def image_data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")


def section_html(section: ReportSection) -> str:
    rows = section.series.tail(TABLE_ROWS) if section.newest_last else section.series.head(TABLE_ROWS)
    table = readable(rows).to_html(index=False, border=0)
    return (f'<h2 id="{section.anchor}">{html.escape(section.title)}</h2>\n'
            f'<img src="{image_data_uri(section.png)}" alt="{html.escape(section.title)}">\n{table}')


def write_report(sections: list[ReportSection], data_date: str, path: Path, title: str,
                 skipped: list[str] = ()) -> Path:
    """Write the page atomically; the images are embedded, so it opens offline.

    ``skipped`` names the charts left out: series without rows, or "all" charts that repeat the
    pull-request (or issue) charts because the data holds only one kind of item.
    """
    links = "".join(f'<li><a href="#{s.anchor}">{html.escape(s.title)}</a></li>' for s in sections)
    body = "\n".join(section_html(section) for section in sections)
    note = (f" Left out because they have no data or repeat another chart: {html.escape(', '.join(skipped))}."
            if skipped else "")
    write_text(path, PAGE.format(title=html.escape(title), data_date=html.escape(data_date),
                                 sections=len(sections), rows=TABLE_ROWS, links=links, body=body, skipped=note))
    return path
