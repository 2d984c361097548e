"""Table assets: parsed issues, pull requests, labels and release notes, as Parquet."""

import dagster as dg
import pandas as pd

from k8s_analysis.assets.raw import raw_issues, raw_release_notes
from k8s_analysis.raw_mirror import ISSUES, RELEASE_NOTES, restore_part
from k8s_analysis.raw_store import RawIssueStore, RawReleaseNotesStore
from k8s_analysis.resources import DataDirResource
from k8s_analysis.tables.items import build_item_tables
from k8s_analysis.tables.release_notes import build_release_notes

IO_MANAGER = "table_io_manager"
PREVIEW_ROWS = 5


def preview(frame: pd.DataFrame, columns: list[str]) -> dg.MetadataValue:
    shown = frame[columns].head(PREVIEW_ROWS).copy()
    for column in shown.columns:
        shown[column] = shown[column].map(lambda v: str(v)[:80])
    return dg.MetadataValue.md(shown.to_markdown(index=False))


@dg.multi_asset(
    outs={
        "issues": dg.AssetOut(group_name="tables", io_manager_key=IO_MANAGER, kinds={"parquet"},
                              description="One row per issue (items without `pull_request`)."),
        "pull_requests": dg.AssetOut(group_name="tables", io_manager_key=IO_MANAGER, kinds={"parquet"},
                                     description="One row per pull request, with its extracted release note."),
        "labels": dg.AssetOut(group_name="tables", io_manager_key=IO_MANAGER, kinds={"parquet"},
                              description="One row per (item, label), with the label's group (`kind/bug` -> `kind`)."),
    },
    deps=[raw_issues],
)
def item_tables(context: dg.AssetExecutionContext, data_dir: DataDirResource):
    """Parse the raw store once into the issues, pull_requests and labels tables."""
    layout = data_dir.layout()
    # A volume that lost its raw store gets it back from the mirror, if there is one.
    restore_part(layout, ISSUES, context.log)
    tables = build_item_tables(RawIssueStore(layout.raw_issues_dir).iter_items())
    issues, pull_requests, labels = tables.issues, tables.pull_requests, tables.labels
    notes = int((pull_requests["release_note_status"] == "note").sum())
    context.log.info("parsed %s issues, %s pull requests (%s with a release note), %s labels",
                     f"{len(issues):,}", f"{len(pull_requests):,}", f"{notes:,}", f"{len(labels):,}")
    columns = ["number", "title", "state", "user_login", "created_at"]
    context.add_output_metadata({"preview": preview(issues, columns)}, output_name="issues")
    context.add_output_metadata(
        {
            "release_notes_found": notes,
            "release_note_status": dg.MetadataValue.json(
                {str(k): int(v) for k, v in pull_requests["release_note_status"].value_counts().items()}),
            "merged": int(pull_requests["merged"].sum()),
            "preview": preview(pull_requests, columns + ["release_note"]),
        },
        output_name="pull_requests",
    )
    context.add_output_metadata(
        {
            "distinct_labels": int(labels["label"].nunique()),
            "top_groups": dg.MetadataValue.json(
                {str(k): int(v) for k, v in labels["group"].value_counts().head(10).items()}),
        },
        output_name="labels",
    )
    return issues, pull_requests, labels


class ReleaseNotesConfig(dg.Config):
    include_all_releases: bool = False
    """Also read patch and pre-release files (they mostly repeat notes under other PR numbers)."""


@dg.asset(group_name="tables", io_manager_key=IO_MANAGER, kinds={"parquet"}, deps=[raw_release_notes])
def release_notes(
    context: dg.AssetExecutionContext,
    config: ReleaseNotesConfig,
    pull_requests: pd.DataFrame,
    data_dir: DataDirResource,
) -> pd.DataFrame:
    """One labelled release note per pull request, from exported PRs and published notes.

    ``is_bug`` is true when the PR carries ``kind/bug``. When both sources have a PR the
    published note is kept and ``sources`` lists both.
    """
    layout = data_dir.layout()
    restore_part(layout, RELEASE_NOTES, context.log)
    store = RawReleaseNotesStore(layout.raw_release_notes_dir)
    notes = build_release_notes(pull_requests, store.iter_files(), config.include_all_releases)
    counts = notes["source"].value_counts()
    context.log.info("built %s release notes (%s published, %s from pull requests), bug share %.1f%%",
                     f"{len(notes):,}", f"{counts.get('release-notes', 0):,}", f"{counts.get('github', 0):,}",
                     100 * notes["is_bug"].mean() if len(notes) else 0.0)
    context.add_output_metadata({
        "from_published_notes": int(counts.get("release-notes", 0)),
        "from_pull_requests": int(counts.get("github", 0)),
        "in_both_sources": int((notes["sources"].map(len) > 1).sum()),
        "bug_share": float(notes["is_bug"].mean()) if len(notes) else 0.0,
        "preview": preview(notes, ["pr_number", "text", "kinds", "source"]),
    })
    return notes


@dg.asset_check(asset="issues", description="No two issue rows share an id.")
def issues_ids_unique(issues: pd.DataFrame) -> dg.AssetCheckResult:
    return _unique_ids(issues)


@dg.asset_check(asset="pull_requests", description="No two pull-request rows share an id.")
def pull_requests_ids_unique(pull_requests: pd.DataFrame) -> dg.AssetCheckResult:
    return _unique_ids(pull_requests)


@dg.asset_check(asset="pull_requests", description="Every pull request has a number.")
def pull_requests_have_numbers(pull_requests: pd.DataFrame) -> dg.AssetCheckResult:
    missing = int(pull_requests["number"].isna().sum())
    return dg.AssetCheckResult(passed=missing == 0, metadata={"rows_without_number": missing})


@dg.asset_check(asset="release_notes", description="Every release-note row has non-empty text.")
def release_notes_have_text(release_notes: pd.DataFrame) -> dg.AssetCheckResult:
    empty = int((release_notes["text"].fillna("").str.strip() == "").sum())
    return dg.AssetCheckResult(passed=empty == 0, metadata={"rows_without_text": empty})


@dg.asset_check(asset="release_notes", description="At most one release-note row per pull request.")
def release_notes_one_row_per_pr(release_notes: pd.DataFrame) -> dg.AssetCheckResult:
    duplicated = int(release_notes["pr_number"].duplicated().sum())
    return dg.AssetCheckResult(passed=duplicated == 0, metadata={"duplicated_pr_numbers": duplicated})


def _unique_ids(frame: pd.DataFrame) -> dg.AssetCheckResult:
    duplicated = frame.loc[frame["id"].duplicated(), "id"]
    return dg.AssetCheckResult(
        passed=duplicated.empty,
        metadata={"duplicated_ids": len(duplicated), "examples": dg.MetadataValue.json(duplicated.head(5).tolist())},
    )
