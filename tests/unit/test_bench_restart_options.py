"""``stream-risk bench-restart``: counts it refuses before starting anything."""

from __future__ import annotations

import argparse

import pytest

from stream_risk.tools import bench_restart


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench_restart.configure_parser(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize(
    ("option", "bad"),
    [
        ("--customers", "0"),
        ("--customers", "-5"),
        ("--after", "0"),
        ("--partitions", "0"),
        ("--orders", "-1"),
        ("--orders", "many"),
    ],
)
def test_counts_out_of_range_are_refused(
    option: str, bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        _parse([option, bad])
    assert option in capsys.readouterr().err


def test_no_orders_besides_the_customer_record_is_allowed() -> None:
    args = _parse(["--orders", "0", "--customers", "10"])
    assert (args.orders, args.customers, args.after, args.partitions) == (0, 10, 100, 4)
