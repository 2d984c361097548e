"""Tables and published models in object storage (S3, GCS) or the local data directory.

``K8S_ANALYSIS_STORAGE_URL`` chooses the storage root, an fsspec URL such as
``s3://bucket/prefix``. Unset or empty keeps every table in ``DATA_DIR/tables`` as before.
``K8S_ANALYSIS_STORAGE_OPTIONS`` is an optional JSON object of fsspec storage options, such as
an S3-compatible server's ``endpoint_url``. Credentials come from the usual environment
(``AWS_ACCESS_KEY_ID``, ``GOOGLE_APPLICATION_CREDENTIALS``, workload identity).

Readers never see a partial file. A local file is written to a temporary file and renamed. An
object is written to a local temporary file and uploaded in one call, because S3 and GCS make
an object visible only once its upload (single or multipart) has completed.

A model version is built locally, then published to ``<storage>/models/<version>/`` with
``manifest.json`` uploaded last, so a version whose manifest exists is complete. Promotion
writes ``<storage>/models/current.json`` (``{"version": ..., "promoted_at": ...}``) after the
version's files are there, and the prediction server and the bot poll that pointer.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from upath import UPath

from k8s_analysis import atomic
from k8s_analysis.paths import STORAGE_URL_ENV, DataLayout

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

STORAGE_OPTIONS_ENV = "K8S_ANALYSIS_STORAGE_OPTIONS"
MODELS_FOLDER = "models"
# The same names as in k8s_analysis.model.bundle, which is not imported here because it loads
# scikit-learn, and every command imports this module through paths.py.
CURRENT = "current"
MANIFEST_FILE = "manifest.json"
POINTER_SUFFIX = ".json"
# Storage options whose name contains one of these words are shown as *** in messages.
SECRET_WORDS = ("secret", "key", "token", "password", "credential", "session")
# Protocols whose paths are files on this machine; everything else is object storage.
LOCAL_PROTOCOLS = ("", "file", "local")
EXTRAS = {"gs": "gcs", "gcs": "gcs", "s3": "s3", "s3a": "s3"}
URL_EXAMPLE = "s3://BUCKET/PREFIX or gs://BUCKET/PREFIX"

TablePath = Path | UPath
"""A table's location: a local file, or an object in storage."""


class StorageConfigError(ValueError):
    """K8S_ANALYSIS_STORAGE_URL or K8S_ANALYSIS_STORAGE_OPTIONS cannot be used."""


def is_secret_option(name: str) -> bool:
    return any(word in name.lower() for word in SECRET_WORDS)


def redact_url(url: str) -> str:
    """Return ``url`` with any user name and password replaced by ***."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def redact_options(options: dict) -> dict:
    return {name: "***" if is_secret_option(str(name)) else value for name, value in options.items()}


def mask_json_values(text: str) -> str:
    """Replace every value after a colon by ***, for showing JSON that could not be parsed."""
    return re.sub(r'(:\s*)("(?:[^"\\]|\\.)*"|[^,}\s]+)', r'\1"***"', text)


def storage_options_from_environment() -> dict:
    """Parse K8S_ANALYSIS_STORAGE_OPTIONS; unset or empty gives no options."""
    raw = os.environ.get(STORAGE_OPTIONS_ENV, "").strip()
    if not raw:
        return {}
    fix = ('give a JSON object of fsspec storage options, such as {"endpoint_url": "http://127.0.0.1:9000"}, '
           "or unset it; credentials belong in the usual variables, such as AWS_ACCESS_KEY_ID")
    try:
        options = json.loads(raw)
    except json.JSONDecodeError as error:
        raise StorageConfigError(f"invalid {STORAGE_OPTIONS_ENV}={mask_json_values(raw)} (values hidden): "
                                 f"{error}; {fix}") from None
    if not isinstance(options, dict):
        raise StorageConfigError(f"invalid {STORAGE_OPTIONS_ENV}: it is a JSON {type(options).__name__}, "
                                 f"not an object; {fix}")
    return options


def storage_root(url: str | None = None, options: dict | None = None) -> UPath | None:
    """Return the storage root: ``url``, else $K8S_ANALYSIS_STORAGE_URL; None when neither is set.

    ``options`` default to $K8S_ANALYSIS_STORAGE_OPTIONS. Raises StorageConfigError naming the
    variable, its value without credentials, and the fix.
    """
    from_environment = url is None
    url = (os.environ.get(STORAGE_URL_ENV, "") if from_environment else url).strip()
    if not url:
        return None
    options = storage_options_from_environment() if options is None else options
    return storage_path(url, options, STORAGE_URL_ENV if from_environment else "storage URL")


def storage_path(url: str, options: dict | None = None, name: str = "storage URL") -> UPath:
    """Turn an fsspec URL into a UPath with ``options`` (default: $K8S_ANALYSIS_STORAGE_OPTIONS).

    ``name`` is the variable or option the URL came from, for the error message.
    """
    options = storage_options_from_environment() if options is None else options
    display_url = redact_url(url)
    if "://" not in url:
        raise StorageConfigError(f"invalid {name}={display_url!r}: give an fsspec URL such as {URL_EXAMPLE}, "
                                 "or leave it unset to keep the data in the local data directory")
    protocol = url.split("://", 1)[0]
    try:
        path = UPath(url, **options)
        path.fs  # noqa: B018 (creating the file system finds a missing package or a bad option now)
    except ImportError:
        extra = EXTRAS.get(protocol)
        install = f"pip install 'k8s-analysis[{extra}]'" if extra else "install the fsspec package for it"
        raise StorageConfigError(f"{name}={display_url!r} needs the {protocol}:// file system, which is not "
                                 f"installed: {install}") from None
    except (TypeError, ValueError) as error:
        raise StorageConfigError(f"invalid {name}={display_url!r} with {STORAGE_OPTIONS_ENV} "
                                 f"{redact_options(options)}: {error}; give an fsspec URL such as "
                                 f"{URL_EXAMPLE} and options that its file system accepts") from None
    if path.protocol not in LOCAL_PROTOCOLS and path.protocol != "memory" and not path.path.strip("/"):
        raise StorageConfigError(f"invalid {name}={display_url!r}: it names no bucket; give {URL_EXAMPLE}")
    return path


def model_location(value: str | os.PathLike[str]) -> Path | UPath:
    """Parse a ``--model-dir``: a URL (``s3://.../models/current``) or a local folder."""
    text = os.fspath(value)
    return storage_path(text, name="--model-dir") if "://" in text else Path(text)


def local_path(path: TablePath) -> Path | None:
    """Return the local file behind ``path``, or None when it is in object storage."""
    if not isinstance(path, UPath):
        return Path(path)
    return Path(path.path) if path.protocol in LOCAL_PROTOCOLS else None


def is_pointer_location(location: Path | UPath) -> bool:
    """Return True for a model location given as a URL, file:// included: it names a ``.json`` pointer."""
    return isinstance(location, UPath) and bool(location.protocol)


# -- tables -------------------------------------------------------------------------------------


def table_exists(path: TablePath) -> bool:
    local = local_path(path)
    return local.is_file() if local is not None else path.is_file()


def read_parquet(path: TablePath, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a Parquet table; a missing one raises FileNotFoundError."""
    import pandas as pd

    local = local_path(path)
    if local is not None:
        return pd.read_parquet(local, columns=columns)
    with path.open("rb") as handle:
        return pd.read_parquet(handle, columns=columns)


def write_parquet(frame: pd.DataFrame, path: TablePath) -> None:
    """Write a Parquet table so that readers see the old table or the new one, never a part."""
    local = local_path(path)
    if local is not None:
        atomic.write_parquet(frame, local)
        return
    with tempfile.TemporaryDirectory(prefix="k8s-analysis-upload-") as folder:
        staged = Path(folder) / path.name
        frame.to_parquet(staged, index=False, engine="pyarrow")
        path.fs.put_file(str(staged), path.path)


def write_object(path: TablePath, data: bytes) -> None:
    """Write a small file or object in one step (a rename locally, one PUT in object storage)."""
    local = local_path(path)
    if local is not None:
        atomic.write_bytes(local, data)
    else:
        path.fs.pipe_file(path.path, data)


# -- models -------------------------------------------------------------------------------------


def pointer_path(location: UPath) -> UPath:
    """Return the pointer object of a promoted-model location: ``models/current`` -> ``models/current.json``."""
    return location.with_name(location.name + POINTER_SUFFIX)


def publish_model(layout: DataLayout, version: str, *, promoted: bool) -> UPath | None:
    """Upload a local version folder to storage and, when ``promoted``, point ``current.json`` at it.

    Call it wherever ``models/current`` moves. Does nothing and returns None without object
    storage. A version already in storage (its manifest exists) is not uploaded again, since
    version folders never change once saved. Returns the version's folder in storage.
    """
    if layout.storage is None:
        return None
    models = layout.storage / MODELS_FOLDER
    target = models / version
    if not (target / MANIFEST_FILE).exists():
        upload_folder(layout.models_dir / version, target)
        logger.info("published model %s to %s", version, target)
    if promoted:
        pointer = pointer_path(models / CURRENT)
        record = {"version": version, "promoted_at": datetime.now(UTC).isoformat()}
        write_object(pointer, (json.dumps(record, indent=2) + "\n").encode())
        logger.info("pointed %s at model %s", pointer, version)
    return target


def upload_folder(folder: Path, target: UPath) -> None:
    """Upload every file of a version folder, ``manifest.json`` last."""
    from k8s_analysis.model.bundle import ModelLoadError

    manifest = folder / MANIFEST_FILE
    if not manifest.is_file():
        raise ModelLoadError(f"cannot publish {folder}: it has no {MANIFEST_FILE}; train the model again")
    files = sorted(path for path in folder.rglob("*")
                   if path.is_file() and path != manifest and not path.name.startswith(".tmp-"))
    for path in [*files, manifest]:
        remote = target.joinpath(*path.relative_to(folder).parts)
        local = local_path(remote)
        if local is not None:
            atomic.write_bytes(local, path.read_bytes())
        else:
            remote.fs.put_file(str(path), remote.path)


def read_pointer(pointer: UPath) -> dict | None:
    """Read a ``current.json`` pointer: None when it does not exist.

    Raises ValueError when it is not a JSON object naming a version, and whatever the file
    system raises when the storage cannot be reached.
    """
    try:
        data = pointer.fs.cat_file(pointer.path)
    except FileNotFoundError:
        return None
    try:
        record = json.loads(data)
    except ValueError:
        record = None
    if not isinstance(record, dict) or not isinstance(record.get("version"), str) or not record["version"]:
        raise ValueError(f"{pointer} is not a JSON object with a \"version\" string; promote a model again "
                         "(redeploy_job or `k8s-analysis rollback`) to rewrite it")
    return record


def download_version(version_dir: UPath, cache_dir: Path) -> Path:
    """Download a published version folder into ``cache_dir/<version>`` and return that folder.

    The files land in a temporary folder that is renamed when complete, so a folder in the
    cache is always whole. A version already in the cache is not downloaded again. Raises
    ModelLoadError when the version has no manifest, because then its upload never finished.
    """
    from k8s_analysis.model.bundle import ModelLoadError

    target = cache_dir / version_dir.name
    if (target / MANIFEST_FILE).is_file():
        return target
    fs = version_dir.fs
    fs.invalidate_cache(version_dir.path)
    if not fs.exists((version_dir / MANIFEST_FILE).path):
        raise ModelLoadError(f"model {version_dir.name} in {version_dir} has no {MANIFEST_FILE}, so its upload "
                             "did not finish; publish it again (redeploy_job, or `k8s-analysis train`)")
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{version_dir.name}.", dir=cache_dir))
    try:
        prefix = PurePosixPath(version_dir.path)
        for remote in fs.find(version_dir.path):
            local = staging.joinpath(*PurePosixPath(remote).relative_to(prefix).parts)
            local.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(remote, str(local))
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
