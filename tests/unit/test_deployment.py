"""The image and compose file: what they copy, the order services start in, health."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).parents[2]


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    return doc["services"]


def test_dockerfile_copies_every_mapped_directory() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    copied = {
        line.split()[1]
        for line in (ROOT / "docker" / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ") and "--from" not in line
    }
    assert set(setuptools["package-dir"].values()) <= copied


def test_topics_exist_before_anything_produces() -> None:
    services = compose()
    assert services["topics"]["command"] == ["topics"]
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    for name in ("worker", "simulator"):
        after = services[name]["depends_on"]["topics"]
        assert after["condition"] == "service_completed_successfully", name


def test_worker_healthcheck_asks_its_health_endpoint() -> None:
    services = compose()
    check = " ".join(services["worker"]["healthcheck"]["test"])
    assert "http://127.0.0.1:6066/health" in check
    assert services["worker"]["environment"]["STREAM_RISK_WEB_PORT"] == 6066
    assert services["simulator"]["depends_on"]["worker"]["condition"] == "service_healthy"


def test_constraints_pin_every_runtime_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {}
    for line in (ROOT / "docker" / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"not pinned: {line}"
            pins[name.lower().replace("_", "-")] = version
    for requirement in project["dependencies"]:
        name = requirement.split(">")[0].split("=")[0].split("[")[0].strip().lower()
        assert name.replace("_", "-") in pins, f"{name} is not pinned in docker/constraints.txt"


def _image_wheel() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("image_wheel", ROOT / "docker" / "image_wheel.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_package_directory_is_listed() -> None:
    # A subpackage missing from [tool.setuptools] packages is left out of the wheel
    # (and the image) while an editable install still finds it.
    image_wheel = _image_wheel()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert image_wheel.unlisted_packages(pyproject, ROOT) == []
    expected = image_wheel.expected_files(pyproject, ROOT)
    assert {
        "stream_risk/core/detectors/__init__.py",
        "stream_risk/rules/tiers.yaml",
        "stream_risk/agents/app.py",
        "stream_risk/schemas/__init__.py",
    } <= expected


def test_image_wheel_examples() -> None:
    import doctest

    result = doctest.testmod(_image_wheel())
    assert result.attempted > 0 and result.failed == 0
