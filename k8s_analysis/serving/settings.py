"""Server settings, shared with uvicorn's worker processes through one environment variable."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from upath import UPath

DEFAULT_MODEL_NAME = "kubernetes-analysis"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
SETTINGS_ENV = "K8S_ANALYSIS_SERVE_SETTINGS"
# prometheus_client keeps metric values in files under this folder when it is set (multiprocess mode).
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True)
class ServerSettings:
    model_dir: Path | UPath
    """A model version folder, usually the ``models/current`` link, or a storage URL naming the
    promoted model (``s3://.../models/current``), resolved again on each reload."""
    model_name: str = DEFAULT_MODEL_NAME
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    reload_interval: float = 2.0
    """Seconds between checks of where ``model_dir`` points; 0 turns the watcher off."""
    explain_top: int = 5
    """Words listed per direction when a request includes ``"explain": true``."""
    max_explained_texts: int = 100
    """Texts one request may ask to explain; each costs about as much as 50 plain predictions."""
    inline_texts: int = 64
    """Requests with at most this many texts are scored on the event loop; larger ones in a thread."""
    log_level: str = "INFO"
    """Level of the worker processes' logs (the ``serve`` command configures its own)."""

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1:
            raise ValueError(f"invalid max body size {self.max_body_bytes}: give a positive number of bytes")
        if self.reload_interval < 0:
            raise ValueError(f"invalid reload interval {self.reload_interval}: give 0 (off) or more seconds")
        if self.explain_top < 1 or self.max_explained_texts < 1:
            raise ValueError(f"invalid explanation limits ({self.explain_top} n-grams, {self.max_explained_texts} "
                             "texts): give 1 or more")
        if not self.model_name or "/" in self.model_name or ":" in self.model_name:
            raise ValueError(f"invalid model name {self.model_name!r}: use letters, digits, '-' or '_' "
                             "(it is part of the URL)")

    def to_environment(self) -> str:
        return json.dumps({**asdict(self), "model_dir": str(self.model_dir)})

    @classmethod
    def from_environment(cls) -> ServerSettings:
        """Read the settings the ``serve`` command stored for its uvicorn workers."""
        value = os.environ.get(SETTINGS_ENV)
        if not value:
            raise RuntimeError(f"{SETTINGS_ENV} is not set; start the server with `k8s-analysis serve`")
        from k8s_analysis.storage import model_location

        fields = json.loads(value)
        # A URL stays a URL: Path("s3://b/m") would collapse it to "s3:/b/m".
        return cls(**{**fields, "model_dir": model_location(fields["model_dir"])})
