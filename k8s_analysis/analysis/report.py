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
nav a {{ margin-right: 1em; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p>Data up to {data_date}; {sections} charts. Each table shows the first {rows} rows of the chart's series.</p>
<nav>{links}</nav>
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


def image_data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")


def section_html(section: ReportSection) -> str:
    table = section.series.head(TABLE_ROWS).to_html(index=False, border=0)
    return (f'<h2 id="{section.anchor}">{html.escape(section.title)}</h2>\n'
            f'<img src="{image_data_uri(section.png)}" alt="{html.escape(section.title)}">\n{table}')


def write_report(sections: list[ReportSection], data_date: str, path: Path, title: str) -> Path:
    """Write the page atomically; the images are embedded, so it opens offline."""
    links = " ".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in sections)
    body = "\n".join(section_html(section) for section in sections)
    write_text(path, PAGE.format(title=html.escape(title), data_date=html.escape(data_date),
                                 sections=len(sections), rows=TABLE_ROWS, links=links, body=body))
    return path
