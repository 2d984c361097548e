"""Tests for the webhook signature check, with the real-failure deliveries of case-22."""

import hashlib
import json

import pytest

from k8s_analysis.bot.signature import SignatureError, sign, verify
from k8s_analysis_tests.shared_data import shared_path


@pytest.fixture(scope="module")
def case():
    return json.loads(shared_path("cases", "case-22-webhook-signature-raw-body.json").read_text())


def delivery(case, delivery_id):
    found = next(item for item in case["input"]["deliveries"] if item["id"] == delivery_id)
    body = case["input"]["raw_body_utf8"] if found["body"] == "raw_body_utf8" else found["body"]
    return body.encode("utf-8"), found["headers"]


def test_case_body_bytes_are_the_recorded_ones(case):
    body, _ = delivery(case, "a")

    assert hashlib.sha256(body).hexdigest() == case["input"]["raw_body_sha256_hex_of_bytes"]


def test_valid_delivery_passes_on_raw_bytes(case):
    body, headers = delivery(case, "a")

    verify(case["input"]["secret"], body, headers)


def test_reserialised_body_would_fail(case):
    """The check must use the raw bytes: json.dumps of the parsed payload changes them."""
    body, headers = delivery(case, "a")
    reserialised = json.dumps(json.loads(body)).encode("utf-8")

    assert reserialised != body
    with pytest.raises(SignatureError, match="does not match the body"):
        verify(case["input"]["secret"], reserialised, headers)


@pytest.mark.parametrize(("delivery_id", "message"), [
    ("b", "the X-Hub-Signature-256 header is missing"),
    ("c", "sha256 signature required: only X-Hub-Signature (SHA-1) was sent"),
    ("d", "does not match the body"),
    ("e", "must start with 'sha256='"),
])
def test_invalid_deliveries_rejected(case, delivery_id, message):
    body, headers = delivery(case, delivery_id)

    with pytest.raises(SignatureError, match=message.replace("(", r"\(").replace(")", r"\)")):
        verify(case["input"]["secret"], body, headers)


def test_header_names_are_case_insensitive(case):
    body, headers = delivery(case, "a")

    verify(case["input"]["secret"], body, {name.lower(): value for name, value in headers.items()})


def test_wrong_secret_rejected(case):
    body, headers = delivery(case, "a")

    with pytest.raises(SignatureError, match="check GITHUB_WEBHOOK_SECRET"):
        verify("another-secret", body, headers)


def test_sign_matches_github_header(case):
    body, headers = delivery(case, "a")

    assert sign(case["input"]["secret"], body) == headers["X-Hub-Signature-256"]


def test_empty_secret_is_a_configuration_error():
    with pytest.raises(ValueError, match="set GITHUB_WEBHOOK_SECRET"):
        verify("", b"{}", {"X-Hub-Signature-256": sign("x", b"{}")})
