"""Static checks of the Dockerfile: no Docker engine runs here, so the image is never built in tests.

The checks cover what the Helm chart and the docs rely on. The image has two stages and runs
as the chart's non-root user. Its TensorFlow build argument and extras exist in pyproject.toml,
and its build context contains only what the install needs.
"""

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """Split a Dockerfile into (INSTRUCTION, arguments), joining continued lines and dropping comments."""
    joined, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or not stripped:
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        joined.append(pending + stripped)
        pending = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in joined]


@pytest.fixture(scope="module")
def stages() -> dict[str, list[tuple[str, str]]]:
    """Return each stage's instructions by stage name."""
    found: dict[str, list[tuple[str, str]]] = {}
    current = None
    for name, arguments in instructions(DOCKERFILE.read_text()):
        if name == "FROM":
            current = arguments.split(" AS ")[-1].strip()
            found[current] = []
        elif current is not None:
            found[current].append((name, arguments))
    return found


def test_dockerfile_two_stages(stages):
    assert list(stages) == ["build", "runtime"]
    copies = [arguments for name, arguments in stages["runtime"] if name == "COPY"]
    assert copies == ["--from=build /opt/venv /opt/venv"]


def test_runtime_user_not_root(stages):
    users = [arguments for name, arguments in stages["runtime"] if name == "USER"]
    assert users == ["10001:10001"]
    commands = " ".join(arguments for name, arguments in stages["runtime"] if name == "RUN")
    assert "--uid 10001" in commands
    assert "chown 10001:10001 /data /opt/dagster/dagster_home" in commands


def test_tensorflow_argument_defaults_to_cpu(stages):
    arguments = [arguments for name, arguments in stages["build"] if name == "ARG"]
    assert "TENSORFLOW=cpu" in arguments
    install = " ".join(arguments for name, arguments in stages["build"] if name == "RUN")
    assert 'pip install "tensorflow[and-cuda]==${version}"' in install
    assert "pip uninstall --yes tensorflow-cpu" in install


def test_extras_exist_in_pyproject(stages):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    default_extra = next(arguments.split("=", 1)[1] for name, arguments in stages["build"]
                         if name == "ARG" and arguments.startswith("STORAGE_EXTRA="))
    assert default_extra in extras
    assert "gcs" in extras
    assert any(requirement.startswith("tensorflow-cpu") for requirement in project["dependencies"])


def test_command_is_project_script(stages):
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    command = next(arguments for name, arguments in stages["runtime"] if name == "CMD")
    assert re.match(r'\["(?P<script>[^"]+)"', command)["script"] in scripts


def test_context_keeps_only_install_inputs():
    patterns = [line for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line and not line.startswith("#")]
    assert patterns[0] == "*"
    assert set(patterns[1:]) == {"!pyproject.toml", "!README.md", "!k8s_analysis/", "**/__pycache__"}
