"""Extract the release note from a Kubernetes pull-request body.

Authors following the Kubernetes pull-request template write the user-facing
note inside a fenced block tagged ```release-note, or NONE when the change needs
no note. Older (2016-era) bodies put an untagged block under a "Release note"
heading. The parser recognises backtick fences only, the way CommonMark reads
them, and reports what it found as a status plus diagnostics.
"""

import re
from dataclasses import dataclass, field

STATUS_NOTE = "note"
STATUS_NONE = "none"
STATUS_EMPTY_BLOCK = "empty-block"
STATUS_NO_BLOCK = "no-block"
STATUS_NO_BODY = "no-body"

WARNING_TEXT_ON_FENCE_LINE = "text-on-fence-line"
WARNING_LEGACY_UNTAGGED_BLOCK = "legacy-untagged-block"
WARNING_MULTIPLE_BLOCKS = "multiple-release-note-blocks"

# Note texts that mean "no note", compared after _bare_words().
NONE_LIKE_WORDS = frozenset(
    {
        "none",
        "n/a",
        "na",
        "no",
        "nil",
        "null",
        "not applicable",
        "no release note",
        "no release notes",
        "no release-note",
    }
)

# An opening backtick fence: up to 3 spaces of indent, 3 or more backticks, the info string.
_OPENING_FENCE_RE = re.compile(r"^( {0,3})(`{3,})(.*)$")
# A closing backtick fence: up to 3 spaces of indent, 3 or more backticks, then only blanks.
# CommonMark also needs at least as many backticks as the opening fence, which _read_content checks.
_CLOSING_FENCE_RE = re.compile(r"^ {0,3}(`{3,})[ \t]*$")
# A release-note tag at the start of an info string, and any text after it.
_RELEASE_NOTE_TAG_RE = re.compile(r"^release-notes?(?=\s|`|$)(.*)$", re.IGNORECASE | re.DOTALL)
# A line that is only a "Release note" heading, as in "**Release note**:" or "#### Release note".
# The possessive quantifiers keep a long line of blanks from backtracking.
_RELEASE_NOTE_HEADING_RE = re.compile(
    r"^ {0,3}(?:[-*+]\s++)?(?:#{1,6}\s++)?[*_]*+\s*+release[ -]notes?[*_:\s]*$",
    re.IGNORECASE,
)
# An HTML comment, an unclosed one running to the end of the text. Group 1 is the
# blank space before it when it starts a line, group 2 the blank space and line break after it.
_HTML_COMMENT_RE = re.compile(
    r"(^[ \t]*)?<!--.*?(?:-->|\Z)([ \t]*(?:\n|\Z))?", re.MULTILINE | re.DOTALL
)
# A list marker at the start of a note: "-", "*", "+" or a number with "." or ")".
_LIST_MARKER_RE = re.compile(r"^(?:[-*+]|\d+[.)])\s+")

_WRAPPER_CHARS = "\"'“”‘’`*_"
_TRAILING_PUNCTUATION = ".!,;:"


@dataclass(frozen=True)
class ReleaseNote:
    """Release note of one pull request, with how it was found."""

    text: str | None
    status: str
    warnings: tuple[str, ...] = ()
    docs: str | None = None
    blocks_found: int = 0

    @property
    def has_note(self) -> bool:
        """Whether the body contains a real note (not NONE, not empty)."""
        return self.status == STATUS_NOTE


@dataclass
class _FencedBlock:
    """A backtick-fenced block: its first line index, info string and de-indented content."""

    start: int
    info: str
    lines: list[str] = field(default_factory=list)
    text_on_fence_line: bool = False
    after_heading: bool = False

    @property
    def is_tagged_note(self) -> bool:
        return _RELEASE_NOTE_TAG_RE.match(self.info) is not None

    @property
    def is_legacy_note(self) -> bool:
        return self.info == "" and self.after_heading

    @property
    def is_docs(self) -> bool:
        return self.info.casefold().split(maxsplit=1)[:1] == ["docs"]


def extract_release_note(body: str | None) -> ReleaseNote:
    """Parse a pull-request body and return its release note.

    The note is the first ```release-note (or ```release-notes) block, or an
    untagged block right under a "Release note" heading when no tagged block
    comes first. HTML comments are removed from the note and the docs text.
    """
    if body is None:
        return ReleaseNote(text=None, status=STATUS_NO_BODY)

    lines = _normalise_line_endings(body).split("\n")
    blocks = _scan_fenced_blocks(lines)
    note_blocks = [block for block in blocks if block.is_tagged_note or block.is_legacy_note]
    docs = _first_docs_text(blocks)
    if not note_blocks:
        return ReleaseNote(text=None, status=STATUS_NO_BLOCK, docs=docs)

    chosen = note_blocks[0]
    text = _clean_block_text(chosen.lines)
    status = _classify_note_text(text)
    return ReleaseNote(
        text=text if status == STATUS_NOTE else None,
        status=status,
        warnings=_collect_warnings(chosen, len(note_blocks)),
        docs=docs,
        blocks_found=len(note_blocks),
    )


def is_none_like(text: str | None) -> bool:
    """Check whether a note text means "no note", such as NONE, "n/a." or **None**.

    HTML comments in the text are ignored, as they are in extracted notes.
    """
    if text is None:
        return False
    cleaned = _clean_block_text(_normalise_line_endings(text).split("\n"))
    return _bare_words(cleaned) in NONE_LIKE_WORDS


def _normalise_line_endings(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _scan_fenced_blocks(lines: list[str]) -> list[_FencedBlock]:
    """Return every backtick-fenced block in document order."""
    blocks: list[_FencedBlock] = []
    legacy_fence_index = None
    index = 0
    while index < len(lines):
        block, next_index = _read_fenced_block(lines, index)
        if block is None:
            if _RELEASE_NOTE_HEADING_RE.match(lines[index]):
                legacy_fence_index = _skip_blanks_and_comments(lines, index + 1)
            index += 1
            continue
        block.after_heading = block.start == legacy_fence_index
        blocks.append(block)
        index = next_index
    return blocks


def _read_fenced_block(lines: list[str], start: int) -> tuple[_FencedBlock | None, int]:
    """Read the block opening at lines[start], and return it with the index after its closing fence.

    Return (None, start) when the line opens no block.
    """
    opening = _OPENING_FENCE_RE.match(lines[start])
    if opening is None:
        return None, start

    indent = len(opening.group(1))
    fence_length = len(opening.group(2))
    info = opening.group(3).strip()
    tag = _RELEASE_NOTE_TAG_RE.match(info)
    if tag is not None:
        return _read_release_note_opening(lines, start, indent, fence_length, tag.group(1))
    # In CommonMark a backtick in the info string makes the line inline code, not a fence.
    if "`" in info:
        return None, start

    block = _FencedBlock(start=start, info=info)
    return block, _read_content(lines, start + 1, indent, fence_length, block.lines)


def _read_release_note_opening(
    lines: list[str], start: int, indent: int, fence_length: int, fence_line_text: str
) -> tuple[_FencedBlock, int]:
    """Read a release-note block, keeping text written on its opening fence line.

    The releasenote plugin of prow (kubernetes/test-infra) matches lazily from
    ```release-note up to the next ```, so it accepts "```release-note Fixed a
    typo." and also "```release-note NONE```", which closes on the same line.
    """
    text = fence_line_text.strip()
    block = _FencedBlock(start=start, info="release-note")
    closes_on_fence_line = text.endswith("```")
    text = text.rstrip("`").strip()
    if text:
        block.lines.append(text)
        block.text_on_fence_line = True
    if closes_on_fence_line:
        return block, start + 1
    return block, _read_content(lines, start + 1, indent, fence_length, block.lines)


def _read_content(
    lines: list[str], start: int, indent: int, fence_length: int, content: list[str]
) -> int:
    """Append de-indented content lines up to the closing fence, and return the index after it.

    An unclosed block runs to the end of the body.
    """
    index = start
    while index < len(lines):
        closing = _CLOSING_FENCE_RE.match(lines[index])
        if closing is not None and len(closing.group(1)) >= fence_length:
            return index + 1
        content.append(_remove_indent(lines[index], indent))
        index += 1
    return index


def _remove_indent(line: str, indent: int) -> str:
    """Remove up to `indent` leading spaces, as CommonMark does inside an indented fence."""
    leading_spaces = len(line) - len(line.lstrip(" "))
    return line[min(indent, leading_spaces) :]


def _skip_blanks_and_comments(lines: list[str], start: int) -> int:
    """Return the index of the first line at or after `start` that is not blank or an HTML comment."""
    index = start
    while index < len(lines):
        stripped = lines[index].strip()
        if not stripped:
            index += 1
            continue
        if not stripped.startswith("<!--"):
            return index
        end = _comment_end(lines, index)
        if end is None:
            return len(lines)
        end_line, after_comment = end
        if after_comment.strip():
            return end_line
        index = end_line + 1
    return index


def _comment_end(lines: list[str], start: int) -> tuple[int, str] | None:
    """Find the end of the comment opening on lines[start].

    Return the index of the line containing "-->" and the text after it, or None when the
    comment is never closed.
    """
    text = lines[start].split("<!--", 1)[1]
    index = start
    while True:
        if "-->" in text:
            return index, text.split("-->", 1)[1]
        index += 1
        if index >= len(lines):
            return None
        text = lines[index]


def _clean_block_text(lines: list[str]) -> str:
    """Join block lines, remove HTML comments and trailing spaces, and strip both ends."""
    text = _HTML_COMMENT_RE.sub(_replace_comment, "\n".join(lines))
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return text.strip()


def _replace_comment(match: re.Match[str]) -> str:
    """Drop a comment, and also its line when the comment fills whole lines."""
    before, after = match.group(1), match.group(2)
    if before is not None and after is not None:
        return ""
    return (before or "") + (after or "")


def _classify_note_text(text: str) -> str:
    if not text:
        return STATUS_EMPTY_BLOCK
    if is_none_like(text):
        return STATUS_NONE
    return STATUS_NOTE


def _collect_warnings(chosen: _FencedBlock, block_count: int) -> tuple[str, ...]:
    warnings = []
    if chosen.text_on_fence_line:
        warnings.append(WARNING_TEXT_ON_FENCE_LINE)
    if not chosen.is_tagged_note:
        warnings.append(WARNING_LEGACY_UNTAGGED_BLOCK)
    if block_count > 1:
        warnings.append(WARNING_MULTIPLE_BLOCKS)
    return tuple(warnings)


def _first_docs_text(blocks: list[_FencedBlock]) -> str | None:
    for block in blocks:
        if block.is_docs:
            return _clean_block_text(block.lines)
    return None


def _bare_words(text: str) -> str:
    """Strip quotes, backticks, list markers, emphasis and trailing punctuation, then casefold.

    The steps repeat until nothing changes, so nested wrappers such as
    '- "**NONE**".' are removed too.
    """
    previous = None
    while text != previous:
        previous = text
        text = _LIST_MARKER_RE.sub("", text.strip())
        text = text.strip(_WRAPPER_CHARS).rstrip(_TRAILING_PUNCTUATION)
    return " ".join(text.split()).casefold()
