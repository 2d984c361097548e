"""Training data for the classifier: cleaned, de-duplicated, split by time."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from k8s_analysis.model.text import clean_text

SPLIT_TRAIN = "train"
SPLIT_VALIDATION = "validation"
SPLIT_TEST = "test"


@dataclass(frozen=True)
class SplitConfig:
    validation_share: float = 0.15
    test_share: float = 0.15


@dataclass
class Dataset:
    """Cleaned notes with a ``split`` column; ``texts``/``labels`` return one split's arrays."""

    frame: pd.DataFrame

    def texts(self, split: str) -> list[str]:
        return self.frame.loc[self.frame["split"] == split, "clean_text"].tolist()

    def labels(self, split: str) -> np.ndarray:
        return self.frame.loc[self.frame["split"] == split, "is_bug"].to_numpy(dtype=np.float32)

    def counts(self) -> dict[str, int]:
        return {name: int(n) for name, n in self.frame["split"].value_counts().items()}


def build_dataset(notes: pd.DataFrame, config: SplitConfig = SplitConfig()) -> Dataset:
    """Clean the notes and split them by time: oldest for training, newest for test.

    PR numbers grow with time in one repository, so they order notes from both sources on
    one axis (published notes carry a release, not a date). Cherry-pick PRs repeat their
    parent's note, so all copies of one cleaned text go to the split of the oldest copy:
    no text sits in training and in evaluation at once.
    """
    frame = notes[["pr_number", "text", "is_bug"]].copy()
    # pandas 3 stores a missing text in a str column as NaN, which clean_text cannot read.
    frame["clean_text"] = [clean_text(text) for text in frame["text"].fillna("")]
    frame = frame[frame["clean_text"] != ""].sort_values("pr_number", kind="stable")
    first_seen = frame.groupby("clean_text", sort=False)["pr_number"].transform("min")
    frame = frame.assign(first_seen=first_seen)

    order = frame.drop_duplicates("clean_text").sort_values(["first_seen", "clean_text"])["clean_text"]
    rank = pd.Series(np.arange(len(order)), index=order.to_numpy())
    position = frame["clean_text"].map(rank).to_numpy() / max(len(order), 1)
    train_end = 1.0 - config.validation_share - config.test_share
    validation_end = 1.0 - config.test_share
    frame["split"] = np.select(
        [position < train_end, position < validation_end],
        [SPLIT_TRAIN, SPLIT_VALIDATION],
        default=SPLIT_TEST,
    )
    return Dataset(frame.drop(columns="first_seen").reset_index(drop=True))
