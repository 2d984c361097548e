"""The fake Kubernetes API server, reached by the real kubernetes client through KUBECONFIG."""

import pytest

from k8s_analysis_tests.fake_kubernetes import FakeKubernetes

PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    """Yield a fake API server that the client reaches through KUBECONFIG, never through a proxy."""
    with FakeKubernetes() as fake:
        monkeypatch.setenv("KUBECONFIG", str(fake.write_kubeconfig(tmp_path / "kubeconfig")))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        for name in PROXY_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        yield fake
