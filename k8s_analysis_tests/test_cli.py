"""The k8s-analysis command as a user runs it: separate processes, a fresh data directory."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from k8s_analysis_tests.shared_data import shared_path


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "K8S_ANALYSIS_DATA_DIR")}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "k8s_analysis.cli", *args],
        capture_output=True, text=True, env=environment, timeout=600,
    )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A data directory after `import` and `run` on the shared kubernetes data."""
    root = tmp_path_factory.mktemp("cli") / "data"
    archive = shared_path("data", "kubernetes-prs", "kubernetes-prs-api.tar.xz")
    notes = shared_path("data", "release-notes")
    imported = cli("--data-dir", str(root), "import", str(archive), str(notes))
    assert imported.returncode == 0, imported.stderr
    ran = cli("--data-dir", str(root), "run")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    root.joinpath("run-output.txt").write_text(ran.stdout)
    return root


@pytest.mark.slow
def test_run_prints_summary(data_dir):
    summary = data_dir.joinpath("run-output.txt").read_text()
    assert "744 (0 issues, 744 pull requests)" in summary
    assert "release notes:" in summary
    assert "ROC-AUC" in summary
    assert f"to serve it:    k8s-analysis --data-dir {data_dir} serve" in summary


@pytest.mark.slow
def test_run_writes_under_data_dir(data_dir):
    assert len(pd.read_parquet(data_dir / "tables" / "pull_requests.parquet")) == 744
    assert (data_dir / "models" / "current" / "manifest.json").is_file()
    assert (data_dir / "dagster_home" / "dagster.yaml").is_file()


@pytest.mark.slow
def test_run_recorded_in_instance(data_dir):
    with dg.DagsterInstance.from_config(str(data_dir / "dagster_home")) as instance:
        runs = instance.get_runs()
    assert [run.job_name for run in runs] == ["materialize_all"]
    assert runs[0].status == dg.DagsterRunStatus.SUCCESS


@pytest.mark.slow
def test_predict_self_test_passes(data_dir):
    result = cli("--data-dir", str(data_dir), "predict", "--test")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok ") == 2


@pytest.mark.slow
def test_predict_exit_status_follows_threshold(data_dir):
    note = "Fixed a panic in kube-proxy when the node has no addresses."
    low = cli("predict", note, "--threshold", "0.999999", env={"K8S_ANALYSIS_DATA_DIR": str(data_dir)})
    high = cli("predict", note, "--threshold", "0.000001", env={"K8S_ANALYSIS_DATA_DIR": str(data_dir)})
    assert low.returncode == 1
    assert high.returncode == 0
    assert float(high.stdout.split()[0]) == float(low.stdout.split()[0])


@pytest.mark.slow
def test_reimport_changes_nothing(data_dir):
    archive = shared_path("data", "kubernetes-prs", "kubernetes-prs-api.tar.xz")
    result = cli("import", str(archive), "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    assert "0 new, 0 updated, 744 unchanged" in result.stdout


def test_import_missing_path_is_named(tmp_path):
    missing = tmp_path / "no-such-export.json.gz"
    result = cli("--data-dir", str(tmp_path / "data"), "import", str(missing))
    assert result.returncode == 2
    assert str(missing) in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data" / "raw").exists()


def test_predict_without_model_says_how(tmp_path):
    result = cli("--data-dir", str(tmp_path), "predict", "some note")
    assert result.returncode == 2
    assert f"k8s-analysis --data-dir {tmp_path} import" in result.stderr
    assert f"k8s-analysis --data-dir {tmp_path} run" in result.stderr


def test_predict_missing_model_dir(tmp_path):
    missing = tmp_path / "no-model"
    result = cli("predict", "some note", "--model-dir", str(missing))
    assert result.returncode == 2
    assert f"no model at {missing}: the folder does not exist" in result.stderr


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["   "], "has no words"),
        (["<!-- only a comment -->"], "has no words"),
        (["a note", "--threshold", "1.5"], "invalid --threshold 1.5"),
        (["a note", "--test"], "needs one of TEXT, --test or --input/--output"),
        (["--input", "notes.jsonl"], "--input and --output go together"),
    ],
)
def test_predict_rejects_bad_arguments(tmp_path, arguments, message):
    result = cli("--data-dir", str(tmp_path), "predict", *arguments)
    assert result.returncode == 2
    assert message in result.stderr


def test_import_non_export_explains(tmp_path):
    result = cli("--data-dir", str(tmp_path / "data"), "import", str(Path(__file__)))
    assert result.returncode == 2
    assert "neither an issues export" in result.stderr
    assert "nor a release-notes file" in result.stderr


def test_run_on_empty_store_says_import(tmp_path):
    result = cli("--data-dir", str(tmp_path), "run")
    assert result.returncode == 0, result.stderr
    assert "the raw store is empty" in result.stdout
    assert "skipped: insufficient_data" in result.stdout
    assert "no model yet" in result.stdout


def test_predict_needs_text_or_test(tmp_path):
    result = cli("--data-dir", str(tmp_path), "predict")
    assert result.returncode == 2
    assert "needs one of TEXT, --test or --input/--output" in result.stderr


@pytest.mark.slow
def test_predict_scores_jsonl(data_dir, tmp_path):
    notes = tmp_path / "notes.jsonl"
    lines = [
        {"text": "Fixed a panic in kube-proxy when the node has no addresses.", "pr": 1, "sigs": ["network"]},
        {"title": "no text here"},
        "not json",
        {"text": "Added the --wait flag to kubectl delete.", "pr": 2},
        {"text": "Fixed a crash.", "sigs": "node"},
        '{"text": "broken',
    ]
    notes.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    output = tmp_path / "scored.jsonl"
    result = cli("--data-dir", str(data_dir), "predict", "--input", str(notes), "--output", str(output))
    scored = [json.loads(line) for line in output.read_text().splitlines()]
    single = cli("--data-dir", str(data_dir), "predict", lines[0]["text"], "--sig", "network")
    assert result.returncode == 1
    assert "scored 2 notes" in result.stdout
    assert f"{notes}:2: no \"text\"" in result.stderr
    assert f"{notes}:3: invalid JSON (Expecting value at column 1)" in result.stderr
    assert f"{notes}:6: invalid JSON (Unterminated string starting at column 10)" in result.stderr
    assert f"{notes}:5: \"sigs\" must be a list of label names" in result.stderr
    assert [note["pr"] for note in scored] == [1, 2]
    assert scored[0]["sigs"] == ["network"]
    assert scored[0]["probability"] == pytest.approx(float(single.stdout.split()[0]), abs=1e-4)
    assert scored[0]["kind_bug"] is True
    assert scored[1]["kind_bug"] is False


@pytest.mark.slow
def test_predict_unknown_words_not_judged(data_dir):
    known = cli("--data-dir", str(data_dir), "predict", "the and of")
    unknown = cli("--data-dir", str(data_dir), "predict", "zzzqx blorfq \u2603")
    assert "not judged" not in known.stdout
    assert "not judged: no word of the text is in the model's vocabulary" in unknown.stdout
    assert "no word of this text occurred in the training notes" in unknown.stderr
    assert unknown.returncode == 1


def test_train_skipped_exits_one(tmp_path):
    ran = cli("--data-dir", str(tmp_path), "run")
    trained = cli("--data-dir", str(tmp_path), "train")
    assert ran.returncode == 0, ran.stderr
    assert trained.returncode == 1
    assert "skipped: insufficient_data" in trained.stdout
    assert "k8s-analysis train finished, but no model was trained" in trained.stdout


def test_train_without_table_says_run(tmp_path):
    result = cli("--data-dir", str(tmp_path), "train")
    assert result.returncode == 2
    assert f"no release_notes table at {tmp_path / 'tables' / 'release_notes.parquet'}" in result.stderr
    assert f"k8s-analysis --data-dir {tmp_path} run" in result.stderr


@pytest.mark.slow
def test_train_tune_saves_and_uses_config(data_dir, tmp_path):
    root = tmp_path / "data"
    (root / "tables").mkdir(parents=True)
    shutil.copy(data_dir / "tables" / "release_notes.parquet", root / "tables")

    result = cli("--data-dir", str(root), "train", "--tune", "--trials", "2")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 configurations by validation F1" in result.stdout
    assert "k8s-analysis train succeeded" in result.stdout
    tuned = json.loads((root / "models" / "tuned-config.json").read_text())
    f1s = [trial["f1"] for trial in tuned["trials"]]
    assert len(f1s) == 2
    assert f1s == sorted(f1s, reverse=True)
    manifest = json.loads((root / "models" / "current" / "manifest.json").read_text())
    assert manifest["config_source"] == f"tuned: {root / 'models' / 'tuned-config.json'}"
    assert {name: manifest["config"][name] for name in tuned["config"]} == tuned["config"]


def test_rollback_swaps_versions(served_model_dir, tmp_path):
    from k8s_analysis.model.bundle import promote
    from k8s_analysis_tests.serving.running import copy_version

    models_dir = tmp_path / "data" / "models"
    for version in ("20250101T000000Z-00000001", "20250102T000000Z-00000002"):
        copy_version(served_model_dir, models_dir, version)
        promote(models_dir, version)

    first = cli("--data-dir", str(tmp_path / "data"), "rollback")
    second = cli("--data-dir", str(tmp_path / "data"), "rollback")

    assert first.returncode == 0
    assert "now points at 20250101T000000Z-00000001 (was 20250102T000000Z-00000002)" in first.stdout
    assert second.returncode == 0
    assert os.readlink(models_dir / "current") == "20250102T000000Z-00000002"


def test_rollback_without_previous_says_why(tmp_path):
    result = cli("--data-dir", str(tmp_path / "data"), "rollback")

    assert result.returncode == 2
    assert "k8s-analysis rollback: error: nothing to roll back to" in result.stderr
