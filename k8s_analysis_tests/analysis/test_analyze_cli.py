"""`k8s-analysis analyze` on tables built from a small fixture."""

import subprocess
import sys

import pandas as pd
import pytest

from k8s_analysis.atomic import write_parquet
from k8s_analysis.tables.items import build_item_tables
from k8s_analysis_tests.analysis.test_series import FIXTURE


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("analyze")
    tables = build_item_tables(FIXTURE)
    for name in ("issues", "pull_requests", "labels"):
        write_parquet(getattr(tables, name), root / "tables" / f"{name}.parquet")
    return root


def analyze(data_dir, *args):
    return subprocess.run([sys.executable, "-m", "k8s_analysis.cli", "--data-dir", str(data_dir), "analyze", *args],
                          capture_output=True, text=True, timeout=120)


def test_prints_ranking(data_dir):
    result = analyze(data_dir, "--users-by-created", "--count", "2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Users by items created (issues and pull requests):"
    assert lines[2].split() == ["alice", "2"]
    assert lines[3].split() == ["carol", "2"]


def test_scope_and_filters(data_dir):
    result = analyze(data_dir, "--labels-by-name", "--pull-requests", "--include", "^kind/", "--exclude", "feature")
    assert result.returncode == 0, result.stderr
    assert "kind/bug" in result.stdout
    assert "kind/feature" not in result.stdout
    assert "(pull requests)" in result.stdout


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".png", ".svg"])
def test_save_formats(data_dir, tmp_path, suffix):
    target = tmp_path / f"backlog{suffix}"
    result = analyze(data_dir, "--created-vs-closed", "--save", str(target))
    assert result.returncode == 0, result.stderr
    assert target.stat().st_size > 0
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_saved_csv_values(data_dir, tmp_path):
    target = tmp_path / "backlog.csv"
    analyze(data_dir, "--created-vs-closed", "--save", str(target))
    assert pd.read_csv(target)["open"].tolist() == [2, 3, 2, 1, 2, 3, 2, 1]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--labels-by-name", "--include", "["], "invalid regular expression for --include '['"),
        (["--created", "--save", "out.txt"], "unsupported --save format '.txt'"),
        (["--created", "--closed", "--save", "out.csv"], "--save writes one analysis"),
        (["--release-notes-stats", "--issues"], "covers pull requests only"),
        (["--users-by-created", "--count", "0"], "invalid --count 0"),
        ([], "analyze needs at least one analysis"),
    ],
)
def test_bad_options_explained(data_dir, arguments, message):
    result = analyze(data_dir, *arguments)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_save_writes_only_target(data_dir, tmp_path):
    (tmp_path / "chart.svg").write_text("keep me")
    target = tmp_path / "chart.v1.PNG"
    result = analyze(data_dir, "--created", "--save", str(target))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chart.svg", "chart.v1.PNG"]
    assert (tmp_path / "chart.svg").read_text() == "keep me"
    assert target.read_bytes().startswith(b"\x89PNG")


def test_save_into_missing_folder_refused(data_dir, tmp_path):
    result = analyze(data_dir, "--created", "--save", str(tmp_path / "missing" / "x.png"))
    assert result.returncode == 2
    assert "does not exist" in result.stderr
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_dollar_filter_in_chart(data_dir, tmp_path, suffix):
    """Regular expressions with two $ signs are plain text in the subtitle, not a formula."""
    target = tmp_path / f"users{suffix}"
    result = analyze(data_dir, "--users-by-closed", "--exclude", r"robot$|\[bot\]$", "--save", str(target))
    assert result.returncode == 0, result.stderr
    assert target.stat().st_size > 0


def test_filter_on_time_series_noted(data_dir):
    result = analyze(data_dir, "--created", "--include", "x")
    assert result.returncode == 0
    assert "apply to rankings (labels, users) only" in result.stderr


def test_empty_scope_explained(data_dir, tmp_path):
    tables = build_item_tables([item for item in FIXTURE if "pull_request" in item])
    for name in ("issues", "pull_requests", "labels"):
        write_parquet(getattr(tables, name), tmp_path / "tables" / f"{name}.parquet")
    result = analyze(tmp_path, "--created", "--issues")
    assert result.returncode == 1
    assert "the tables hold no issues" in result.stdout


def test_empty_selection_explained(data_dir):
    result = analyze(data_dir, "--users-by-created", "--include", "nobody-matches-this")
    assert result.returncode == 1
    assert "the selection is empty" in result.stdout


def test_missing_tables_explained(tmp_path):
    result = analyze(tmp_path, "--created")
    assert result.returncode == 2
    assert "build the tables first" in result.stderr
