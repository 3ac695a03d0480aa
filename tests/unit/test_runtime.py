"""The process-wide settings of long-running commands."""

from __future__ import annotations

import gc

import pytest

from stream_risk.cli import command
from stream_risk.runtime import GC_THRESHOLDS, tune_garbage_collection


def test_the_start_up_heap_is_left_out_of_later_collections() -> None:
    thresholds = gc.get_threshold()
    gc.unfreeze()
    try:
        tune_garbage_collection()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == GC_THRESHOLDS
        assert GC_THRESHOLDS[0] > thresholds[0]
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_the_installed_command_tunes_its_process_before_running_the_verb(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    said: list[str] = []
    monkeypatch.setattr(command, "tune_garbage_collection", lambda: said.append("tuned"))

    def verb(argv: list[str] | None = None) -> int:
        said.append("ran")
        return 3

    monkeypatch.setattr(command, "main", verb)
    with pytest.raises(SystemExit) as stopped:
        command.run()
    assert said == ["tuned", "ran"]
    assert stopped.value.code == 3
