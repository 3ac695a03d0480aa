"""``python -m stream_risk.cli``: the ``stream-risk`` command."""

from stream_risk.cli.command import run

if __name__ == "__main__":
    run()
