#!/usr/bin/env bash
# Type-check the package as it is installed: `mypy -p stream_risk` over the wheel built
# from the files the image copies (docker/image_wheel.py), so agents/, schemas/ and rules/
# sit where the package-dir mapping puts them and every stream_risk import is checked.
# Usage: bash docker/typecheck.sh [WHEEL]   (without WHEEL, builds it first)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
python=${PYTHON:-python3}

wheel=${1:-}
if [[ -z "$wheel" ]]; then
    wheel=$("$python" docker/image_wheel.py build/image-wheel)
fi
# A fixed place, so mypy's cache stays valid from one run to the next.
site=build/typecheck/site
rm -rf "$site"
"$python" -m pip install --quiet --disable-pip-version-check --no-deps --target "$site" "$wheel"
# Run from the installed copy: mypy looks in the current directory first, and the
# source tree's stream_risk/ lacks the mapped subpackages.
cd "$site"
exec "$python" -m mypy --config-file "$repo/pyproject.toml" --cache-dir "$repo/.mypy_cache/installed" \
    -p stream_risk
