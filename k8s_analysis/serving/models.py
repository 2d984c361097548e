"""Load the served model, watch where ``models/current`` points, and swap in new versions.

The model is a local folder (usually the ``models/current`` link) or a URL in object storage
such as ``s3://bucket/prefix/models/current``. A URL names the pointer object ``current.json``
beside it: each check reads that pointer, and a new version is downloaded into a local cache
folder before it is loaded (see ``storage.py``).

A reload resolves the link or the pointer once and loads that version folder, so a link moved
again during the load cannot mix files of two versions. Loading runs in a worker thread. The
new predictor replaces the old one in a single assignment, after a smoke test. Requests
already running keep the predictor they started with. A version that fails to load or to
score is logged and rejected, and the old one keeps serving. So does the old model while the
object storage cannot be reached.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread
import numpy as np
from upath import UPath

from k8s_analysis.model.bundle import MANIFEST_FILE, Predictor
from k8s_analysis.serving.metrics import ServerMetrics
from k8s_analysis.storage import download_version, is_pointer_location, model_location, pointer_path, read_pointer

logger = logging.getLogger(__name__)

SMOKE_TEST_TEXTS = ["Fixed a crash of the kubelet when a pod had no containers.", "Added a --output flag.", ""]


@dataclass(frozen=True)
class ModelSource:
    """The version folder a model location resolved to, and what identifies that resolution."""

    folder: Path | UPath
    """A local version folder, or the version's folder in object storage."""
    identity: tuple
    """Locally the manifest's mtime and inode; in object storage the pointer's version and promotion time."""


@dataclass(frozen=True)
class ReloadResult:
    loaded: bool
    """True when a new version now serves; False when nothing changed or the load failed."""
    version: str | None
    """The version serving after the reload attempt (None when there is none)."""
    error: str | None = None


class ModelStore:
    """The predictor being served, replaced as a whole on reload."""

    def __init__(self, model_dir: Path | UPath | str, name: str, metrics: ServerMetrics) -> None:
        location = model_location(model_dir) if isinstance(model_dir, str) else model_dir
        self.pointer = pointer_path(location) if is_pointer_location(location) else None
        self.model_dir = location if self.pointer is not None else Path(location)
        self.name = name
        self.metrics = metrics
        self.predictor: Predictor | None = None
        self.origin: str | None = None
        """The serving version's source: its local folder, or its URL in object storage."""
        self.last_error: str | None = None
        self._loaded: ModelSource | None = None
        self._failed: ModelSource | None = None
        # The last failure of each storage step ("pointer", "download"), so that a failure
        # repeated at every check is logged once.
        self._storage_errors: dict[str, str] = {}
        self._cache_dir: Path | None = None
        self._lock = asyncio.Lock()

    @property
    def version(self) -> str | None:
        predictor = self.predictor
        return predictor.version if predictor is not None else None

    def source(self) -> ModelSource | None:
        """Resolve ``model_dir`` now; None when no model is there yet.

        In object storage this reads the pointer object (one small GET), and raises whatever
        the file system raises when the storage cannot be reached.
        """
        if self.pointer is not None:
            record = read_pointer(self.pointer)
            if record is None:
                return None
            return ModelSource(self.model_dir.parent / record["version"],
                               (record["version"], record.get("promoted_at")))
        folder = Path(os.path.realpath(self.model_dir))
        try:
            status = (folder / MANIFEST_FILE).stat()
        except OSError:
            return None
        return ModelSource(folder, (status.st_mtime_ns, status.st_ino))

    def changed(self) -> bool:
        """Return True when ``model_dir`` resolves to a version neither loaded nor already refused."""
        try:
            source = self.source()
        # The watcher must outlive any failure of the object storage, whatever its client raises.
        except Exception as error:  # noqa: BLE001
            self._storage_failed("pointer", f"cannot read {self.pointer}: {error}")
            return False
        self._storage_recovered("pointer")
        return source is not None and source not in (self._loaded, self._failed)

    async def reload(self) -> ReloadResult:
        """Load the version ``model_dir`` points at, unless it is the one already serving."""
        async with self._lock:
            try:
                source = await anyio.to_thread.run_sync(self.source)
            except Exception as error:  # noqa: BLE001 (see changed)
                return self._storage_failed("pointer", f"cannot read {self.pointer}: {error}")
            self._storage_recovered("pointer")
            if source is None:
                # Not a failed load: there is nothing to load yet, and the watcher waits for it.
                self.last_error = self._missing_message()
                logger.warning("%s", self.last_error)
                return ReloadResult(False, self.version, self.last_error)
            if source == self._loaded:
                return ReloadResult(False, self.version)
            try:
                folder = await anyio.to_thread.run_sync(self._fetch, source)
            # A download can fail for as many reasons as the network has. The version is not
            # marked as refused, so the next check tries it again.
            except Exception as error:  # noqa: BLE001
                return self._storage_failed("download", f"cannot download model {source.identity[0]} from "
                                                        f"{source.folder}: {error}")
            self._storage_recovered("download")
            try:
                predictor = await anyio.to_thread.run_sync(load_checked, folder)
            # A broken version must never stop the server: whatever goes wrong is logged, and the
            # old model keeps serving.
            except Exception as error:  # noqa: BLE001
                logger.debug("loading %s failed", folder, exc_info=True)
                return self._reject(source, f"cannot load {source.folder}: {error}")
            previous = self.version
            self.predictor = predictor
            self.origin = str(source.folder)
            self._loaded, self._failed, self.last_error = source, None, None
            self._prune_cache(keep=folder)
            self.metrics.model_loaded(self.name, predictor.version, previous)
            if previous is None:
                logger.info("model %s loaded from %s (threshold %.3f)", predictor.version, self.origin,
                            predictor.threshold)
            else:
                logger.info("model reloaded: %s replaces %s (from %s)", predictor.version, previous, self.origin)
            return ReloadResult(True, predictor.version)

    def _missing_message(self) -> str:
        if self.pointer is None:
            return (f"no model at {self.model_dir}: the folder or its {MANIFEST_FILE} does not exist; train one "
                    "with `k8s-analysis run` or `train`")
        return (f"no model at {self.model_dir}: {self.pointer} does not exist; train and promote one with "
                "K8S_ANALYSIS_STORAGE_URL set, or run redeploy_job for a published version")

    def _fetch(self, source: ModelSource) -> Path:
        """Return a local folder of the source's version, downloading it from object storage if needed."""
        if self.pointer is None:
            return source.folder
        if self._cache_dir is None:
            # A private temporary folder per store: the server's workers and the bot each own
            # theirs, so no two processes write or prune the same folder. A restart downloads
            # the promoted version again. The folder is deleted with the store.
            self._cache_dir = Path(tempfile.mkdtemp(prefix="k8s-analysis-models-"))
            weakref.finalize(self, shutil.rmtree, self._cache_dir, True)
        return download_version(source.folder, self._cache_dir)

    def _prune_cache(self, keep: Path) -> None:
        """Delete cached versions other than ``keep``, because a loaded predictor keeps what it needs in memory."""
        if self._cache_dir is None:
            return
        for entry in self._cache_dir.iterdir():
            if entry != keep:
                shutil.rmtree(entry, ignore_errors=True)

    def _storage_failed(self, step: str, message: str) -> ReloadResult:
        """Log a failed storage step once per distinct message; the old model keeps serving."""
        still = f"; still serving {self.version}" if self.predictor is not None else "; no model is serving"
        if self._storage_errors.get(step) != message:
            logger.error("%s%s; trying again at the next check", message, still)
        self._storage_errors[step] = message
        if self.predictor is None:
            self.last_error = message
        return ReloadResult(False, self.version, message + still)

    def _storage_recovered(self, step: str) -> None:
        if self._storage_errors.pop(step, None) is not None:
            logger.info("object storage at %s is reachable again: the %s step succeeded", self.model_dir, step)

    def _reject(self, source: ModelSource, message: str) -> ReloadResult:
        self._failed = source
        self.last_error = message
        self.metrics.reloads.labels("failure").inc()
        still = f"; still serving {self.version}" if self.predictor is not None else "; no model is serving"
        logger.error("%s%s", message, still)
        return ReloadResult(False, self.version, message + still)

    async def watch(self, interval: float) -> None:
        """Reload whenever ``model_dir`` points somewhere new; runs until cancelled.

        The check runs in a worker thread, because in object storage it waits on the network.
        """
        while True:
            await asyncio.sleep(interval)
            if await anyio.to_thread.run_sync(self.changed):
                await self.reload()


def load_checked(folder: Path) -> Predictor:
    """Load a version folder and score a few texts, so a model that loads but cannot predict is refused."""
    predictor = Predictor(folder)
    probabilities, _ = predictor.score(SMOKE_TEST_TEXTS)
    if probabilities.shape != (len(SMOKE_TEST_TEXTS),) or not np.all(np.isfinite(probabilities)):
        raise ValueError(f"its smoke test gave {probabilities.tolist()}, not one finite probability per text; "
                         "the weights are damaged: retrain the model")
    if not np.all((probabilities >= 0.0) & (probabilities <= 1.0)):
        raise ValueError(f"its smoke test gave probabilities outside [0, 1]: {probabilities.tolist()}; "
                         "the last layer is not a sigmoid: retrain the model")
    return predictor
