"""The storage switch, the table helpers and the IO manager, on memory:// and local folders."""

import importlib.util
import json
from datetime import datetime
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
import pytest
from upath import UPath

from k8s_analysis import atomic
from k8s_analysis.cli import main
from k8s_analysis.io_manager import TableIOManager
from k8s_analysis.model.bundle import ModelLoadError
from k8s_analysis.paths import DataLayout
from k8s_analysis.serving.settings import SETTINGS_ENV, ServerSettings
from k8s_analysis.storage import (STORAGE_OPTIONS_ENV, STORAGE_URL_ENV, StorageConfigError, publish_model,
                                  read_parquet, storage_path, storage_root, table_exists, write_parquet)
from k8s_analysis.summary import step_failures

FRAME = pd.DataFrame({"pr_number": [3, 1, 2], "text": ["Fixed a leak.", "Added a flag.", None],
                      "is_bug": [True, False, False]})
SECRET = "topsecret-value"


# -- the layout switch --------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "", "  "])
def test_layout_without_storage_is_local(tmp_path, monkeypatch, value):
    if value is None:
        monkeypatch.delenv(STORAGE_URL_ENV, raising=False)
    else:
        monkeypatch.setenv(STORAGE_URL_ENV, value)

    layout = DataLayout(tmp_path)

    assert layout.storage is None
    assert type(layout.tables_dir) is type(tmp_path)
    assert layout.tables_dir == tmp_path / "tables"
    assert layout.table_path("issues") == tmp_path / "tables" / "issues.parquet"
    assert layout.promoted_model == tmp_path / "models" / "current"


def test_layout_with_storage_moves_tables(memory_storage, tmp_path):
    layout = DataLayout(tmp_path)
    url = str(memory_storage)

    assert str(layout.tables_dir) == f"{url}/tables"
    assert str(layout.table_path("release_notes")) == f"{url}/tables/release_notes.parquet"
    assert str(layout.label_feedback_path) == f"{url}/tables/label_feedback.parquet"
    assert str(layout.promoted_model) == f"{url}/models/current"
    # Models are built, and the raw store kept, in the data directory.
    assert layout.models_dir == tmp_path / "models"
    assert layout.current_model_dir == tmp_path / "models" / "current"
    assert layout.raw_dir == tmp_path / "raw"


def test_storage_options_reach_file_system(monkeypatch):
    monkeypatch.setenv(STORAGE_OPTIONS_ENV, json.dumps({"endpoint_url": "http://127.0.0.1:9"}))

    root = storage_root("s3://bucket/prefix")

    assert str(root) == "s3://bucket/prefix"
    assert root.storage_options["endpoint_url"] == "http://127.0.0.1:9"


# -- invalid settings ---------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "options", "expected"), [
    ("bucket/prefix", None, [f"{STORAGE_URL_ENV}='bucket/prefix'", "s3://BUCKET/PREFIX", "leave it unset"]),
    ("nosuch://bucket/prefix", None, [f"{STORAGE_URL_ENV}='nosuch://bucket/prefix'", "Unsupported filesystem",
                                      "s3://BUCKET/PREFIX"]),
    (f"nosuch://user:{SECRET}@bucket/prefix", None, [f"{STORAGE_URL_ENV}='nosuch://***@bucket/prefix'"]),
    ("s3://", None, [f"{STORAGE_URL_ENV}='s3://'", "names no bucket"]),
    ("s3://bucket/prefix", '{"endpoint_url": "http://127.0.0.1:9000", "secret": "' + SECRET + '"',
     [STORAGE_OPTIONS_ENV, '"endpoint_url": "***"', '"secret": "***"', "give a JSON object"]),
    ("s3://bucket/prefix", f'["{SECRET}"]', [STORAGE_OPTIONS_ENV, "JSON list, not an object"]),
], ids=["no-protocol", "unknown-protocol", "credentials-in-url", "no-bucket", "invalid-json", "not-an-object"])
def test_invalid_setting_names_variable_and_fix(monkeypatch, url, options, expected):
    monkeypatch.setenv(STORAGE_URL_ENV, url)
    if options is None:
        monkeypatch.delenv(STORAGE_OPTIONS_ENV, raising=False)
    else:
        monkeypatch.setenv(STORAGE_OPTIONS_ENV, options)

    with pytest.raises(StorageConfigError) as raised:
        storage_root()

    message = str(raised.value)
    for fragment in expected:
        assert fragment in message
    assert SECRET not in message


def test_gs_without_gcsfs_names_extra(monkeypatch):
    if importlib.util.find_spec("gcsfs") is not None:
        pytest.skip("gcsfs is installed, so gs:// URLs are accepted")
    monkeypatch.delenv(STORAGE_OPTIONS_ENV, raising=False)

    with pytest.raises(StorageConfigError, match=r"pip install 'k8s-analysis\[gcs\]'"):
        storage_root("gs://bucket/prefix")


def test_cli_reports_invalid_storage_url(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(STORAGE_URL_ENV, "bucket/prefix")

    status = main(["--data-dir", str(tmp_path), "train"])

    assert status == 2
    error = capsys.readouterr().err
    assert error.startswith(f"k8s-analysis train: error: invalid {STORAGE_URL_ENV}='bucket/prefix'")


def test_serve_rejects_invalid_model_url(tmp_path, capsys):
    with pytest.raises(SystemExit) as raised:
        main(["--data-dir", str(tmp_path), "serve", "--model-dir", "nosuch://bucket/models/current"])

    assert raised.value.code == 2
    assert "invalid --model-dir='nosuch://bucket/models/current'" in capsys.readouterr().err


def test_worker_settings_keep_model_url(monkeypatch):
    monkeypatch.setenv(STORAGE_OPTIONS_ENV, '{"endpoint_url": "http://127.0.0.1:9"}')
    settings = ServerSettings(storage_path("s3://bucket/prefix/models/current"), reload_interval=5.0)
    monkeypatch.setenv(SETTINGS_ENV, settings.to_environment())

    restored = ServerSettings.from_environment()

    assert str(restored.model_dir) == "s3://bucket/prefix/models/current"
    assert restored.model_dir.storage_options["endpoint_url"] == "http://127.0.0.1:9"
    assert restored.reload_interval == 5.0


# -- tables -------------------------------------------------------------------------------------


def test_parquet_round_trip_in_storage(memory_storage):
    path = memory_storage / "tables" / "release_notes.parquet"

    write_parquet(FRAME, path)

    assert table_exists(path)
    pd.testing.assert_frame_equal(read_parquet(path), FRAME)
    pd.testing.assert_frame_equal(read_parquet(path, columns=["pr_number"]), FRAME[["pr_number"]])


def test_missing_table_raises_file_not_found(memory_storage, tmp_path):
    for path in (memory_storage / "tables" / "absent.parquet", tmp_path / "absent.parquet"):
        assert not table_exists(path)
        with pytest.raises(FileNotFoundError):
            read_parquet(path)


def test_local_write_matches_atomic_writer(tmp_path):
    atomic.write_parquet(FRAME, tmp_path / "atomic" / "table.parquet")

    write_parquet(FRAME, tmp_path / "path" / "table.parquet")
    write_parquet(FRAME, UPath(f"file://{tmp_path}/url/table.parquet"))

    expected = (tmp_path / "atomic" / "table.parquet").read_bytes()
    assert (tmp_path / "path" / "table.parquet").read_bytes() == expected
    assert (tmp_path / "url" / "table.parquet").read_bytes() == expected
    assert sorted(path.name for path in tmp_path.rglob(".tmp-*")) == []


def test_failed_write_keeps_previous_object(memory_storage):
    path = memory_storage / "tables" / "release_notes.parquet"
    write_parquet(FRAME, path)
    unwritable = pd.DataFrame({"pr_number": [object()]})

    with pytest.raises(pa.ArrowException):
        write_parquet(unwritable, path)
    with pytest.raises(pa.ArrowException):
        write_parquet(unwritable, memory_storage / "tables" / "new.parquet")

    pd.testing.assert_frame_equal(read_parquet(path), FRAME)
    assert not table_exists(memory_storage / "tables" / "new.parquet")


# -- the IO manager -----------------------------------------------------------------------------


@dg.asset(io_manager_key="table_io_manager")
def numbers() -> pd.DataFrame:
    return pd.DataFrame({"n": [1, 2, 3]})


@dg.asset(io_manager_key="table_io_manager")
def doubled(numbers: pd.DataFrame) -> pd.DataFrame:
    return numbers * 2


def output_metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == asset]
    return {key: value.value for key, value in event.materialization.metadata.items()}


def test_io_manager_writes_to_storage(memory_storage, tmp_path):
    result = dg.materialize([numbers, doubled], resources={"table_io_manager": TableIOManager(root=str(tmp_path))})

    assert result.success
    metadata = output_metadata(result, "doubled")
    assert metadata["path"] == f"{memory_storage}/tables/doubled.parquet"
    assert metadata["dagster/row_count"] == 3
    assert read_parquet(memory_storage / "tables" / "doubled.parquet")["n"].tolist() == [2, 4, 6]
    assert not (tmp_path / "tables").exists()


def test_io_manager_local_default(tmp_path, monkeypatch):
    monkeypatch.delenv(STORAGE_URL_ENV, raising=False)

    result = dg.materialize([numbers, doubled], resources={"table_io_manager": TableIOManager(root=str(tmp_path))})

    assert result.success
    metadata = output_metadata(result, "numbers")
    assert metadata["path"] == str(tmp_path / "tables" / "numbers.parquet")
    assert metadata["dagster/row_count"] == 3
    assert pd.read_parquet(tmp_path / "tables" / "doubled.parquet")["n"].tolist() == [2, 4, 6]


def test_io_manager_missing_table_says_what_to_materialize(memory_storage, tmp_path):
    result = dg.materialize([numbers, doubled], selection=["doubled"], raise_on_error=False,
                            resources={"table_io_manager": TableIOManager(root=str(tmp_path))})

    assert not result.success
    (line,) = step_failures(result)
    assert f"table {memory_storage}/tables/numbers.parquet does not exist yet; materialize numbers first" in line


# -- model publication --------------------------------------------------------------------------


def fake_version(models_dir: Path, version: str) -> Path:
    """A version folder with the files publication copies; its contents are not a real model."""
    folder = models_dir / version
    (folder / "evaluation").mkdir(parents=True)
    (folder / "features.json").write_text("{}")
    (folder / "weights.npz").write_bytes(b"weights of " + version.encode())
    (folder / "evaluation" / "roc.png").write_bytes(b"png")
    (folder / "manifest.json").write_text(json.dumps({"version": version}))
    return folder


@pytest.fixture()
def uploads(memory_storage, monkeypatch) -> list[str]:
    """Record the name of every file uploaded or object written to the memory file system, in order."""
    fs = memory_storage.fs
    names = []
    put_file, pipe_file = fs.put_file, fs.pipe_file

    def recording_put_file(local, remote, *args, **kwargs):
        names.append(remote.rsplit("/", 1)[-1])
        return put_file(local, remote, *args, **kwargs)

    def recording_pipe_file(remote, data, *args, **kwargs):
        names.append(remote.rsplit("/", 1)[-1])
        return pipe_file(remote, data, *args, **kwargs)

    monkeypatch.setattr(fs, "put_file", recording_put_file)
    monkeypatch.setattr(fs, "pipe_file", recording_pipe_file)
    return names


def test_publish_uploads_manifest_then_pointer(memory_storage, uploads, tmp_path):
    layout = DataLayout(tmp_path)
    fake_version(layout.models_dir, "v1")

    published = publish_model(layout, "v1", promoted=True)

    assert str(published) == f"{memory_storage}/models/v1"
    assert uploads[-2:] == ["manifest.json", "current.json"]
    assert sorted(uploads[:-2]) == ["features.json", "roc.png", "weights.npz"]
    assert (published / "evaluation" / "roc.png").read_bytes() == b"png"
    assert (published / "weights.npz").read_bytes() == b"weights of v1"
    pointer = json.loads((memory_storage / "models" / "current.json").read_text())
    assert pointer["version"] == "v1"
    assert datetime.fromisoformat(pointer["promoted_at"]).tzinfo is not None


def test_publish_unpromoted_then_promote(memory_storage, uploads, tmp_path):
    layout = DataLayout(tmp_path)
    fake_version(layout.models_dir, "v1")

    publish_model(layout, "v1", promoted=False)

    assert (memory_storage / "models" / "v1" / "manifest.json").exists()
    assert not (memory_storage / "models" / "current.json").exists()
    uploads.clear()

    publish_model(layout, "v1", promoted=True)

    # The version is in storage already, so promoting it writes the pointer only.
    assert uploads == ["current.json"]
    assert json.loads((memory_storage / "models" / "current.json").read_text())["version"] == "v1"


def test_publish_without_storage_does_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv(STORAGE_URL_ENV, raising=False)
    layout = DataLayout(tmp_path)
    fake_version(layout.models_dir, "v1")

    assert publish_model(layout, "v1", promoted=True) is None
    assert sorted(path.name for path in layout.models_dir.iterdir()) == ["v1"]


def test_publish_refuses_folder_without_manifest(memory_storage, uploads, tmp_path):
    layout = DataLayout(tmp_path)
    (fake_version(layout.models_dir, "v1") / "manifest.json").unlink()

    with pytest.raises(ModelLoadError, match="has no manifest.json"):
        publish_model(layout, "v1", promoted=True)

    assert uploads == []


def test_rollback_command_moves_pointer(memory_storage, tmp_path, capsys):
    from k8s_analysis.model.bundle import promote

    layout = DataLayout(tmp_path)
    for version in ("v1", "v2"):
        fake_version(layout.models_dir, version)
        promote(layout.models_dir, version)
        publish_model(layout, version, promoted=True)

    status = main(["--data-dir", str(tmp_path), "rollback"])

    assert status == 0
    assert json.loads((memory_storage / "models" / "current.json").read_text())["version"] == "v1"
    assert f"{memory_storage}/models/current.json now names v1" in capsys.readouterr().out


# -- the bot ------------------------------------------------------------------------------------


def test_bot_feedback_reaches_training(memory_storage, tmp_path):
    import logging

    from k8s_analysis.assets.model import read_feedback
    from k8s_analysis.bot.state import BotState, FeedbackRow

    layout = DataLayout(tmp_path)
    state = BotState(layout.bot_state_path, feedback_path=layout.label_feedback_path)
    row = FeedbackRow(repository="kubernetes/kubernetes", pr_number=42, text="Fixed a leak.", probability=0.2,
                      threshold=0.6, predicted_bug=False, model_version="v1", label="kind/bug", action="labeled",
                      is_bug=True, sender="reviewer", at=1_700_000_000.0, delivery_id="delivery-1")
    try:
        state.add_feedback(row)
    finally:
        state.close()

    assert table_exists(memory_storage / "tables" / "label_feedback.parquet")
    feedback = read_feedback(layout, logging.getLogger(__name__))
    assert feedback["pr_number"].tolist() == [42]
    assert feedback["is_bug"].tolist() == [True]
    assert not (tmp_path / "tables").exists()


def test_bot_defaults_to_storage_model(memory_storage, tmp_path, monkeypatch):
    from k8s_analysis.bot.server import SECRET_ENV, TOKEN_ENV, BotOptions, build_service

    monkeypatch.delenv(TOKEN_ENV, raising=False)
    monkeypatch.delenv(SECRET_ENV, raising=False)
    options = BotOptions(dry_run=True, insecure_no_signature=True, bot_login="k8s-bot")

    service = build_service(options, DataLayout(tmp_path))

    assert str(service.store.model_dir) == f"{memory_storage}/models/current"
    assert str(service.store.pointer) == f"{memory_storage}/models/current.json"
