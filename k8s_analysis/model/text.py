"""Text cleaning applied to every release note before it is vectorised, in training and prediction."""

from __future__ import annotations

import re

# Template comments such as "<!-- write NONE if ... -->": instructions, not the author's words.
HTML_COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.DOTALL)
# Prow commands ("/kind bug", "/sig node", "/remove-kind bug") name the label to predict.
# Only known command names match, so a line such as "/healthz now returns 200" stays.
PROW_COMMAND = re.compile(
    r"^[ \t]*/(?:remove-)?(?:kind|sig|area|priority|triage|lifecycle|label|milestone|release-note(?:-none)?"
    r"|lgtm|approve|assign|unassign|cc|uncc|hold|retest|test|ok-to-test|close|reopen)\b.*$",
    re.MULTILINE | re.IGNORECASE,
)
# Markdown links keep their text and lose the URL: "[KEP-123](https://...)" -> "KEP-123".
MARKDOWN_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
# Bare URLs carry host names and paths, not meaning.
URL = re.compile(r"https?://\S+")
# Backticks, emphasis markers and heading marks are formatting only. Underscores inside a
# word stay, because they join identifiers such as NODE_NAME.
MARKDOWN_NOISE = re.compile(r"[`*#>]+|(?<!\w)_+|_+(?!\w)")
WHITESPACE = re.compile(r"\s+")


def clean_text(text: str | None) -> str:
    """Return the note as lower-case words without comments, Prow commands and markdown."""
    if not text:
        return ""
    text = HTML_COMMENT.sub(" ", text)
    text = PROW_COMMAND.sub(" ", text)
    text = MARKDOWN_LINK.sub(r"\1", text)
    text = URL.sub(" ", text)
    text = MARKDOWN_NOISE.sub(" ", text)
    return WHITESPACE.sub(" ", text).strip().lower()
