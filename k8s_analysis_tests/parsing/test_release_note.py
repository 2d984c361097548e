"""Tests for release-note extraction from pull-request bodies."""

import json
import random
import tarfile

import pytest

from k8s_analysis.parsing.release_note import (
    STATUS_EMPTY_BLOCK,
    STATUS_NO_BLOCK,
    STATUS_NO_BODY,
    STATUS_NONE,
    STATUS_NOTE,
    WARNING_LEGACY_UNTAGGED_BLOCK,
    WARNING_MULTIPLE_BLOCKS,
    WARNING_TEXT_ON_FENCE_LINE,
    ReleaseNote,
    extract_release_note,
    is_none_like,
)
from k8s_analysis_tests.shared_data import SHARED_ROOT, shared_path

CASE_FILES = (
    "case-01-crlf-line-endings.json",
    "case-02-fence-header-variants.json",
    "case-04-empty-block-and-null-body.json",
    "case-06-docs-block-and-multiple-blocks.json",
)
ALL_STATUSES = {STATUS_NOTE, STATUS_NONE, STATUS_EMPTY_BLOCK, STATUS_NO_BLOCK, STATUS_NO_BODY}

# Real merged kubernetes/kubernetes pull requests and the counts expected in them.
REAL_PRS_ARCHIVE = ("data", "kubernetes-prs", "kubernetes-prs-api.tar.xz")
REAL_PRS_TOTAL = 744
REAL_PRS_WITH_BLOCK = 692
REAL_PRS_WITH_NOTE = 210


def note_body(content: str, newline: str = "\n") -> str:
    """Build a body with one release-note block around `content`."""
    return newline.join(["#### Release note", "```release-note", content, "```", ""])


# ---------------------------------------------------------------------------
# Shared cases: the expected values in the JSON files are the contract.


def _load_case(path):
    return json.loads(path.read_text(encoding="utf-8"))


def _shared_case_params():
    """One parameter per pull request, or one per file when the file is missing.

    A missing file still yields a test, so that the test reports the skip (or
    the failure under K8S_ANALYSIS_REQUIRE_SHARED_DATA=1).
    """
    params = []
    for file_name in CASE_FILES:
        path = SHARED_ROOT / "cases" / file_name
        if not path.is_file():
            params.append(pytest.param(file_name, None, id=file_name))
            continue
        for pr in _load_case(path)["input"]["prs"]:
            case_id = f"{file_name[:7]}-{pr['number']}"
            params.append(pytest.param(file_name, pr["number"], id=case_id))
    return params


@pytest.mark.parametrize(("file_name", "number"), _shared_case_params())
def test_shared_case(file_name, number):
    shared_path("cases")
    case = _load_case(shared_path("cases", file_name))
    assert number is not None, f"{file_name} appeared after collection, rerun pytest"
    pr = next(pr for pr in case["input"]["prs"] if pr["number"] == number)
    expected = case["expected"][str(number)]

    result = extract_release_note(pr["body"])

    assert result.has_note == expected["has_note"]
    assert result.text == expected["note"]
    if "status" in expected:
        assert result.status == expected["status"]
    for fragment in expected.get("must_not_contain", []):
        assert fragment not in (result.text or ""), f"note contains {fragment!r}"
    if "docs" in expected:
        assert result.docs == expected["docs"]
    if "blocks_found" in expected:
        assert result.blocks_found == expected["blocks_found"]
    if "parse_warning" in expected:
        assert expected["parse_warning"] in result.warnings


# ---------------------------------------------------------------------------
# Bodies without a note block.


def test_null_body_is_no_body():
    result = extract_release_note(None)

    assert result.status == STATUS_NO_BODY
    assert result.text is None
    assert not result.has_note
    assert result.blocks_found == 0


@pytest.mark.parametrize("body", ["", "\n", "\r\n", "Just a description.", "```\ncode\n```\n"])
def test_body_without_block_is_no_block(body):
    result = extract_release_note(body)

    assert result.status == STATUS_NO_BLOCK
    assert result.text is None
    assert result.blocks_found == 0


# ---------------------------------------------------------------------------
# NONE-like notes.

NONE_LIKE_TEXTS = [
    "NONE",
    "none",
    "None",
    "none.",
    "NONE.",
    '"NONE"',
    "'none'",
    "“None”",
    "`NONE`",
    "- NONE",
    "* None",
    "+ none",
    "1. NONE",
    "N/A",
    "n/a.",
    "NA",
    "No",
    "no.",
    "nil",
    "NULL",
    "Not applicable",
    "No release note",
    "no release notes.",
    "**NONE**",
    "*none*",
    "_None_",
    "None!",
    "NONE;",
    "none:",
    "  NONE  ",
    '- "**None**".',
    "NONE\n\n",
    "<!-- write NONE if not user facing -->\nNONE",
]


@pytest.mark.parametrize("text", NONE_LIKE_TEXTS)
def test_none_like_text_is_none(text):
    result = extract_release_note(note_body(text))

    assert is_none_like(text)
    assert result.status == STATUS_NONE
    assert result.text is None
    assert not result.has_note


def test_none_in_crlf_body_is_none():
    result = extract_release_note(note_body("NONE", newline="\r\n"))

    assert result.status == STATUS_NONE
    assert result.text is None


def test_none_with_lone_cr_is_none():
    result = extract_release_note(note_body("NONE", newline="\r"))

    assert result.status == STATUS_NONE


KEPT_NOTES = [
    "No longer crashes on an empty node list.",
    "Namespace deletion now waits for finalizers.",
    "None of the pods are evicted during a drain with --dry-run.",
    "NA-prefixed feature gates are removed.",
    "Nil pointer dereference in kubelet fixed.",
    "Non-root containers can now bind low ports.",
    "NONE\nActually: kubectl diff now honours --server-side.",
    "- Update cri-tools to v1.17.0",
]


@pytest.mark.parametrize("text", KEPT_NOTES)
def test_real_note_is_kept(text):
    result = extract_release_note(note_body(text))

    assert not is_none_like(text)
    assert result.status == STATUS_NOTE
    assert result.has_note
    assert result.text == text


@pytest.mark.parametrize("text", [None, "", "   ", "\n"])
def test_is_none_like_false_for_empty(text):
    assert not is_none_like(text)


# ---------------------------------------------------------------------------
# Empty blocks.


@pytest.mark.parametrize(
    "content",
    ["", "   ", "\n\n", "<!-- write NONE below -->", "<!--\nmulti-line\ncomment\n-->", "<!-- unclosed"],
)
def test_empty_block_is_empty_block(content):
    result = extract_release_note(note_body(content))

    assert result.status == STATUS_EMPTY_BLOCK
    assert result.text is None
    assert not result.has_note
    assert result.blocks_found == 1


def test_fence_pair_on_one_line_is_empty_block():
    result = extract_release_note("```release-note```\n\nFixed foo.\n")

    assert result.status == STATUS_EMPTY_BLOCK


# ---------------------------------------------------------------------------
# Line endings and text cleanup.


def test_crlf_note_has_no_carriage_return():
    result = extract_release_note(note_body("Line one.\r\nLine two.", newline="\r\n"))

    assert result.text == "Line one.\nLine two."
    assert "\r" not in result.text


def test_lone_cr_note_is_split_into_lines():
    result = extract_release_note("```release-note\rLine one.\rLine two.\r```\r")

    assert result.text == "Line one.\nLine two."


def test_comments_removed_from_note():
    content = "<!--\nTemplate hint.\n-->\nkubectl: fixed <!-- inline --> output.\n<!-- trailer -->"

    result = extract_release_note(note_body(content))

    assert result.text == "kubectl: fixed  output."


def test_whole_line_comment_leaves_no_blank_line():
    result = extract_release_note(note_body("First line.\n<!-- hint -->\nSecond line."))

    assert result.text == "First line.\nSecond line."


def test_inline_comment_keeps_line_text():
    result = extract_release_note(note_body("<!-- a --> Kept text.\n<!-- b -->"))

    assert result.text == "Kept text."


def test_note_keeps_inner_line_breaks():
    content = "\n\n  First paragraph.   \n\n- item one  \n- item two\n\n"

    result = extract_release_note(note_body(content))

    assert result.text == "First paragraph.\n\n- item one\n- item two"


# ---------------------------------------------------------------------------
# Fences.


@pytest.mark.parametrize("tag", ["release-note", "release-notes", "Release-Note", "RELEASE-NOTES"])
def test_tag_is_case_insensitive(tag):
    result = extract_release_note(f"```{tag}\nFixed foo.\n```\n")

    assert result.text == "Fixed foo."


def test_info_string_may_start_after_spaces():
    result = extract_release_note("``` release-note\nFixed foo.\n```\n")

    assert result.text == "Fixed foo."


def test_other_tag_is_not_note():
    result = extract_release_note("```release-note-none\nFixed foo.\n```\n")

    assert result.status == STATUS_NO_BLOCK


def test_unclosed_block_runs_to_end():
    result = extract_release_note("```release-note\nFixed foo.\n\nMore detail.\n")

    assert result.status == STATUS_NOTE
    assert result.text == "Fixed foo.\n\nMore detail."


def test_parser_stops_at_closing_fence():
    body = "```release-note\nFixed foo.\n```\nAfter the block.\n```\nlater\n```\n"

    result = extract_release_note(body)

    assert result.text == "Fixed foo."


def test_closing_fence_may_be_longer():
    result = extract_release_note("```release-note\nFixed foo.\n`````\nAfter.\n")

    assert result.text == "Fixed foo."


def test_backticks_after_text_do_not_close():
    result = extract_release_note("```release-note\nFixed ``` quoting.\n```\n")

    assert result.text == "Fixed ``` quoting."


def test_three_space_fence_is_deindented():
    body = "   ```release-note\n     Indented more.\n   Fixed foo.\n Less indent.\n   ```\n"

    result = extract_release_note(body)

    assert result.text == "Indented more.\nFixed foo.\nLess indent."


def test_deindent_keeps_relative_indent():
    body = "  ```release-note\n  Fixed foo:\n    - detail\n  ```\n"

    result = extract_release_note(body)

    assert result.text == "Fixed foo:\n  - detail"


def test_four_space_fence_is_ignored():
    result = extract_release_note("    ```release-note\n    Fixed foo.\n    ```\n")

    assert result.status == STATUS_NO_BLOCK
    assert result.blocks_found == 0


def test_tilde_fence_is_ignored():
    result = extract_release_note("~~~release-note\nFixed foo.\n~~~\n")

    assert result.status == STATUS_NO_BLOCK


def test_note_inside_other_block_is_ignored():
    body = "````markdown\n```release-note\nExample.\n```\n````\n"

    result = extract_release_note(body)

    assert result.status == STATUS_NO_BLOCK


def test_fence_line_text_is_first_line():
    result = extract_release_note("```release-note Fixed foo.\nAnd bar.\n```\n")

    assert result.text == "Fixed foo.\nAnd bar."
    assert WARNING_TEXT_ON_FENCE_LINE in result.warnings


def test_one_line_block_closes_on_fence_line():
    body = "```release-note NONE```\n\n```\nnot part of the note\n```\n"

    result = extract_release_note(body)

    assert result.status == STATUS_NONE
    assert WARNING_TEXT_ON_FENCE_LINE in result.warnings
    assert result.blocks_found == 1


def test_plain_block_has_no_warnings():
    result = extract_release_note(note_body("Fixed foo."))

    assert result.warnings == ()


# ---------------------------------------------------------------------------
# Legacy untagged blocks.


@pytest.mark.parametrize(
    "heading",
    [
        "**Release note**:",
        "**Release note:**",
        "Release note:",
        "release note",
        "#### Release note",
        "## Release Notes",
        "- Release note:",
        "**release-note**",
    ],
)
def test_legacy_block_after_heading_is_note(heading):
    result = extract_release_note(f"{heading}\n```\nAdded foo volumes.\n```\n")

    assert result.text == "Added foo volumes."
    assert WARNING_LEGACY_UNTAGGED_BLOCK in result.warnings
    assert result.blocks_found == 1


def test_legacy_block_after_comments_is_note():
    body = "**Release note**:\n\n<!--\nWrite your note\nbelow.\n-->\n<!-- again -->\n\n```\nAdded foo.\n```\n"

    result = extract_release_note(body)

    assert result.text == "Added foo."


def test_legacy_block_after_text_is_ignored():
    body = "**Release note**:\nSee below.\n```\nAdded foo.\n```\n"

    result = extract_release_note(body)

    assert result.status == STATUS_NO_BLOCK


def test_legacy_after_comment_text_ignored():
    body = "Release note:\n<!-- hint --> text\n```\nAdded foo.\n```\n"

    result = extract_release_note(body)

    assert result.status == STATUS_NO_BLOCK


def test_legacy_heading_needs_plain_fence():
    result = extract_release_note("Release note:\n```go\nfunc main() {}\n```\n")

    assert result.status == STATUS_NO_BLOCK


def test_legacy_none_is_none():
    result = extract_release_note("**Release note**:\n```\nNONE\n```\n")

    assert result.status == STATUS_NONE


def test_bare_block_is_never_note():
    body = "Steps:\n```\nkubectl get pods\n```\n\nRelease note follows.\n```\nNot a note.\n```\n"

    result = extract_release_note(body)

    assert result.status == STATUS_NO_BLOCK


def test_tagged_block_after_heading_has_no_legacy_warning():
    result = extract_release_note("**Release note**:\n```release-note\nFixed foo.\n```\n")

    assert WARNING_LEGACY_UNTAGGED_BLOCK not in result.warnings


# ---------------------------------------------------------------------------
# Several blocks and the docs block.


def test_first_of_several_blocks_wins():
    body = "".join(note_body(text) for text in ("First note.", "Second note.", "NONE"))

    result = extract_release_note(body)

    assert result.text == "First note."
    assert result.blocks_found == 3
    assert WARNING_MULTIPLE_BLOCKS in result.warnings


def test_docs_block_is_read():
    body = note_body("Fixed foo.") + "```docs\n<!-- link -->\n- [KEP]: https://example.invalid/kep\n```\n"

    result = extract_release_note(body)

    assert result.text == "Fixed foo."
    assert result.docs == "- [KEP]: https://example.invalid/kep"


def test_docs_before_note_is_not_note():
    body = "```docs\nDesign doc.\n```\n```release-note\nFixed foo.\n```\n"

    result = extract_release_note(body)

    assert result.text == "Fixed foo."
    assert result.docs == "Design doc."
    assert result.blocks_found == 1


def test_first_docs_block_wins():
    body = "```DOCS\nFirst.\n```\n```docs\nSecond.\n```\n"

    result = extract_release_note(body)

    assert result.docs == "First."
    assert result.status == STATUS_NO_BLOCK


def test_empty_docs_block_is_empty_string():
    result = extract_release_note(note_body("Fixed foo.") + "```docs\n\n```\n")

    assert result.docs == ""


def test_docs_missing_is_none():
    result = extract_release_note(note_body("Fixed foo."))

    assert result.docs is None


# ---------------------------------------------------------------------------
# Robustness.

GARBAGE_FRAGMENTS = [
    "```",
    "````",
    "```release-note",
    "```release-notes ",
    "```docs",
    "   ```",
    "    ```",
    "~~~",
    "\r",
    "\n",
    "\r\n",
    "<!--",
    "-->",
    "NONE",
    "n/a",
    "**Release note**:",
    " ",
    "\t",
    "text",
    "`",
    "*",
    "\"",
    "“",
    "\x00",
    "é",
]


def _garbage_bodies(count: int):
    rng = random.Random(0)
    for _ in range(count):
        size = rng.randint(0, 30)
        yield "".join(rng.choice(GARBAGE_FRAGMENTS) for _ in range(size))


def test_garbage_never_raises():
    for body in _garbage_bodies(500):
        result = extract_release_note(body)

        assert isinstance(result, ReleaseNote), repr(body)
        assert result.status in ALL_STATUSES, repr(body)
        assert (result.text is not None) == result.has_note, repr(body)
        assert "\r" not in (result.text or ""), repr(body)
        assert "\r" not in (result.docs or ""), repr(body)
        assert result.blocks_found >= 0, repr(body)


def test_large_bodies_parse():
    # Long runs of blanks and comments are worst cases for backtracking, so a slow pattern hangs here.
    bodies = [
        "Release note" + " " * 20_000 + "x\n```\nNot a note.\n```\n",
        "- " + " " * 20_000 + "x\n",
        "```release-note\n" + "<!--\n" * 5_000 + "Fixed foo.\n```\n",
        "```release-note\n" + "<!-- a -->  " * 5_000 + "\n```\n",
    ]

    results = [extract_release_note(body) for body in bodies]

    assert results[0].status == STATUS_NO_BLOCK
    assert results[1].status == STATUS_NO_BLOCK
    assert results[2].status == STATUS_EMPTY_BLOCK
    assert results[3].status == STATUS_EMPTY_BLOCK


def test_result_is_frozen():
    result = extract_release_note(note_body("Fixed foo."))

    with pytest.raises(AttributeError):
        result.status = STATUS_NONE  # type: ignore[misc]


# ---------------------------------------------------------------------------
# Real kubernetes/kubernetes pull requests.


@pytest.fixture(scope="module")
def real_results():
    archive = shared_path(*REAL_PRS_ARCHIVE)
    with tarfile.open(archive, "r:xz") as tar:
        member = tar.extractfile("api.json")
        assert member is not None, f"api.json missing from {archive}"
        prs = json.load(member)
    return [extract_release_note(pr["body"]) for pr in prs]


def test_real_prs_total(real_results):
    assert len(real_results) == REAL_PRS_TOTAL


def test_real_prs_with_block(real_results):
    with_block = sum(result.blocks_found >= 1 for result in real_results)

    assert with_block == REAL_PRS_WITH_BLOCK


def test_real_prs_with_note(real_results):
    with_note = sum(result.status == STATUS_NOTE for result in real_results)

    assert with_note == REAL_PRS_WITH_NOTE


def test_real_notes_are_clean(real_results):
    notes = [result.text for result in real_results if result.has_note]

    assert not [note for note in notes if "\r" in note]
    assert not [note for note in notes if "<!--" in note]
    assert not [note for note in notes if "```" in note]
