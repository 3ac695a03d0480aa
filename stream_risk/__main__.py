"""``python -m stream_risk``: the ``stream-risk`` command, without relying on its script on PATH."""

from stream_risk.cli.command import run

if __name__ == "__main__":
    run()
