"""Raw data assets: issue objects and published release notes, stored as they arrived."""

import dagster as dg

from k8s_analysis.export.state import ExportBusyError
from k8s_analysis.importer import store_release_note_files
from k8s_analysis.raw_mirror import ISSUES, RELEASE_NOTES, mirror_part, part_root, restore_part
from k8s_analysis.raw_store import RawIssueStore, RawReleaseNotesStore
from k8s_analysis.paths import DataLayout
from k8s_analysis.resources import DataDirResource
from k8s_analysis.sources import IssueSource, ReleaseNotesSource
from k8s_analysis.sources.base import ExportRequest


class RawIssuesConfig(dg.Config):
    mode: str = "auto"
    """For the live source: `full`, `delta`, or `auto` (a delta once a full export has finished)."""
    repository: str | None = None
    """For the live source: OWNER/NAME; unset means the one this data directory remembers."""
    api_url: str | None = None
    """For the live source: the API base URL; unset means the remembered one, else api.github.com."""


@dg.asset(group_name="raw", kinds={"json"})
def raw_issues(
    context: dg.AssetExecutionContext,
    config: RawIssuesConfig,
    issue_source: IssueSource,
    data_dir: DataDirResource,
) -> dg.MaterializeResult:
    """Every issue and pull request object GitHub returned, compressed, upserted by id.

    With no source configured the asset reports what the raw store already holds, so a run
    after ``k8s-analysis import`` works offline.
    """
    layout = data_dir.layout()
    store = RawIssueStore(layout.raw_issues_dir)
    metadata: dict[str, object] = {"source": issue_source.describe()}
    restored = restore_part(layout, ISSUES, context.log)
    if restored is not None:
        metadata["restored_files"] = restored
    if issue_source.is_configured():
        request = ExportRequest(config.mode, config.repository, config.api_url)
        metadata.update(issue_source.update_store(layout, request, context.log))
    else:
        context.log.info("no issue source configured; using the raw store as it is")
    metadata.update(_mirror(context, layout, ISSUES))
    metadata.update({"stored_items": store.count(), "path": dg.MetadataValue.path(str(store.directory))})
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(group_name="raw", kinds={"json"})
def raw_release_notes(
    context: dg.AssetExecutionContext, release_notes_source: ReleaseNotesSource, data_dir: DataDirResource
) -> dg.MaterializeResult:
    """Published Kubernetes release-notes files, kept byte for byte."""
    layout = data_dir.layout()
    store = RawReleaseNotesStore(layout.raw_release_notes_dir)
    metadata: dict[str, object] = {"source": release_notes_source.describe()}
    restored = restore_part(layout, RELEASE_NOTES, context.log)
    if restored is not None:
        metadata["restored_files"] = restored
    if release_notes_source.is_configured():
        written, unchanged = store_release_note_files(release_notes_source.iter_files(), store)
        context.log.info("stored %s release-notes files, %s already stored", written, unchanged)
        metadata.update(files_written=written, files_unchanged=unchanged)
    metadata.update(_mirror(context, layout, RELEASE_NOTES))
    metadata.update({"stored_files": len(store.names()), "path": dg.MetadataValue.path(str(store.directory))})
    return dg.MaterializeResult(metadata=metadata)


def _mirror(context: dg.AssetExecutionContext, layout: DataLayout, part: str) -> dict[str, object]:
    """Mirror one part of the raw store to object storage, when it is configured.

    A mirror that finds another writer at work is skipped with a warning, because the data is
    safe on the volume and the next materialization mirrors it. Any other failure fails the
    asset, so that a mirror that cannot be written is noticed.
    """
    try:
        stats = mirror_part(layout, part, context.log)
    except ExportBusyError as error:
        context.log.warning("raw/%s was not mirrored to object storage: %s", part, error)
        return {"mirror": "skipped: another writer held the raw store"}
    return {} if stats is None else {"mirror": str(part_root(layout.storage, part)), **stats.as_metadata()}
