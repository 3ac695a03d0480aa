#!/usr/bin/env bash
# The test command (README): install the project with its dev extra, start Apache Kafka
# and Redis on loopback, then run lint, types, the contract drift check and every test.
# Extra arguments go to pytest, e.g. `bash docker/test.sh tests/unit -x`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

started=$(date +%s)
echo "[test] installing the project and its dev dependencies" >&2
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -e ".[dev]"

echo "[test] starting Kafka and Redis" >&2
bash docker/services.sh start
eval "$(bash docker/services.sh env)"

echo "[test] ruff" >&2
ruff check .
echo "[test] mypy" >&2
mypy
echo "[test] JSON Schema files match the models" >&2
python3 -m stream_risk.schemas.export --check

echo "[test] pytest" >&2
status=0
python3 -m pytest "$@" || status=$?
echo "[test] finished in $(( $(date +%s) - started ))s with status $status" >&2
exit "$status"
