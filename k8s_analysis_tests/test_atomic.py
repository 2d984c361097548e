"""Tests for atomic writes: a failed write leaves the previous file whole and no temporary file."""

import pandas as pd
import pytest

from k8s_analysis.atomic import write_bytes, write_parquet, write_text


def temporary_files(folder):
    return sorted(path.name for path in folder.iterdir() if path.name.startswith(".tmp-"))


@pytest.fixture
def old_frame():
    return pd.DataFrame({"number": [119001, 119002], "title": ["Fix kubelet crash", "Add flag"]})


@pytest.fixture
def new_frame():
    return pd.DataFrame({"number": [120001, 120002, 120003], "title": ["a", "b", "c"]})


def test_write_parquet_replaces_file(tmp_path, old_frame, new_frame):
    target = tmp_path / "tables" / "items.parquet"

    write_parquet(old_frame, target)
    write_parquet(new_frame, target)

    pd.testing.assert_frame_equal(pd.read_parquet(target), new_frame)
    assert temporary_files(target.parent) == []


def test_interrupted_parquet_keeps_old(tmp_path, old_frame, new_frame, monkeypatch):
    target = tmp_path / "tables" / "items.parquet"
    write_parquet(old_frame, target)
    new_bytes_path = tmp_path / "new.parquet"
    new_frame.to_parquet(new_bytes_path, index=False, engine="pyarrow")
    partial = new_bytes_path.read_bytes()[:64]

    def partial_to_parquet(frame, path, **kwargs):
        with open(path, "wb") as handle:
            handle.write(partial)
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", partial_to_parquet)
    with pytest.raises(OSError, match="disk full"):
        write_parquet(new_frame, target)
    monkeypatch.undo()

    pd.testing.assert_frame_equal(pd.read_parquet(target), old_frame)
    assert temporary_files(target.parent) == []


def test_interrupted_first_write_leaves_nothing(tmp_path, new_frame, monkeypatch):
    target = tmp_path / "tables" / "items.parquet"

    def failing_to_parquet(frame, path, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", failing_to_parquet)
    with pytest.raises(OSError, match="disk full"):
        write_parquet(new_frame, target)
    monkeypatch.undo()

    assert not target.exists()
    assert temporary_files(target.parent) == []


def test_write_text_round_trip(tmp_path):
    target = tmp_path / "notes" / "summary.txt"

    write_text(target, "kind/bug: 42 %\n")
    write_bytes(target, "kind/bug: 43 %\n".encode("utf-8"))

    assert target.read_text(encoding="utf-8") == "kind/bug: 43 %\n"
    assert temporary_files(target.parent) == []
