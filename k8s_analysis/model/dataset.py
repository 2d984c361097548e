"""Training data for the classifier: cleaned notes, one copy of each text, split by time.

The default split is by release: the notes of the newest releases (two by default) are the
validation set and everything older trains. Published notes carry their release. A note from
an exported PR is placed in the first release whose published notes reach its PR number, or
after all of them when none does. When the notes know too few releases, the split falls back
to time order (merge time, else PR number) with the newest share held back. A stratified
random split is available, but it lets later notes teach the model about earlier ones, so its
figures flatter the model.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from k8s_analysis.model.text import clean_text

logger = logging.getLogger(__name__)

SPLIT_TRAIN = "train"
SPLIT_VALIDATION = "validation"
SPLIT_METHODS = ("release", "time", "random")
UNRELEASED = "unreleased"
MINOR_RELEASE = re.compile(r"^v?(\d+)\.(\d+)")


@dataclass(frozen=True)
class SplitConfig:
    method: str = "release"
    validation_releases: int = 2
    """How many of the newest releases form the validation set (method "release")."""
    validation_share: float = 0.15
    """Share of notes held back for validation (methods "time" and "random")."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in SPLIT_METHODS:
            raise ValueError(f"split method {self.method!r} is not one of {', '.join(SPLIT_METHODS)}")
        if self.validation_releases < 1:
            raise ValueError(f"validation_releases is {self.validation_releases}; it must be 1 or more")
        if not 0.0 < self.validation_share < 1.0:
            raise ValueError(f"validation_share is {self.validation_share}; it must lie between 0 and 1")


@dataclass
class Dataset:
    """Cleaned, de-duplicated notes with a ``split`` column, and a record of how they were split."""

    frame: pd.DataFrame
    info: dict

    def rows(self, split: str | None = None) -> pd.DataFrame:
        return self.frame if split is None else self.frame[self.frame["split"] == split]

    def texts(self, split: str | None = None) -> list[str]:
        return self.rows(split)["clean_text"].tolist()

    def labels(self, split: str | None = None) -> np.ndarray:
        return self.rows(split)["is_bug"].to_numpy(dtype=np.float32)

    def sigs(self, split: str | None = None) -> list:
        return self.rows(split)["sigs"].tolist()

    def areas(self, split: str | None = None) -> list:
        return self.rows(split)["areas"].tolist()

    def counts(self) -> dict[str, int]:
        return {name: int((self.frame["split"] == name).sum()) for name in (SPLIT_TRAIN, SPLIT_VALIDATION)}


def minor_release(version) -> str | None:
    """``"1.31"`` for ``"1.31.0"`` or ``"v1.31.2"``; None when the value names no release."""
    if not isinstance(version, str):
        return None
    match = MINOR_RELEASE.match(version)
    return f"{match[1]}.{match[2]}" if match else None


def release_key(release: str) -> tuple[int, int]:
    if release == UNRELEASED:
        return (1 << 30, 0)
    major, minor = release.split(".")
    return (int(major), int(minor))


def assign_releases(frame: pd.DataFrame) -> pd.Series:
    """Return each note's minor release. Notes without one take the first release that reaches their PR."""
    releases = frame["release_version"].map(minor_release) if "release_version" in frame else pd.Series(
        None, index=frame.index, dtype=object)
    known = releases.dropna()
    if known.empty:
        return releases
    reach = frame.loc[known.index, "pr_number"].groupby(known).max()
    ordered = sorted(reach.index, key=release_key)
    ceilings = np.maximum.accumulate(reach.loc[ordered].to_numpy())
    missing = releases.isna()
    positions = np.searchsorted(ceilings, frame.loc[missing, "pr_number"].to_numpy(), side="left")
    names = np.array([*ordered, UNRELEASED], dtype=object)
    releases = releases.astype(object)
    releases[missing] = names[positions]
    return releases


def normalised_notes(notes: pd.DataFrame) -> pd.DataFrame:
    """Return the columns training reads, with defaults for those a minimal table lacks."""
    frame = pd.DataFrame({"pr_number": notes["pr_number"].astype("int64"), "text": notes["text"]})
    frame["is_bug"] = notes["is_bug"].astype(bool)
    for column in ("sigs", "areas"):
        values = notes[column] if column in notes else pd.Series([None] * len(notes), index=notes.index)
        frame[column] = [list(value) if value is not None and not _is_missing(value) else [] for value in values]
    frame["release_version"] = notes["release_version"] if "release_version" in notes else None
    frame["merged_at"] = notes["merged_at"] if "merged_at" in notes else pd.NaT
    # pandas 3 keeps a missing text in a str column as NaN; the cleaner reads "" instead.
    frame["clean_text"] = [clean_text(text) if isinstance(text, str) else "" for text in frame["text"]]
    return frame


def apply_feedback(notes: pd.DataFrame, feedback: pd.DataFrame | None) -> tuple[pd.DataFrame, dict[str, int]]:
    """Overlay people's ``kind/bug`` corrections, stored by the bot, on the notes table.

    The newest ``kind/bug`` change per pull request wins: it sets ``is_bug`` of that PR's note,
    and a PR the table lacks is added with the note the bot saw. Changes of other ``kind/*``
    labels are skipped, because they are not about ``kind/bug``. A correction newer than the last
    export is known only here; an older one agrees with the exported labels anyway.
    """
    counts = {"feedback_rows": 0, "relabelled": 0, "added": 0}
    if feedback is None or feedback.empty:
        return notes, counts
    usable = feedback[(feedback["label"] == "kind/bug") & feedback["is_bug"].notna()]
    usable = usable.sort_values("at", kind="stable").drop_duplicates("pr_number", keep="last")
    counts["feedback_rows"] = len(usable)
    if usable.empty:
        return notes, counts
    decided = dict(zip(usable["pr_number"].astype("int64"), usable["is_bug"].astype(bool), strict=True))
    notes = notes.copy()
    known = notes["pr_number"].astype("int64").map(decided)
    changed = known.notna() & (known.astype("boolean") != notes["is_bug"].astype("boolean"))
    counts["relabelled"] = int(changed.sum())
    notes.loc[known.notna(), "is_bug"] = known[known.notna()].astype(bool)
    notes["is_bug"] = notes["is_bug"].astype(bool)
    missing = usable[~usable["pr_number"].isin(notes["pr_number"]) & usable["text"].notna()]
    if not missing.empty:
        added = pd.DataFrame({"pr_number": missing["pr_number"].astype("int64").to_numpy(),
                              "text": missing["text"].to_numpy(),
                              "is_bug": missing["is_bug"].astype(bool).to_numpy()})
        counts["added"] = len(added)
        notes = pd.concat([notes, added], ignore_index=True)
    return notes, counts


def _is_missing(value) -> bool:
    return isinstance(value, float) and np.isnan(value)


def build_dataset(notes: pd.DataFrame, config: SplitConfig = SplitConfig(), log=logger) -> Dataset:
    """Clean the notes, keep one copy of each text (its oldest), and split them."""
    frame = normalised_notes(notes)
    empty = int((frame["clean_text"] == "").sum())
    frame = frame[frame["clean_text"] != ""].copy()
    frame["release"] = assign_releases(frame)
    frame["order"] = time_order(frame)
    # Cherry-picks repeat their parent's note under another PR number. Keeping only the oldest
    # copy means no text is both trained on and evaluated, and no text weighs twice.
    frame = frame.sort_values(["order", "pr_number"], kind="stable")
    before = len(frame)
    frame = frame.drop_duplicates("clean_text", keep="first")
    duplicates = before - len(frame)

    method, reason = config.method, ""
    releases = sorted(frame["release"].dropna().unique(), key=release_key)
    if method == "release" and len(releases) <= config.validation_releases:
        method = "time"
        reason = (f"only {len(releases)} release(s) known, {config.validation_releases + 1} or more needed "
                  "for a split by release")
        log.info("splitting by time instead of by release: %s", reason)

    if method == "release":
        validation_releases = set(releases[-config.validation_releases:])
        is_validation = frame["release"].isin(validation_releases).to_numpy()
    elif method == "time":
        rank = np.arange(len(frame)) / max(len(frame), 1)
        is_validation = rank >= 1.0 - config.validation_share
    else:
        is_validation = random_validation(frame, config)
    frame["split"] = np.where(is_validation, SPLIT_VALIDATION, SPLIT_TRAIN)
    frame = frame.drop(columns="order").reset_index(drop=True)

    info = {
        **asdict(config),
        "method": method,
        "fallback_reason": reason,
        "counts": {name: int((frame["split"] == name).sum()) for name in (SPLIT_TRAIN, SPLIT_VALIDATION)},
        "bug_share": {name: float(frame.loc[frame["split"] == name, "is_bug"].mean())
                      for name in (SPLIT_TRAIN, SPLIT_VALIDATION) if (frame["split"] == name).any()},
        "releases": {name: _release_span(frame.loc[frame["split"] == name, "release"])
                     for name in (SPLIT_TRAIN, SPLIT_VALIDATION)},
        "pr_numbers": {name: _number_span(frame.loc[frame["split"] == name, "pr_number"])
                       for name in (SPLIT_TRAIN, SPLIT_VALIDATION)},
        "duplicates_dropped": duplicates,
        "empty_texts_dropped": empty,
        "fingerprints": {name: fingerprint(frame[frame["split"] == name])
                         for name in (SPLIT_TRAIN, SPLIT_VALIDATION)},
    }
    return Dataset(frame, info)


def time_order(frame: pd.DataFrame) -> np.ndarray:
    """Return a number that grows with time: release first, then merge time, then PR number."""
    release_rank = np.zeros(len(frame))
    if frame["release"].notna().any():
        keys = sorted(frame["release"].dropna().unique(), key=release_key)
        position = {name: index for index, name in enumerate(keys)}
        release_rank = frame["release"].map(position).fillna(len(keys)).to_numpy(dtype=float)
    merged = pd.to_datetime(frame["merged_at"], utc=True)
    if merged.notna().all() and len(frame):
        within = merged.rank(method="first").to_numpy()
    else:
        within = frame["pr_number"].rank(method="first").to_numpy()
    return release_rank * (len(frame) + 1) + within


def random_validation(frame: pd.DataFrame, config: SplitConfig) -> np.ndarray:
    labels = frame["is_bug"].to_numpy()
    stratify = labels if 0 < labels.sum() < len(labels) and len(labels) >= 10 else None
    _, validation = train_test_split(np.arange(len(frame)), test_size=config.validation_share,
                                     random_state=config.seed, stratify=stratify)
    mask = np.zeros(len(frame), dtype=bool)
    mask[validation] = True
    return mask


def fingerprint(rows: pd.DataFrame) -> str:
    """Hash the (text, label) pairs, so two splits with the same notes get the same value."""
    digest = hashlib.sha256()
    for text, label in sorted(zip(rows["clean_text"], rows["is_bug"], strict=True)):
        digest.update(f"{int(label)}\t{text}\n".encode())
    return digest.hexdigest()[:16]


def _release_span(releases: pd.Series) -> list[str]:
    names = sorted(releases.dropna().unique(), key=release_key)
    return [names[0], names[-1]] if names else []


def _number_span(numbers: pd.Series) -> list[int]:
    return [int(numbers.min()), int(numbers.max())] if len(numbers) else []
