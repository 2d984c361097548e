"""Atomic file writes: a temporary file in the target folder, then a rename.

A reader sees either the previous file or the new one, never a partial write, and a crash
leaves at most a stray ``.tmp-*`` file beside the last good version.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` on success."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".tmp-{target.name}.", dir=target.parent)
    # mkstemp creates the file readable by its owner only; give it the usual umask mode.
    os.fchmod(fd, 0o666 & ~current_umask())
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(target: Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: Path, text: str) -> None:
    write_bytes(target, text.encode("utf-8"))


def write_with(target: Path, writer: Callable[[Path], None]) -> None:
    """Run ``writer(tmp_path)`` and publish its file atomically at ``target``."""
    with atomic_path(target) as tmp:
        writer(tmp)


def write_parquet(frame: pd.DataFrame, target: Path) -> None:
    write_with(target, lambda tmp: frame.to_parquet(tmp, index=False, engine="pyarrow"))
