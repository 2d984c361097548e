"""Tests for clean_text, the cleaning applied to every note before vectorising."""

import pytest

from k8s_analysis.model.text import clean_text


def test_html_comment_removed():
    text = "Fix the probe.<!-- Write NONE if no note is needed -->Really."

    assert clean_text(text) == "fix the probe. really."


def test_unclosed_html_comment_removed():
    text = "Fix the probe.\n<!-- Enter your extended release note below\nkubectl: unused"

    assert clean_text(text) == "fix the probe."


@pytest.mark.parametrize("command", ["/kind bug", "/remove-kind bug", "/sig node", "  /kind   feature"])
def test_prow_command_line_removed(command):
    text = f"Kubelet no longer leaks pods.\n{command}\nSee the docs."

    assert clean_text(text) == "kubelet no longer leaks pods. see the docs."


def test_path_in_sentence_kept():
    text = "The kubelet now cleans /var/lib/kubelet on restart."

    assert clean_text(text) == "the kubelet now cleans /var/lib/kubelet on restart."


def test_path_starting_line_kept():
    text = "/var/lib/kubelet is cleaned on restart."

    assert clean_text(text) == "/var/lib/kubelet is cleaned on restart."


def test_link_text_kept_url_dropped():
    text = "See [KEP-3000](https://github.com/kubernetes/enhancements/issues/3000) for details."

    cleaned = clean_text(text)

    assert cleaned == "see kep-3000 for details."


def test_bare_url_dropped():
    text = "Docs moved to https://kubernetes.io/docs/concepts/ today."

    assert clean_text(text) == "docs moved to today."


def test_markdown_formatting_dropped():
    text = "Set `--max-pods` to **110** or _more_ in ## Kubelet"

    assert clean_text(text) == "set --max-pods to 110 or more in kubelet"


def test_identifier_underscores_kept():
    assert clean_text("Set NODE_NAME for _all_ pods") == "set node_name for all pods"


def test_unknown_slash_word_kept():
    assert clean_text("/healthz now returns 200") == "/healthz now returns 200"


def test_text_lower_cased():
    assert clean_text("Kube-Proxy IPVS Mode") == "kube-proxy ipvs mode"


@pytest.mark.parametrize("text", [None, ""])
def test_missing_text_empty(text):
    assert clean_text(text) == ""


def test_only_comment_and_command_empty():
    text = "<!-- template -->\n/kind bug\n"

    assert clean_text(text) == ""
