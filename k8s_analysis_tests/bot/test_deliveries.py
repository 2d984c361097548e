"""Tests for the delivery store: redeliveries are recognised, also after a restart and under threads."""

import threading

import pytest

from k8s_analysis.bot.deliveries import DeliveryStore


def test_second_claim_is_a_redelivery(tmp_path):
    store = DeliveryStore(tmp_path / "deliveries.sqlite")

    assert store.claim("72d3162e-cc78-11e3-81ab-4c9367dc0958", "pull_request") is True
    assert store.claim("72d3162e-cc78-11e3-81ab-4c9367dc0958", "pull_request") is False
    assert store.claim("another-delivery", "pull_request") is True
    store.close()


def test_claims_survive_a_restart(tmp_path):
    path = tmp_path / "state" / "deliveries.sqlite"
    first = DeliveryStore(path)
    first.claim("delivery-1")
    first.close()

    second = DeliveryStore(path)

    assert second.claim("delivery-1") is False
    assert second.claim("delivery-2") is True
    second.close()


def test_concurrent_claims_have_one_winner(tmp_path):
    store = DeliveryStore(tmp_path / "deliveries.sqlite")
    results = []
    start = threading.Barrier(8)

    def claim():
        start.wait()
        results.append(store.claim("same-delivery"))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()

    assert sorted(results) == [False] * 7 + [True]


def test_old_deliveries_are_forgotten(tmp_path):
    store = DeliveryStore(tmp_path / "deliveries.sqlite")
    store.claim("old", now=1_000.0)
    store.claim("new", now=9_000.0)

    assert store.forget_older_than(5_000.0, now=10_000.0) == 1
    assert store.claim("old", now=10_000.0) is True
    assert store.claim("new", now=10_000.0) is False
    store.close()


def test_delivery_without_id_rejected(tmp_path):
    store = DeliveryStore(tmp_path / "deliveries.sqlite")

    with pytest.raises(ValueError, match="X-GitHub-Delivery"):
        store.claim("")
    store.close()
