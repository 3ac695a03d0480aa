"""The process-wide settings of long-running commands."""

from __future__ import annotations

import gc

import pytest

from stream_risk.cli import command
from stream_risk.runtime import GC_THRESHOLDS, _freeze_survivors, tune_garbage_collection


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
        gc.callbacks.remove(_freeze_survivors)


def test_what_survives_a_young_collection_is_left_out_of_later_ones() -> None:
    """The customers' states and evaluations become such survivors: a full collection
    walked them all (seconds with a large portfolio), the event loop stopped meanwhile."""
    thresholds = gc.get_threshold()
    gc.unfreeze()
    try:
        tune_garbage_collection()
        tune_garbage_collection()  # once is enough: the callback is not added twice
        assert gc.callbacks.count(_freeze_survivors) == 1
        frozen = gc.get_freeze_count()
        kept = [[float(i)] for i in range(1_000)]  # a state's records, say
        gc.collect(0)
        assert gc.get_freeze_count() == frozen  # a generation-0 collection freezes nothing
        gc.collect(1)
        assert gc.get_freeze_count() >= frozen + len(kept)
        assert gc.get_count()[:2] == (0, 0)
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        gc.callbacks.remove(_freeze_survivors)


@pytest.mark.parametrize(
    ("argv", "bounded"),
    [
        (["replay", "events.jsonl"], True),
        (["backtest", "events.jsonl"], True),
        (["costs", "events.jsonl"], True),
        (["worker"], False),
        (["simulate", "--out", "-"], False),
        (["rules", "check", "rules"], False),
    ],
)
def test_a_bounded_job_through_the_core_is_told_apart(argv: list[str], bounded: bool) -> None:
    """The installed command stops the cyclic collector for these (the core leaves no
    cycles behind) and keeps it for the worker, whose Kafka client and Faust do."""
    args = command.build_parser().parse_args(argv)
    assert (args.verb in command.BOUNDED_JOBS) is bounded


def test_main_calls_the_bounded_job_hook_before_the_verb(monkeypatch: pytest.MonkeyPatch) -> None:
    said: list[str] = []

    def replayed(args: object) -> int:
        said.append("ran")
        return 0

    monkeypatch.setattr(command, "cmd_replay", replayed)  # bound as the parser is built
    assert command.main(["replay", "x"], on_bounded_job=lambda: said.append("hook")) == 0
    assert (
        command.main(["rules", "check", "no-such-dir"], on_bounded_job=lambda: said.append("x"))
        != 0
    )
    assert said == ["hook", "ran"]


def test_the_installed_command_tunes_its_process_before_running_the_verb(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    said: list[str] = []
    monkeypatch.setattr(command, "tune_garbage_collection", lambda: said.append("tuned"))

    def verb(argv: list[str] | None = None, on_bounded_job: object = None) -> int:
        assert on_bounded_job is command.stop_cyclic_collection
        said.append("ran")
        return 3

    monkeypatch.setattr(command, "main", verb)
    with pytest.raises(SystemExit) as stopped:
        command.run()
    assert said == ["tuned", "ran"]
    assert stopped.value.code == 3
