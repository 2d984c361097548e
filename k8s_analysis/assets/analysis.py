"""Analysis assets: one per analysis, each a Parquet series and PNG/SVG chart per scope, and the report."""

import base64

import dagster as dg
import pandas as pd

from k8s_analysis.analysis.charts import draw, save, subtitle
from k8s_analysis.analysis.registry import ANALYSES, SCOPE_TITLES, Analysis, AnalysisInput, date_range
from k8s_analysis.analysis.report import ReportSection, readable, write_report
from k8s_analysis.analysis.series import NameFilter
from k8s_analysis.atomic import write_parquet
from k8s_analysis.resources import DataDirResource

GROUP = "analysis"
TIME_SERIES_CHARTS = ("cumulative", "backlog", "quarterly", "monthly")
PREVIEW_ROWS = 10


class AnalysisConfig(dg.Config):
    include: str | None = None
    """Regular expression: keep only names (labels or users) that match it."""
    exclude: str | None = None
    """Regular expression: drop names that match it. Unset: the label rankings drop lgtm, approved,
    cncf-cla: yes and size/*, the user rankings drop nothing. An empty string drops nothing."""
    count: int = 25
    """How many names a ranking shows."""


def chart_markdown(png_path) -> str:
    encoded = base64.b64encode(png_path.read_bytes()).decode("ascii")
    return f"![chart](data:image/png;base64,{encoded})"


def analysis_asset(analysis: Analysis) -> dg.AssetsDefinition:
    ins = {"issues": dg.AssetIn(), "pull_requests": dg.AssetIn()}
    if analysis.uses_labels:
        ins["labels"] = dg.AssetIn()

    @dg.asset(name=analysis.name, group_name=GROUP, ins=ins, kinds={"pandas", "matplotlib"},
              description=f"{analysis.title}: series under data/analysis/ as Parquet, charts as PNG and SVG.")
    def compute(context: dg.AssetExecutionContext, config: AnalysisConfig, data_dir: DataDirResource,
                **tables: pd.DataFrame) -> dg.MaterializeResult:
        data = AnalysisInput(tables["issues"], tables["pull_requests"], tables.get("labels", pd.DataFrame()))
        exclude = analysis.default_exclude if config.exclude is None else config.exclude
        name_filter = NameFilter(config.include, exclude or None)
        folder = data_dir.layout().analysis_dir
        metadata: dict[str, object] = {}
        for scope in analysis.scopes:
            series = analysis.compute(data, scope, name_filter, config.count)
            base = folder / f"{analysis.name}-{scope}"
            write_parquet(series, base.with_suffix(".parquet"))
            sub = subtitle(SCOPE_TITLES[scope], date_range(data, scope), name_filter if analysis.ranked else None)
            png, _ = save(draw(analysis.chart, series, analysis.title, sub), base)
            metadata[f"rows_{scope}"] = len(series)
            if scope == analysis.scopes[0]:
                newest_last = analysis.chart in TIME_SERIES_CHARTS
                preview = series.tail(PREVIEW_ROWS) if newest_last else series.head(PREVIEW_ROWS)
                metadata["chart"] = dg.MetadataValue.md(f"{sub}\n\n{chart_markdown(png)}")
                metadata["top_rows"] = dg.MetadataValue.md(
                    f"{'Latest' if newest_last else 'Top'} rows, {SCOPE_TITLES[scope]}:\n\n"
                    + readable(preview).to_markdown(index=False))
        metadata["folder"] = dg.MetadataValue.path(str(folder))
        context.log.info("%s: wrote series and charts for %s", analysis.name, ", ".join(analysis.scopes))
        return dg.MaterializeResult(metadata=metadata)

    return compute


analysis_assets = [analysis_asset(analysis) for analysis in ANALYSES.values()]


@dg.asset(group_name=GROUP, deps=analysis_assets, kinds={"html"})
def analysis_report(context: dg.AssetExecutionContext, data_dir: DataDirResource,
                    pull_requests: pd.DataFrame, issues: pd.DataFrame) -> dg.MaterializeResult:
    """data/analysis/index.html: every chart and the numbers behind it, in one page that opens offline."""
    folder = data_dir.layout().analysis_dir
    # With only one kind of item, "all" repeats that kind's charts; the page shows them once.
    one_kind = issues.empty or pull_requests.empty
    sections, skipped = [], []
    for analysis in ANALYSES.values():
        for scope in analysis.scopes:
            base = folder / f"{analysis.name}-{scope}"
            title = f"{analysis.title} ({SCOPE_TITLES[scope]})"
            series = pd.read_parquet(base.with_suffix(".parquet"))
            if series.empty or (one_kind and scope == "all" and len(analysis.scopes) > 1):
                skipped.append(title)
                continue
            sections.append(ReportSection(f"{analysis.name}-{scope}", title, base.with_suffix(".png"), series,
                                          newest_last=analysis.chart in TIME_SERIES_CHARTS))
    newest = pd.concat([issues["updated_at"], pull_requests["updated_at"]]).max()
    data_date = "no data" if pd.isna(newest) else f"{newest:%Y-%m-%d %H:%M} UTC"
    path = write_report(sections, data_date, folder / "index.html", "k8s-analysis report", skipped)
    context.log.info("wrote %s with %s chart%s", path, len(sections), "" if len(sections) == 1 else "s")
    return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(str(path)), "charts": len(sections),
                                          "charts_without_data": len(skipped), "data_date": data_date})
