"""Tests for build_dataset: cleaning, one copy per text, and the splits by release, time and chance."""

import pandas as pd
import pytest

from k8s_analysis.model.dataset import (
    apply_feedback,
    SPLIT_TRAIN,
    SPLIT_VALIDATION,
    UNRELEASED,
    SplitConfig,
    assign_releases,
    build_dataset,
    minor_release,
)
from k8s_analysis.model.text import clean_text
from k8s_analysis_tests.model.test_train import load_release_notes

RELEASES = ("1.20.0", "1.21.0", "1.22.0", "1.23.0", "1.24.0", "1.25.0")
NOTES_PER_RELEASE = 40


def note_text(release: str, index: int) -> str:
    return f"Fix the scheduler crash number {index} of release {release} when a node is removed."


def published_notes() -> pd.DataFrame:
    """Forty notes per release; PR numbers grow with the release, one bug in three."""
    rows = []
    for position, release in enumerate(RELEASES):
        for index in range(NOTES_PER_RELEASE):
            rows.append({
                "pr_number": 10_000 * (position + 1) + index,
                "text": note_text(release, index),
                "is_bug": index % 3 == 0,
                "release_version": release,
            })
    return pd.DataFrame(rows)


def with_cherry_picks(notes: pd.DataFrame, count: int = 10) -> pd.DataFrame:
    """Add copies of the oldest release's notes to the newest release, formatted differently.

    Only the cleaned texts are equal: the copies add emphasis, capitals and a Prow command.
    """
    oldest = notes[notes["release_version"] == RELEASES[0]].head(count)
    copies = oldest.assign(
        pr_number=oldest["pr_number"] + 900_000,
        text=[f"**{text.upper()}**\n/kind bug" for text in oldest["text"]],
        release_version=RELEASES[-1],
    )
    return pd.concat([notes, copies], ignore_index=True)


def releases_of(frame: pd.DataFrame, split: str) -> set[str]:
    return set(frame.loc[frame["split"] == split, "release"])


def test_newest_releases_validate():
    frame = build_dataset(published_notes()).frame

    assert releases_of(frame, SPLIT_VALIDATION) == {"1.24", "1.25"}
    assert releases_of(frame, SPLIT_TRAIN) == {"1.20", "1.21", "1.22", "1.23"}


def test_validation_release_count():
    frame = build_dataset(published_notes(), SplitConfig(validation_releases=1)).frame

    assert releases_of(frame, SPLIT_VALIDATION) == {"1.25"}


def test_release_order_numeric():
    # 1.9 is older than 1.10 although "1.9" > "1.10" as text.
    notes = pd.DataFrame({
        "pr_number": [1, 2, 3, 4],
        "text": ["first note here", "second note here", "third note here", "fourth note here"],
        "is_bug": [True, False, True, False],
        "release_version": ["1.8.0", "1.9.0", "1.10.0", "1.10.0"],
    })

    frame = build_dataset(notes, SplitConfig(validation_releases=1)).frame

    assert releases_of(frame, SPLIT_VALIDATION) == {"1.10"}


def test_pr_note_joins_release_by_number():
    notes = published_notes()
    prs = pd.DataFrame({
        "pr_number": [10_005, 35_000, 999_999],
        "text": ["a note from a pull request", "another pull request note", "a note merged after every release"],
        "is_bug": [True, False, True],
        "release_version": [None, None, None],
    })

    releases = assign_releases(pd.concat([notes, prs], ignore_index=True)).iloc[-3:].tolist()

    # 10,005 is within 1.20's numbers; 35,000 is past 1.22's highest, so 1.23; the last is past all.
    assert releases == ["1.20", "1.23", UNRELEASED]


def test_unreleased_note_validates():
    notes = pd.concat([published_notes(), pd.DataFrame({
        "pr_number": [999_999], "text": ["a note merged after every release"], "is_bug": [True],
        "release_version": [None],
    })], ignore_index=True)

    frame = build_dataset(notes).frame

    assert frame.loc[frame["pr_number"] == 999_999, "split"].item() == SPLIT_VALIDATION


def test_cherry_pick_copies_dropped():
    notes = with_cherry_picks(published_notes())

    dataset = build_dataset(notes)
    frame = dataset.frame

    assert len(frame) == len(RELEASES) * NOTES_PER_RELEASE
    assert frame["pr_number"].max() < 900_000
    assert dataset.info["duplicates_dropped"] == 10


def test_text_in_one_split_only():
    frame = build_dataset(with_cherry_picks(published_notes())).frame

    assert frame["clean_text"].is_unique
    train = set(frame.loc[frame["split"] == SPLIT_TRAIN, "clean_text"])
    validation = set(frame.loc[frame["split"] == SPLIT_VALIDATION, "clean_text"])
    assert train.isdisjoint(validation)


def test_few_releases_split_by_time():
    notes = published_notes()
    notes = notes[notes["release_version"].isin(RELEASES[:2])]

    dataset = build_dataset(notes, SplitConfig(validation_releases=2, validation_share=0.25))

    assert dataset.info["method"] == "time"
    assert "only 2 release(s) known" in dataset.info["fallback_reason"]
    assert dataset.counts()[SPLIT_VALIDATION] == 20


def test_time_split_by_merge_time():
    # Merge times run against PR numbers here, so only a split by merge time puts the low
    # numbers in validation.
    notes = pd.DataFrame({
        "pr_number": range(100, 0, -1),
        "text": [f"note number {index} about the kubelet" for index in range(100)],
        "is_bug": [index % 2 == 0 for index in range(100)],
        "merged_at": pd.date_range("2024-01-01", periods=100, freq="D", tz="UTC"),
    })

    frame = build_dataset(notes, SplitConfig(method="time", validation_share=0.2)).frame

    assert sorted(frame.loc[frame["split"] == SPLIT_VALIDATION, "pr_number"]) == list(range(1, 21))


def test_time_split_by_number_without_merge_time():
    notes = pd.DataFrame({
        "pr_number": range(1, 101),
        "text": [f"note number {index} about the kubelet" for index in range(100)],
        "is_bug": [index % 2 == 0 for index in range(100)],
    })

    frame = build_dataset(notes, SplitConfig(method="time", validation_share=0.1)).frame

    assert sorted(frame.loc[frame["split"] == SPLIT_VALIDATION, "pr_number"]) == list(range(91, 101))


def test_random_split_stratified():
    notes = published_notes()

    frame = build_dataset(notes, SplitConfig(method="random", validation_share=0.25)).frame
    validation = frame[frame["split"] == SPLIT_VALIDATION]

    assert len(validation) == 60
    assert validation["is_bug"].mean() == pytest.approx(notes["is_bug"].mean(), abs=0.02)
    assert len(releases_of(frame, SPLIT_VALIDATION)) > 2


def test_random_split_seeded():
    first = build_dataset(published_notes(), SplitConfig(method="random", seed=3)).frame
    second = build_dataset(published_notes(), SplitConfig(method="random", seed=3)).frame
    other = build_dataset(published_notes(), SplitConfig(method="random", seed=4)).frame

    pd.testing.assert_series_equal(first["split"], second["split"])
    assert not first["split"].equals(other["split"])


def test_empty_and_missing_texts_dropped():
    notes = pd.concat([published_notes(), pd.DataFrame({
        "pr_number": [5, 6, 7, 8],
        "text": ["", None, "<!-- Write NONE if not needed -->", "/kind bug\n/sig node"],
        "is_bug": [False, True, False, True],
        "release_version": ["1.20.0"] * 4,
    })], ignore_index=True)

    dataset = build_dataset(notes)

    assert set(dataset.frame["pr_number"]).isdisjoint({5, 6, 7, 8})
    assert dataset.info["empty_texts_dropped"] == 4


def test_row_order_ignored():
    notes = with_cherry_picks(published_notes())
    shuffled = notes.sample(frac=1.0, random_state=7)

    ordered = build_dataset(notes).frame.set_index("pr_number")["split"].sort_index()
    reordered = build_dataset(shuffled).frame.set_index("pr_number")["split"].sort_index()

    pd.testing.assert_series_equal(ordered, reordered)


def test_split_arrays_aligned():
    notes = published_notes()
    bug_by_text = {clean_text(text): bug for text, bug in notes[["text", "is_bug"]].itertuples(index=False)}

    dataset = build_dataset(notes)

    for split in (SPLIT_TRAIN, SPLIT_VALIDATION):
        texts = dataset.texts(split)
        assert len(texts) == dataset.counts()[split] == len(dataset.sigs(split))
        assert dataset.labels(split).tolist() == [float(bug_by_text[text]) for text in texts]


def test_fingerprint_follows_validation_labels():
    notes = published_notes()
    flipped = notes.copy()
    newest = flipped["release_version"] == RELEASES[-1]
    flipped.loc[newest, "is_bug"] = ~flipped.loc[newest, "is_bug"]

    same = build_dataset(notes.sample(frac=1.0, random_state=1)).info["fingerprints"]
    first = build_dataset(notes).info["fingerprints"]
    changed = build_dataset(flipped).info["fingerprints"]

    assert same == first
    assert changed[SPLIT_TRAIN] == first[SPLIT_TRAIN]
    assert changed[SPLIT_VALIDATION] != first[SPLIT_VALIDATION]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"method": "by-author"}, "split method 'by-author'"),
        ({"validation_releases": 0}, "validation_releases is 0"),
        ({"validation_share": 1.5}, "validation_share is 1.5"),
    ],
)
def test_bad_split_config_named(config, message):
    with pytest.raises(ValueError, match=message):
        SplitConfig(**config)


@pytest.mark.parametrize(
    ("version", "expected"),
    [("1.31.0", "1.31"), ("v1.32.2", "1.32"), ("1.22.0-alpha.1", "1.22"), (None, None), ("next", None)],
)
def test_minor_release(version, expected):
    assert minor_release(version) == expected


def test_shared_notes_split_at_1_31():
    dataset = build_dataset(load_release_notes())

    assert dataset.info["method"] == "release"
    assert dataset.info["releases"] == {SPLIT_TRAIN: ["1.14", "1.30"], SPLIT_VALIDATION: ["1.31", "1.32"]}
    assert dataset.counts()[SPLIT_VALIDATION] > 500


def feedback_frame(rows: list[tuple]) -> pd.DataFrame:
    """Feedback rows as the bot stores them: (pr_number, text, label, action, is_bug, seconds)."""
    frame = pd.DataFrame(rows, columns=["pr_number", "text", "label", "action", "is_bug", "at"])
    frame["is_bug"] = frame["is_bug"].astype("boolean")
    frame["at"] = pd.to_datetime(frame["at"], unit="s", utc=True)
    return frame


def test_feedback_relabels_and_adds():
    notes = pd.DataFrame({"pr_number": [1, 2, 3], "text": ["Fixed a crash.", "Added a flag.", "Removed a field."],
                          "is_bug": [True, False, False]})
    feedback = feedback_frame([
        (1, "Fixed a crash.", "kind/bug", "unlabeled", False, 10),
        (2, "Added a flag.", "kind/bug", "labeled", True, 10),
        (2, "Added a flag.", "kind/bug", "unlabeled", False, 20),  # the newest change of #2 wins
        (3, "Removed a field.", "kind/feature", "labeled", None, 10),  # not about kind/bug
        (4, "Fixed a leak in the kubelet.", "kind/bug", "labeled", True, 30),
    ])

    updated, counts = apply_feedback(notes, feedback)

    assert updated[["pr_number", "is_bug"]].values.tolist() == [[1, False], [2, False], [3, False], [4, True]]
    assert updated.loc[3, "text"] == "Fixed a leak in the kubelet."
    assert counts == {"feedback_rows": 3, "relabelled": 1, "added": 1}
    assert notes["is_bug"].tolist() == [True, False, False]  # the input is not modified


def test_no_feedback_changes_nothing():
    notes = pd.DataFrame({"pr_number": [1], "text": ["Fixed a crash."], "is_bug": [True]})

    for feedback in (None, feedback_frame([])):
        updated, counts = apply_feedback(notes, feedback)
        assert updated is notes
        assert counts["feedback_rows"] == 0
