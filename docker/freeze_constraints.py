"""Write docker/constraints.txt: the runtime dependencies of an installed stream-risk, pinned.

Run it with the interpreter of a working install (tests passing), after changing the
dependencies in pyproject.toml:

    python docker/freeze_constraints.py > docker/constraints.txt

Only what ``pip install stream-risk`` pulls in is pinned (no extras, environment
markers evaluated for this interpreter); the image builds with these versions.
"""

from __future__ import annotations

import platform
import sys
from importlib.metadata import PackageNotFoundError, distribution

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def runtime_closure(root: str) -> dict[str, str]:
    """Canonical name -> installed version of every package ``root`` needs at run time."""
    pinned: dict[str, str] = {}
    todo = [root]
    while todo:
        name = todo.pop()
        dist = distribution(name)
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            key = canonicalize_name(req.name)
            if key in pinned:
                continue
            try:
                pinned[key] = distribution(req.name).version
            except PackageNotFoundError:
                raise SystemExit(f"{req.name} (needed by {name}) is not installed") from None
            todo.append(req.name)
    return pinned


def main() -> int:
    pins = runtime_closure("stream-risk")
    print(
        "# Versions the image installs: the runtime dependencies of a working install,\n"
        f"# Python {platform.python_version()}. Regenerate: "
        "python docker/freeze_constraints.py > docker/constraints.txt"
    )
    for name in sorted(pins):
        print(f"{name}=={pins[name]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
