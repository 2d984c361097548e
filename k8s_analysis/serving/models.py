"""Load the served model, watch where ``models/current`` points, and swap in new versions.

A reload resolves the link once and loads that version folder, so a link moved again during
the load cannot mix files of two versions. Loading runs in a worker thread. The new predictor
replaces the old one in a single assignment, after a smoke test. Requests already running keep
the predictor they started with. A version that fails to load or to score is logged and
rejected, and the old one keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread
import numpy as np

from k8s_analysis.model.bundle import MANIFEST_FILE, Predictor
from k8s_analysis.serving.metrics import ServerMetrics

logger = logging.getLogger(__name__)

SMOKE_TEST_TEXTS = ["Fixed a crash of the kubelet when a pod had no containers.", "Added a --output flag.", ""]


@dataclass(frozen=True)
class ModelSource:
    """The version folder a model path resolved to, and its manifest's identity at that time."""

    folder: Path
    manifest_mtime_ns: int
    manifest_inode: int


@dataclass(frozen=True)
class ReloadResult:
    loaded: bool
    """True when a new version now serves; False when nothing changed or the load failed."""
    version: str | None
    """The version serving after the reload attempt (None when there is none)."""
    error: str | None = None


class ModelStore:
    """The predictor being served, replaced as a whole on reload."""

    def __init__(self, model_dir: Path, name: str, metrics: ServerMetrics) -> None:
        self.model_dir = Path(model_dir)
        self.name = name
        self.metrics = metrics
        self.predictor: Predictor | None = None
        self.last_error: str | None = None
        self._loaded: ModelSource | None = None
        self._failed: ModelSource | None = None
        self._lock = asyncio.Lock()

    @property
    def version(self) -> str | None:
        predictor = self.predictor
        return predictor.version if predictor is not None else None

    def source(self) -> ModelSource | None:
        """Resolve ``model_dir`` now; None when it or its manifest does not exist."""
        folder = Path(os.path.realpath(self.model_dir))
        try:
            status = (folder / MANIFEST_FILE).stat()
        except OSError:
            return None
        return ModelSource(folder, status.st_mtime_ns, status.st_ino)

    def changed(self) -> bool:
        """Return True when ``model_dir`` resolves to a version neither loaded nor already refused."""
        source = self.source()
        return source is not None and source not in (self._loaded, self._failed)

    async def reload(self) -> ReloadResult:
        """Load the version ``model_dir`` points at, unless it is the one already serving."""
        async with self._lock:
            source = self.source()
            if source is None:
                # Not a failed load: there is nothing to load yet, and the watcher waits for it.
                self.last_error = (f"no model at {self.model_dir}: the folder or its {MANIFEST_FILE} does not "
                                   "exist; train one with `k8s-analysis run` or `train`")
                logger.warning("%s", self.last_error)
                return ReloadResult(False, self.version, self.last_error)
            if source == self._loaded:
                return ReloadResult(False, self.version)
            try:
                predictor = await anyio.to_thread.run_sync(load_checked, source.folder)
            # A broken version must never stop the server: whatever goes wrong is logged, and the
            # old model keeps serving.
            except Exception as error:  # noqa: BLE001
                logger.debug("loading %s failed", source.folder, exc_info=True)
                return self._reject(source, f"cannot load {source.folder}: {error}")
            previous = self.version
            self.predictor = predictor
            self._loaded, self._failed, self.last_error = source, None, None
            self.metrics.model_loaded(self.name, predictor.version, previous)
            if previous is None:
                logger.info("model %s loaded from %s (threshold %.3f)", predictor.version, source.folder,
                            predictor.threshold)
            else:
                logger.info("model reloaded: %s replaces %s (from %s)", predictor.version, previous, source.folder)
            return ReloadResult(True, predictor.version)

    def _reject(self, source: ModelSource, message: str) -> ReloadResult:
        self._failed = source
        self.last_error = message
        self.metrics.reloads.labels("failure").inc()
        still = f"; still serving {self.version}" if self.predictor is not None else "; no model is serving"
        logger.error("%s%s", message, still)
        return ReloadResult(False, self.version, message + still)

    async def watch(self, interval: float) -> None:
        """Reload whenever ``model_dir`` points somewhere new; runs until cancelled."""
        while True:
            await asyncio.sleep(interval)
            if self.changed():
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
