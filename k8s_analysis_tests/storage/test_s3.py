"""Tables, training and serving with the data in S3, on moto's S3 server on 127.0.0.1."""

import json
import os

import boto3
import dagster as dg
import pandas as pd
import pytest
from moto.server import ThreadedMotoServer

from k8s_analysis.assets import all_asset_checks, all_assets
from k8s_analysis.model.bundle import Predictor, promote
from k8s_analysis.paths import DataLayout
from k8s_analysis.raw_mirror import ISSUES, RELEASE_NOTES, part_files, restore_part
from k8s_analysis.raw_store import RawIssueStore
from k8s_analysis.storage import STORAGE_OPTIONS_ENV, STORAGE_URL_ENV, publish_model
from k8s_analysis_tests.assets.test_definitions import FAST_MODEL, materialization_metadata, resources_for
from k8s_analysis_tests.serving.running import MODEL, PREDICT, RunningServer, copy_version
from k8s_analysis_tests.serving.test_server import BUG_NOTE
from k8s_analysis_tests.shared_data import shared_path

BUCKET = "k8s-analysis-test"
PREFIX = "k8s-analysis"
TABLES = ("issues", "pull_requests", "labels", "release_notes")
SECOND = "20990101T000000Z-0000d002"
# moto accepts any credentials; these only keep the client from looking for real ones.
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server on a free 127.0.0.1 port with one empty bucket; yields its endpoint URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        with pytest.MonkeyPatch.context() as patch:
            for name, value in FAKE_CREDENTIALS.items():
                patch.setenv(name, value)
            patch.setenv(STORAGE_URL_ENV, f"s3://{BUCKET}/{PREFIX}")
            patch.setenv(STORAGE_OPTIONS_ENV, json.dumps({"endpoint_url": endpoint}))
            boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
            yield endpoint
    finally:
        server.stop()


@pytest.fixture(scope="module")
def trained(s3, tmp_path_factory):
    """Build the tables and train a model with the storage in S3; return the data directory and the run."""
    root = tmp_path_factory.mktemp("data")
    archive = shared_path("data", "kubernetes-prs", "kubernetes-prs-api.tar.xz")
    notes = shared_path("data", "release-notes")
    selection = ["raw_issues", "raw_release_notes", *TABLES, "kind_bug_classifier"]
    result = dg.materialize([*all_assets, *all_asset_checks], selection=selection,
                            resources=resources_for(root, [archive], [notes]), run_config=FAST_MODEL)
    return root, result


def objects(endpoint: str, prefix: str) -> dict[str, bytes]:
    """Return every object under ``prefix`` in the bucket, keyed by the rest of its key."""
    client = boto3.client("s3", endpoint_url=endpoint)
    listing = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return {entry["Key"].removeprefix(prefix): client.get_object(Bucket=BUCKET, Key=entry["Key"])["Body"].read()
            for entry in listing.get("Contents", [])}


def read_object(endpoint: str, key: str) -> bytes:
    return boto3.client("s3", endpoint_url=endpoint).get_object(Bucket=BUCKET, Key=key)["Body"].read()


@pytest.mark.slow
def test_s3_contains_tables(s3, trained):
    root, result = trained
    assert result.success

    for table in TABLES:
        frame = pd.read_parquet(f"s3://{BUCKET}/{PREFIX}/tables/{table}.parquet",
                                storage_options={"endpoint_url": s3})
        metadata = materialization_metadata(result, table)
        assert metadata["path"] == f"s3://{BUCKET}/{PREFIX}/tables/{table}.parquet"
        assert len(frame) == metadata["dagster/row_count"]
    pull_requests = pd.read_parquet(f"s3://{BUCKET}/{PREFIX}/tables/pull_requests.parquet",
                                    storage_options={"endpoint_url": s3})
    assert len(pull_requests) == 744
    assert not (root / "tables").exists()


@pytest.mark.slow
def test_s3_contains_raw_mirror(s3, trained, tmp_path):
    root, result = trained
    layout = DataLayout(root)
    for part in (ISSUES, RELEASE_NOTES):
        local = {path.relative_to(layout.raw_dir).as_posix(): path.read_bytes() for path in part_files(layout, part)}
        manifest = json.loads(read_object(s3, f"{PREFIX}/raw/{part}/manifest.json"))
        assert sorted(manifest["files"]) == sorted(local)
        stored = objects(s3, f"{PREFIX}/raw/{part}/objects/")
        assert {name: stored[entry["sha256"]] for name, entry in manifest["files"].items()} == local
        assert materialization_metadata(result, f"raw_{part.replace('-', '_')}")["mirror_files"] == len(local)

    # A new, empty volume gets the raw store back from the bucket.
    volume = DataLayout(tmp_path / "new-volume")
    assert restore_part(volume, ISSUES) == len(part_files(layout, ISSUES))
    assert RawIssueStore(volume.raw_issues_dir).count() == 744


@pytest.mark.slow
def test_s3_contains_promoted_model(s3, trained):
    root, result = trained
    model = materialization_metadata(result, "kind_bug_classifier")
    version = model["version"]
    local = DataLayout(root).models_dir / version

    assert model["promoted"]
    assert model["published_to"] == f"s3://{BUCKET}/{PREFIX}/models/{version}"
    assert os.readlink(DataLayout(root).current_model_dir) == version
    published = objects(s3, f"{PREFIX}/models/{version}/")
    expected = {str(path.relative_to(local)): path.read_bytes() for path in local.rglob("*") if path.is_file()}
    assert sorted(published) == sorted(expected)
    assert published == expected
    pointer = json.loads(read_object(s3, f"{PREFIX}/models/current.json"))
    assert pointer["version"] == version


@pytest.mark.slow
def test_server_loads_and_reloads_from_s3(s3, trained, tmp_path, monkeypatch):
    root, result = trained
    layout = DataLayout(root)
    first = materialization_metadata(result, "kind_bug_classifier")["version"]
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("TMPDIR", str(cache))
    url = f"s3://{BUCKET}/{PREFIX}/models/current"

    server = RunningServer(url, tmp_path / "server.log", "--reload-interval", "0.2")
    try:
        server.wait_ready()
        assert server.serving_version() == first
        status, body = server.request("POST", PREDICT, {"text": BUG_NOTE})
        assert status == 200
        assert body["result"] == round(float(Predictor(layout.models_dir / first).score([BUG_NOTE])[0][0]), 6)
        assert f"model {first} loaded from s3://{BUCKET}/{PREFIX}/models/{first}" in server.log()
        assert [path.name for path in cache.glob("k8s-analysis-models-*/*")] == [first]

        copy_version(layout.models_dir / first, layout.models_dir, SECOND, bias_shift=-3.0)
        promote(layout.models_dir, SECOND)
        publish_model(layout, SECOND, promoted=True)

        server.wait_until(lambda: server.serving_version() == SECOND, description=f"the reload to {SECOND}")
        status, body = server.request("POST", PREDICT, {"text": BUG_NOTE})
        assert status == 200
        assert body["model_version"] == SECOND
        status, model = server.request("GET", f"/v1/models/{MODEL}")
        assert (status, model["model_source"]) == (200, f"s3://{BUCKET}/{PREFIX}/models/{SECOND}")
        assert body["result"] == round(float(Predictor(layout.models_dir / SECOND).score([BUG_NOTE])[0][0]), 6)
        assert body["result"] != round(float(Predictor(layout.models_dir / first).score([BUG_NOTE])[0][0]), 6)
        assert f"model reloaded: {SECOND} replaces {first}" in server.log()
        assert [path.name for path in cache.glob("k8s-analysis-models-*/*")] == [SECOND]
    finally:
        server.stop()
