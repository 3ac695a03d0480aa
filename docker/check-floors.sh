#!/usr/bin/env bash
# Check the dependency floors: install the LOWEST version pyproject.toml allows of every
# runtime dependency and of the `rocksdb` extra (`name>=X` becomes `name==X` in a
# constraints file), with the dev extra at whatever fits, into a fresh virtual
# environment, and run the unit tests there.
# A floor that does not install, or that the code outgrew, fails here.
# The test command (docker/test.sh) runs it for the unit tests; a first run creates the
# environment (a minute or two), later runs reuse it. Extra arguments go to pytest.
#   bash docker/check-floors.sh            # venv in build/floors-venv (FLOORS_VENV)
#   FLOORS_FRESH=1 bash docker/check-floors.sh   # the same from an empty venv
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python=${PYTHON:-python3}
venv=${FLOORS_VENV:-build/floors-venv}
constraints=build/floors-constraints.txt
mkdir -p build

"$python" - >"$constraints" <<'PY'
import re
import tomllib

with open("pyproject.toml", "rb") as fh:
    project = tomllib.load(fh)["project"]
# The worker's optional state store is a runtime dependency when chosen: its floor too.
requirements = project["dependencies"] + project["optional-dependencies"]["rocksdb"]
for requirement in requirements:
    m = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*>=\s*([^,;\s]+)", requirement)
    if m is None:
        raise SystemExit(f"no plain '>=' floor in {requirement!r}: give every dependency one")
    print(f"{m[1]}=={m[3]}")
PY
echo "[floors] $(tr '\n' ' ' <"$constraints")" >&2

# Reused when present (quicker); FLOORS_FRESH=1 starts it empty.
if [[ ! -x "$venv/bin/python" || "${FLOORS_FRESH:-0}" == 1 ]]; then
    "$python" -m venv --clear "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --constraint "$constraints" -e ".[dev]"
# The project's own floors and nothing newer: fail if the resolver moved one.
"$venv/bin/python" - "$constraints" <<'PY'
import sys
from importlib.metadata import version

from packaging.version import Version

wrong = []
for line in open(sys.argv[1]):
    name, _, floor = line.strip().partition("==")
    if Version(version(name)) != Version(floor):
        wrong.append(f"{name} {version(name)} (floor {floor})")
if wrong:
    raise SystemExit("not at the floor: " + ", ".join(wrong))
PY
echo "[floors] installed; running the unit tests" >&2
"$venv/bin/python" -m pytest tests/unit -p no:cacheprovider "$@"
