#!/usr/bin/env bash
# The test command (README): install the project with its dev extra, start Apache Kafka
# and Redis on loopback, then run lint, the image's wheel build, types (on that wheel),
# the contract drift check and every test: the unit tests in a second environment at the
# lowest versions pyproject.toml allows (docker/check-floors.sh), so that a wrong floor
# fails here, and the integration and browser tests at the newest versions.
# A broker started here begins with empty storage: no test reads an earlier run's topics,
# and loading thousands of stale partitions would only slow the start.
# Extra arguments go to pytest (newest versions only, no floors run), e.g.
# `bash docker/test.sh tests/unit -x`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

started=$(date +%s)
echo "[test] installing the project, its dev dependencies and the bench baselines (Quix Streams)" >&2
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -e ".[dev,bench]"

# The dashboard test drives Debian's headless Chromium; install it once (quick when present).
if ! command -v chromium >/dev/null 2>&1; then
    echo "[test] installing Debian's chromium for the dashboard test" >&2
    as_root=(env DEBIAN_FRONTEND=noninteractive)
    if [[ "$(id -u)" != 0 ]]; then
        command -v sudo >/dev/null 2>&1 || {
            echo "[test] chromium is missing: apt-get install -y chromium (as root)" >&2
            exit 1
        }
        as_root=(sudo "${as_root[@]}")
    fi
    "${as_root[@]}" apt-get -o DPkg::Lock::Timeout=600 update -qq
    "${as_root[@]}" apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium >/dev/null
    command -v chromium >/dev/null 2>&1 || { echo "[test] chromium still missing after apt-get install" >&2; exit 1; }
fi

echo "[test] starting Kafka and Redis" >&2
bash docker/services.sh start --fresh
eval "$(bash docker/services.sh env)"

# Tools run as `python3 -m ...`: right after an install their scripts may not be on PATH
# yet (pyenv creates its shims later).
echo "[test] ruff" >&2
python3 -m ruff check .
echo "[test] the wheel builds from exactly the files docker/Dockerfile copies" >&2
wheel=$(python3 docker/image_wheel.py build/image-wheel)
echo "[test] mypy -p stream_risk on the installed wheel" >&2
PYTHON=python3 bash docker/typecheck.sh "$wheel"
echo "[test] JSON Schema files match the models" >&2
python3 -m stream_risk.schemas.export --check

status=0
if [[ $# -gt 0 ]]; then
    echo "[test] pytest $*" >&2
    python3 -m pytest "$@" || status=$?
else
    echo "[test] unit tests at the dependency floors" >&2
    bash docker/check-floors.sh -q || status=$?
    echo "[test] integration and browser tests at the newest versions" >&2
    python3 -m pytest tests/integration tests/e2e || status=$?
fi
echo "[test] finished in $(( $(date +%s) - started ))s with status $status" >&2
exit "$status"
