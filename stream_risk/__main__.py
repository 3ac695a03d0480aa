"""``python -m stream_risk``: the ``stream-risk`` command, without relying on its script on PATH."""

from stream_risk.cli.command import main

if __name__ == "__main__":
    raise SystemExit(main())
