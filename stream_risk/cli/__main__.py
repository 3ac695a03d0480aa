"""``python -m stream_risk.cli``: the ``stream-risk`` command."""

from stream_risk.cli.command import main

if __name__ == "__main__":
    raise SystemExit(main())
