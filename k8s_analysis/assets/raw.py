"""Raw data assets: issue objects and published release notes, stored as they arrived."""

import dagster as dg

from k8s_analysis.importer import store_release_note_files
from k8s_analysis.raw_store import RawIssueStore, RawReleaseNotesStore
from k8s_analysis.resources import DataDirResource
from k8s_analysis.sources import IssueSource, ReleaseNotesSource


@dg.asset(group_name="raw", kinds={"json"})
def raw_issues(
    context: dg.AssetExecutionContext, issue_source: IssueSource, data_dir: DataDirResource
) -> dg.MaterializeResult:
    """Every issue and pull request object GitHub returned, compressed, upserted by id.

    With no source configured the asset reports what the raw store already holds, so a run
    after ``k8s-analysis import`` works offline.
    """
    store = RawIssueStore(data_dir.layout().raw_issues_dir)
    metadata: dict[str, object] = {"source": issue_source.describe()}
    if issue_source.is_configured():
        stats = store.upsert(issue_source.iter_items(log=context.log), log=context.log)
        context.log.info("upserted %s items: %s new, %s updated, %s unchanged",
                         stats.received, stats.inserted, stats.updated, stats.unchanged)
        metadata.update(inserted=stats.inserted, updated=stats.updated, unchanged=stats.unchanged,
                        shards_written=stats.shards_written)
    else:
        context.log.info("no issue source configured; using the raw store as it is")
    stored = store.count()
    metadata.update({"stored_items": stored, "path": dg.MetadataValue.path(str(store.directory))})
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(group_name="raw", kinds={"json"})
def raw_release_notes(
    context: dg.AssetExecutionContext, release_notes_source: ReleaseNotesSource, data_dir: DataDirResource
) -> dg.MaterializeResult:
    """Published Kubernetes release-notes files, kept byte for byte."""
    store = RawReleaseNotesStore(data_dir.layout().raw_release_notes_dir)
    metadata: dict[str, object] = {"source": release_notes_source.describe()}
    if release_notes_source.is_configured():
        written, unchanged = store_release_note_files(release_notes_source.iter_files(), store)
        context.log.info("stored %s release-notes files, %s already stored", written, unchanged)
        metadata.update(files_written=written, files_unchanged=unchanged)
    metadata.update({"stored_files": len(store.names()), "path": dg.MetadataValue.path(str(store.directory))})
    return dg.MaterializeResult(metadata=metadata)
