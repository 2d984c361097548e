"""Tests for reading recorded issue exports in every supported form."""

import gzip
import io
import json
import lzma
import tarfile
from datetime import UTC, datetime

import pytest
import zstandard

from k8s_analysis.sources.archive import ArchiveIssueSource, ExportReadError, IssueExport
from k8s_analysis_tests.shared_data import shared_path

REAL_PRS_ARCHIVE = ("data", "kubernetes-prs", "kubernetes-prs-api.tar.xz")
REAL_PRS_TOTAL = 744
SAMPLE_SIZE = 50

COMPRESSORS = {
    "plain": lambda data: data,
    "gzip": gzip.compress,
    "xz": lzma.compress,
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
}
SUFFIXES = {"plain": "", "gzip": ".gz", "xz": ".xz", "zstd": ".zst"}


def read_real_items(limit=None):
    """Read the items of the real archive's api.json with tarfile and json alone."""
    with tarfile.open(shared_path(*REAL_PRS_ARCHIVE), mode="r:xz") as tar:
        handle = tar.extractfile("api.json")
        items = json.load(handle)
    return items if limit is None else items[:limit]


@pytest.fixture(scope="module")
def sample_items():
    return read_real_items(SAMPLE_SIZE)


def json_list_bytes(items):
    return json.dumps(items).encode("utf-8")


def json_lines_bytes(items):
    return "".join(json.dumps(item) + "\n" for item in items).encode("utf-8")


def tar_bytes(members):
    """Build an uncompressed tar archive from a mapping of member name to content."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def write_export(folder, name, data, compression):
    path = folder / f"{name}{SUFFIXES[compression]}"
    path.write_bytes(COMPRESSORS[compression](data))
    return path


def read_items(path):
    return list(IssueExport(path).iter_items())


# ---------------------------------------------------------------------------
# Every form yields the same items.


@pytest.mark.parametrize("compression", list(COMPRESSORS))
def test_json_list_reads_items(tmp_path, sample_items, compression):
    path = write_export(tmp_path, "issues.json", json_list_bytes(sample_items), compression)

    items = read_items(path)

    assert [item["number"] for item in items] == [item["number"] for item in sample_items]
    assert items == sample_items


@pytest.mark.parametrize("compression", list(COMPRESSORS))
def test_json_lines_reads_items(tmp_path, sample_items, compression):
    path = write_export(tmp_path, "issues.jsonl", json_lines_bytes(sample_items), compression)

    items = read_items(path)

    assert [item["number"] for item in items] == [item["number"] for item in sample_items]
    assert items == sample_items


@pytest.mark.parametrize("member", ["api.json", "export/api.json", "data/export/api.json"])
@pytest.mark.parametrize("compression", list(COMPRESSORS))
def test_tar_reads_api_json(tmp_path, sample_items, compression, member):
    archive = tar_bytes({"README.md": b"recorded export\n", member: json_list_bytes(sample_items)})
    path = write_export(tmp_path, "api.tar", archive, compression)

    items = read_items(path)

    assert [item["number"] for item in items] == [item["number"] for item in sample_items]
    assert items == sample_items


def test_json_lines_skips_blank_lines(tmp_path, sample_items):
    path = tmp_path / "issues.jsonl"
    path.write_bytes(b"\n" + json_lines_bytes(sample_items[:3]).replace(b"\n", b"\n\r\n"))

    assert read_items(path) == sample_items[:3]


@pytest.mark.parametrize("name,encode", [("issues.json", json_list_bytes), ("issues.jsonl", json_lines_bytes)])
def test_export_with_byte_order_mark(tmp_path, sample_items, name, encode):
    path = tmp_path / name
    path.write_bytes(b"\xef\xbb\xbf" + encode(sample_items[:3]))

    assert read_items(path) == sample_items[:3]


def test_real_archive_has_all_items():
    items = read_items(shared_path(*REAL_PRS_ARCHIVE))

    assert len(items) == REAL_PRS_TOTAL
    assert len({item["number"] for item in items}) == REAL_PRS_TOTAL
    assert items == read_real_items()


# ---------------------------------------------------------------------------
# Bad inputs raise ExportReadError naming the path.


def test_tar_without_api_json(tmp_path):
    archive = tar_bytes({"README.md": b"notes\n", "issues.json": b"[]"})
    path = write_export(tmp_path, "api.tar", archive, "xz")

    with pytest.raises(ExportReadError) as caught:
        read_items(path)

    message = str(caught.value)
    assert str(path) in message
    assert "api.json" in message
    assert "README.md" in message
    assert "issues.json" in message
    assert caught.value.path == path


@pytest.mark.parametrize("kept_bytes", [40, None])
def test_truncated_xz_rejected(tmp_path, sample_items, kept_bytes):
    data = lzma.compress(json_list_bytes(sample_items))
    path = tmp_path / "issues.json.xz"
    path.write_bytes(data[: kept_bytes or len(data) // 2])

    with pytest.raises(ExportReadError) as caught:
        read_items(path)

    assert str(path) in str(caught.value)
    assert "truncated" in str(caught.value)


def test_truncated_tar_rejected(tmp_path, sample_items):
    archive = tar_bytes({"api.json": json_list_bytes(sample_items)})
    path = tmp_path / "api.tar"
    path.write_bytes(archive[: len(archive) // 2])

    with pytest.raises(ExportReadError) as caught:
        read_items(path)

    assert str(path) in str(caught.value)


def test_invalid_json_rejected(tmp_path, sample_items):
    path = tmp_path / "issues.json"
    path.write_bytes(json_list_bytes(sample_items[:3])[:-20])

    with pytest.raises(ExportReadError) as caught:
        read_items(path)

    assert str(path) in str(caught.value)
    assert "invalid JSON" in str(caught.value)


def test_not_json_rejected(tmp_path):
    path = tmp_path / "issues.txt"
    path.write_text("number,title\n1,first\n", encoding="utf-8")

    with pytest.raises(ExportReadError) as caught:
        read_items(path)

    assert str(path) in str(caught.value)
    assert "'n'" in str(caught.value)


def test_json_lines_bad_line(tmp_path, sample_items):
    lines = json_lines_bytes(sample_items[:4]).splitlines(keepends=True)
    lines[2] = lines[2][: len(lines[2]) // 2] + b"\n"
    path = tmp_path / "issues.jsonl"
    path.write_bytes(b"".join(lines))

    with pytest.raises(ExportReadError) as caught:
        read_items(path)

    assert str(path) in str(caught.value)
    assert "line 3" in str(caught.value)


def test_list_item_without_number(tmp_path, sample_items):
    broken = dict(sample_items[1])
    del broken["number"]
    path = tmp_path / "issues.json"
    path.write_bytes(json_list_bytes([sample_items[0], broken]))

    with pytest.raises(ExportReadError) as caught:
        read_items(path)

    assert str(path) in str(caught.value)
    assert "list element 1" in str(caught.value)
    assert "'number'" in str(caught.value)


def test_json_line_without_number(tmp_path, sample_items):
    broken = {key: value for key, value in sample_items[1].items() if key != "number"}
    path = tmp_path / "issues.jsonl"
    path.write_bytes(json_lines_bytes([sample_items[0], broken]))

    with pytest.raises(ExportReadError) as caught:
        read_items(path)

    assert str(path) in str(caught.value)
    assert "line 2" in str(caught.value)


def test_list_of_strings_rejected(tmp_path):
    path = tmp_path / "issues.json"
    path.write_text('["one", "two"]', encoding="utf-8")

    with pytest.raises(ExportReadError) as caught:
        read_items(path)

    assert str(path) in str(caught.value)
    assert "list element 0" in str(caught.value)


# ---------------------------------------------------------------------------
# ArchiveIssueSource


def parse_github_time(value):
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def test_source_filters_by_since(tmp_path, sample_items):
    path = write_export(tmp_path, "issues.json", json_list_bytes(sample_items), "gzip")
    times = sorted(parse_github_time(item["updated_at"]) for item in sample_items)
    since = times[len(times) // 2]
    expected = [item for item in sample_items if parse_github_time(item["updated_at"]) >= since]

    items = list(ArchiveIssueSource(paths=[str(path)]).iter_items(since=since))

    assert 0 < len(expected) < len(sample_items)
    assert [item["number"] for item in items] == [item["number"] for item in expected]


def test_source_without_since(tmp_path, sample_items):
    first = write_export(tmp_path, "first.json", json_list_bytes(sample_items[:20]), "plain")
    second = write_export(tmp_path, "second.jsonl", json_lines_bytes(sample_items[20:]), "zstd")
    source = ArchiveIssueSource(paths=[str(first), str(second)])

    assert list(source.iter_items()) == sample_items
    assert source.is_configured()


def test_source_keeps_items_without_time(tmp_path, sample_items):
    undated = dict(sample_items[0], updated_at=None)
    path = write_export(tmp_path, "issues.json", json_list_bytes([undated]), "plain")
    since = datetime(2100, 1, 1, tzinfo=UTC)

    items = list(ArchiveIssueSource(paths=[str(path)]).iter_items(since=since))

    assert items == [undated]


def test_source_without_paths():
    source = ArchiveIssueSource()

    assert not source.is_configured()
    assert list(source.iter_items()) == []
