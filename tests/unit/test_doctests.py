"""Run the docstring examples of every module of the installed package."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import stream_risk
import stream_risk.agents
import stream_risk.schemas


def _modules() -> list[str]:
    # agents/ and schemas/ are mapped into the package; walk each explicitly so
    # editable and regular installs find the same modules.
    names = set()
    for package in (stream_risk, stream_risk.agents, stream_risk.schemas):
        names.add(package.__name__)
        for info in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + "."):
            names.add(info.name)
    return sorted(names)


# A module that cannot be imported is a failure here too.
MODULES = _modules()


def test_every_subpackage_is_found() -> None:
    assert {
        "stream_risk.core.timers",
        "stream_risk.agents.app",
        "stream_risk.schemas.events",
    } <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
