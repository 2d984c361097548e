"""Tests for build_dataset: cleaning, de-duplication and the split by PR number."""

import pandas as pd
import pytest

from k8s_analysis.model.dataset import (
    SPLIT_TEST,
    SPLIT_TRAIN,
    SPLIT_VALIDATION,
    SplitConfig,
    build_dataset,
)
from k8s_analysis.model.text import clean_text

SPLITS = (SPLIT_TRAIN, SPLIT_VALIDATION, SPLIT_TEST)
ORIGINAL_COUNT = 200
CHERRY_PICK_COUNT = 30
# Cherry-picks are merged after every original, so their PR numbers are the highest.
CHERRY_PICK_START = 90_000


def original_text(index: int) -> str:
    return f"Fix the scheduler crash number {index} when a node is removed."


def notes_with_cherry_picks() -> pd.DataFrame:
    """Return distinct notes in PR order, then cherry-picks that repeat the oldest notes' texts.

    Each cherry-pick formats its parent's text differently (emphasis, case, a Prow command),
    so only the cleaned texts are equal.
    """
    rows = [
        {"pr_number": 1_000 + 7 * index, "text": original_text(index), "is_bug": index % 3 == 0}
        for index in range(ORIGINAL_COUNT)
    ]
    for index in range(CHERRY_PICK_COUNT):
        rows.append({
            "pr_number": CHERRY_PICK_START + index,
            "text": f"FIX the **scheduler** crash number {index} when a node is removed.\n/kind bug",
            "is_bug": index % 3 == 0,
        })
    return pd.DataFrame(rows)


def notes_with_empty_texts() -> pd.DataFrame:
    """Return twenty usable notes and four notes that clean to nothing, one of them missing."""
    notes = notes_with_cherry_picks().head(20)
    empty = pd.DataFrame({
        "pr_number": [5, 6, 7, 8],
        "text": ["", None, "<!-- Write NONE if not needed -->", "/kind bug\n/sig node"],
        "is_bug": [False, True, False, True],
    })
    return pd.concat([empty, notes], ignore_index=True)


def first_seen_by_text(notes: pd.DataFrame) -> dict[str, int]:
    """Map each cleaned text to the lowest PR number it appears under, computed from the input."""
    first_seen: dict[str, int] = {}
    for number, text in notes[["pr_number", "text"]].itertuples(index=False):
        cleaned = clean_text(text)
        first_seen[cleaned] = min(number, first_seen.get(cleaned, number))
    return first_seen


def split_by_text(frame: pd.DataFrame) -> dict[str, set[str]]:
    return {text: set(group["split"]) for text, group in frame.groupby("clean_text")}


def test_split_ordered_by_first_pr():
    notes = notes_with_cherry_picks()
    first_seen = first_seen_by_text(notes)

    frame = build_dataset(notes).frame
    numbers = {
        split: [first_seen[text] for text in frame.loc[frame["split"] == split, "clean_text"].unique()]
        for split in SPLITS
    }

    assert max(numbers[SPLIT_TRAIN]) < min(numbers[SPLIT_VALIDATION])
    assert max(numbers[SPLIT_VALIDATION]) < min(numbers[SPLIT_TEST])


def test_text_in_one_split_only():
    frame = build_dataset(notes_with_cherry_picks()).frame

    in_several = {text: splits for text, splits in split_by_text(frame).items() if len(splits) > 1}

    assert in_several == {}


def test_cherry_picks_follow_parent():
    notes = notes_with_cherry_picks()

    frame = build_dataset(notes).frame
    cherry_picks = frame[frame["pr_number"] >= CHERRY_PICK_START]
    parents = frame[frame["pr_number"] < 1_000 + 7 * CHERRY_PICK_COUNT]

    assert len(cherry_picks) == CHERRY_PICK_COUNT
    assert set(parents["split"]) == {SPLIT_TRAIN}
    assert set(cherry_picks["split"]) == {SPLIT_TRAIN}


def test_cherry_pick_rows_kept():
    frame = build_dataset(notes_with_cherry_picks()).frame

    assert len(frame) == ORIGINAL_COUNT + CHERRY_PICK_COUNT
    assert frame["clean_text"].nunique() == ORIGINAL_COUNT


@pytest.mark.parametrize(
    ("validation_share", "test_share"),
    [(0.15, 0.15), (0.1, 0.2)],
)
def test_split_shares_by_text(validation_share, test_share):
    config = SplitConfig(validation_share=validation_share, test_share=test_share)

    frame = build_dataset(notes_with_cherry_picks(), config).frame
    distinct = frame.drop_duplicates("clean_text")
    shares = distinct["split"].value_counts(normalize=True)
    # One text more or less per split is rounding at the split edges.
    tolerance = 1 / ORIGINAL_COUNT

    assert shares[SPLIT_TRAIN] == pytest.approx(1 - validation_share - test_share, abs=tolerance)
    assert shares[SPLIT_VALIDATION] == pytest.approx(validation_share, abs=tolerance)
    assert shares[SPLIT_TEST] == pytest.approx(test_share, abs=tolerance)


def test_empty_texts_dropped():
    notes = notes_with_empty_texts()

    frame = build_dataset(notes).frame

    assert len(frame) == len(notes) - 4
    assert set(frame["pr_number"]).isdisjoint({5, 6, 7, 8})
    assert (frame["clean_text"] != "").all()


def test_missing_text_is_nan_in_frame():
    # pandas 3 stores None in a str column as NaN, and build_dataset must accept that input.
    notes = notes_with_empty_texts()

    assert pd.isna(notes.loc[notes["pr_number"] == 6, "text"]).all()


def test_same_input_same_split():
    first = build_dataset(notes_with_cherry_picks()).frame
    second = build_dataset(notes_with_cherry_picks()).frame

    pd.testing.assert_frame_equal(first, second)


def test_row_order_ignored():
    notes = notes_with_cherry_picks()
    shuffled = notes.sample(frac=1.0, random_state=7)

    ordered_splits = build_dataset(notes).frame.set_index("pr_number")["split"]
    shuffled_splits = build_dataset(shuffled).frame.set_index("pr_number")["split"]

    pd.testing.assert_series_equal(ordered_splits.sort_index(), shuffled_splits.sort_index())


def test_split_arrays_aligned():
    notes = notes_with_cherry_picks()

    dataset = build_dataset(notes)
    counts = dataset.counts()
    bug_by_text = {clean_text(text): bug for text, bug in notes[["text", "is_bug"]].itertuples(index=False)}

    for split in SPLITS:
        texts = dataset.texts(split)
        labels = dataset.labels(split)
        assert len(texts) == counts[split]
        assert labels.tolist() == [float(bug_by_text[text]) for text in texts]
