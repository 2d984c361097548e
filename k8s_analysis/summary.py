"""The summary ``k8s-analysis run`` prints: counts, bug share, model metrics and output paths."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from k8s_analysis.export.state import ExportState
from k8s_analysis.model.bundle import METRICS_FILE
from k8s_analysis.storage import TablePath, read_parquet, table_exists


def read_rows(path: TablePath, columns: list[str]) -> pd.DataFrame | None:
    return read_parquet(path, columns=columns) if table_exists(path) else None


def model_line(layout, result) -> str:
    materializations = [
        event.event_specific_data.materialization
        for event in result.all_events
        if event.is_step_materialization and event.asset_key.path[-1] == "kind_bug_classifier"
    ]
    if materializations:
        status = materializations[-1].metadata.get("status")
        if status is not None and status.value != "trained":
            reason = materializations[-1].metadata.get("reason")
            kept = "current model kept" if layout.current_model_dir.exists() else "no model yet"
            return f"{status.value} ({reason.value if reason else 'no reason recorded'}); {kept}"
    metrics_path = layout.current_model_dir / METRICS_FILE
    if not metrics_path.exists():
        return "none trained yet"
    metrics = json.loads(metrics_path.read_text())
    validation = metrics["validation"]
    baseline = metrics.get("baseline", {})
    version = layout.current_model_dir.resolve().name
    releases = metrics.get("split", {}).get("releases", {}).get("validation") or []
    held_back = f"releases {'-'.join(dict.fromkeys(releases))}" if releases else "the newest notes"
    line = (f"{version}: on {validation['rows']:,} validation notes ({held_back}) precision "
            f"{validation['precision']:.3f}, recall {validation['recall']:.3f}, F1 {validation['f1']:.3f}, "
            f"ROC-AUC {validation['roc_auc']:.3f} (threshold {metrics['threshold']:.3f})")
    if baseline:
        line += f"\n                  baseline: F1 {baseline['f1']:.3f}, ROC-AUC {baseline['roc_auc']:.3f}"
    manifest_path = layout.current_model_dir / "manifest.json"
    source = json.loads(manifest_path.read_text()).get("config_source", "") if manifest_path.exists() else ""
    if source.startswith("tuned"):
        line += f"\n                  settings {source} (delete that file to train with the defaults)"
    return line


def new_model_not_promoted(result) -> str | None:
    """Say which new version was kept out of ``current`` and which checks stopped it."""
    version = None
    for event in result.get_asset_materialization_events():
        metadata = event.materialization.metadata
        if event.asset_key.path[-1] == "kind_bug_classifier" and "promoted" in metadata:
            if metadata["promoted"].value:
                return None
            version = metadata["version"].value
    if version is None:
        return None
    failed = [f"{evaluation.check_name} ({evaluation.description})" if evaluation.description
              else evaluation.check_name
              for evaluation in result.get_asset_check_evaluations() if not evaluation.passed]
    return f"{version} saved but not promoted; failed checks: {'; '.join(failed) or 'none (promote is off)'}"


def step_failures(result) -> list[str]:
    """One line per failed step, with the error our code raised rather than Dagster's wrapper."""
    lines = []
    for event in result.all_events:
        if event.is_step_failure:
            error = event.event_specific_data.error
            while error.cause is not None:
                error = error.cause
            lines.append(f"  failed step {event.step_key}: {error.message.strip()}")
    return lines


def print_summary(layout, result, dagster_home: Path) -> None:
    issues = read_rows(layout.table_path("issues"), ["id"])
    pull_requests = read_rows(layout.table_path("pull_requests"), ["id"])
    notes = read_rows(layout.table_path("release_notes"), ["is_bug", "source"])
    n_issues = 0 if issues is None else len(issues)
    n_prs = 0 if pull_requests is None else len(pull_requests)
    print()
    print(f"k8s-analysis run {'succeeded' if result.success else 'FAILED'} (Dagster run {result.run_id})")
    print(f"  items:          {n_issues + n_prs:,} ({n_issues:,} issues, {n_prs:,} pull requests)")
    if n_issues + n_prs == 0:
        print(f"                  the raw store is empty: load an export with `k8s-analysis --data-dir {layout.root} "
              f"import PATH` (or set GITHUB_TOKEN and run `k8s-analysis --data-dir {layout.root} export`)")
    if notes is not None and len(notes):
        sources = notes["source"].value_counts()
        print(f"  release notes:  {len(notes):,} ({sources.get('release-notes', 0):,} published, "
              f"{sources.get('github', 0):,} from pull requests), bug share {notes['is_bug'].mean():.1%}")
    print(f"  model:          {model_line(layout, result)}")
    blocked = new_model_not_promoted(result)
    if blocked:
        print(f"  new model:      {blocked}")
    print(f"  tables:         {layout.tables_dir}")
    print(f"  models:         {layout.models_dir}")
    if layout.current_model_dir.exists():
        print(f"  to serve it:    k8s-analysis --data-dir {layout.root} serve   "
              "(then POST /v1/models/kubernetes-analysis:predict on 127.0.0.1:8080)")
    print(f"  Dagster runs:   in {dagster_home}; to browse them, from the repository root: "
          f"DAGSTER_HOME={dagster_home} K8S_ANALYSIS_DATA_DIR={layout.root} dagster dev -w workspace.yaml")
    for line in step_failures(result):
        print(line)


def print_export_summary(layout, result, dagster_home: Path) -> None:
    metadata = {}
    for event in result.all_events:
        if event.is_step_materialization and event.asset_key.path[-1] == "raw_issues":
            metadata = {k: v.value for k, v in event.event_specific_data.materialization.metadata.items()}
    print()
    print(f"k8s-analysis export {'succeeded' if result.success else 'FAILED'} (Dagster run {result.run_id})")
    if metadata.get("repository"):
        state = "nothing changed (304)" if metadata.get("not_modified") else (
            f"{metadata.get('items_received', 0):,} items received in {metadata.get('pages', 0):,} page(s); "
            f"stored {metadata.get('inserted', 0):,} new, {metadata.get('updated', 0):,} updated")
        if metadata.get("resumed"):
            state += " (the stored counts include the pages fetched before the interruption)"
        print(f"  {metadata['mode']} export of {metadata['repository']} from {metadata['api_url']}"
              f"{' (resumed)' if metadata.get('resumed') else ''}: {state}")
        print(f"  requests:       {metadata.get('requests', 0):,} in {metadata.get('seconds', 0):,} s")
    if "stored_items" in metadata:
        print(f"  raw store:      {metadata['stored_items']:,} items in {layout.raw_issues_dir}")
    print(f"  Dagster runs:   DAGSTER_HOME={dagster_home}")
    for line in step_failures(result):
        print(line)
    checkpoint = ExportState.load(layout.export_state_path).checkpoint if layout.export_state_path.exists() else None
    if not result.success and checkpoint is not None:
        print(f"  unfinished:     the {checkpoint.mode} export stopped after page {checkpoint.pages:,} "
              f"({checkpoint.items:,} items kept); run `k8s-analysis --data-dir {layout.root} export` "
              "again to continue from there")
