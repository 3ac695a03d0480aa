"""Build the wheel from exactly the files docker/Dockerfile copies, and check it is whole.

The image's build stage copies a few paths of the repository and runs ``pip wheel``.
A path the package maps (``[tool.setuptools.package-dir]``) but the Dockerfile does not
copy breaks the image, or worse, leaves a module out of it. This script copies what the
build stage's ``COPY`` lines name (minus what ``docker/Dockerfile.dockerignore``
excludes) into an empty directory, builds the wheel there and checks that it holds
every module and data file of every package in ``pyproject.toml``. It prints the
wheel's path, so the type check can run against the same wheel.

    python3 docker/image_wheel.py build/image-wheel

Standard library only; ``pip`` builds the wheel (network for the build backend).
"""

from __future__ import annotations

import argparse
import fnmatch
import glob
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
DOCKERIGNORE = ROOT / "docker" / "Dockerfile.dockerignore"


def build_stage_copies(dockerfile: str) -> tuple[str, list[tuple[list[str], str]]]:
    """The build stage's WORKDIR and its ``COPY src... dest`` lines from the context.

    >>> text = "FROM py AS build\\nWORKDIR /src\\nCOPY a b* ./\\nCOPY c ./c\\n"
    >>> build_stage_copies(text + "FROM py\\nCOPY d /")
    ('/src', [(['a', 'b*'], './'), (['c'], './c')])
    """
    workdir = "/"
    copies: list[tuple[list[str], str]] = []
    stages = 0
    for raw in dockerfile.splitlines():
        words = raw.split()
        if not words or words[0].startswith("#"):
            continue
        instruction = words[0].upper()
        if instruction == "FROM":
            stages += 1
            if stages > 1:
                break
        elif instruction == "WORKDIR":
            workdir = words[1]
        elif instruction == "COPY":
            args = [w for w in words[1:] if not w.startswith("--")]
            if any(w.startswith("--from") for w in words[1:]):
                continue
            copies.append((args[:-1], args[-1]))
    return workdir, copies


def ignored(path: PurePosixPath, patterns: list[str]) -> bool:
    """Whether a context path is excluded by a .dockerignore pattern (the forms used here).

    >>> ignored(PurePosixPath("stream_risk/__pycache__/x.pyc"), ["**/__pycache__"])
    True
    >>> ignored(PurePosixPath("tests/unit/test_a.py"), ["tests"])
    True
    >>> ignored(PurePosixPath("stream_risk/cli.py"), ["tests", "*.egg-info"])
    False
    """
    parts = path.parts
    for pattern in patterns:
        if pattern.startswith("**/"):
            tail = pattern[3:]
            if any(fnmatch.fnmatch(part, tail) for part in parts):
                return True
        else:
            depth = len(PurePosixPath(pattern).parts)
            if fnmatch.fnmatch("/".join(parts[:depth]), pattern):
                return True
    return False


def copy_context(dest: Path) -> None:
    """Copy what the build stage copies into ``dest`` (which stands for its WORKDIR)."""
    workdir, copies = build_stage_copies(DOCKERFILE.read_text())
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    if not copies:
        raise SystemExit(f"no COPY in the build stage of {DOCKERFILE}")
    for sources, target in copies:
        # A directory's contents go to the target (as Docker does); files go into it
        # when it ends in "/" or several sources are named.
        target_path = PurePosixPath(target)
        if target_path.is_absolute():
            target_path = target_path.relative_to(workdir)
        target_dir = dest / target_path
        into_dir = target.endswith("/") or len(sources) > 1 or any("*" in s for s in sources)
        for name in [m for s in sources for m in sorted(glob.glob(s, root_dir=ROOT))]:
            src = ROOT / name
            if src.is_dir():
                for file in sorted(src.rglob("*")):
                    rel = PurePosixPath(file.relative_to(ROOT).as_posix())
                    if file.is_file() and not ignored(rel, patterns):
                        copied = target_dir / file.relative_to(src)
                        copied.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(file, copied)
            elif not ignored(PurePosixPath(name), patterns):
                out = target_dir / src.name if into_dir else target_dir
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, out)


def expected_files(pyproject: dict[str, object], root: Path) -> set[str]:
    """Every module and data file the package mapping puts in the wheel, as wheel paths."""
    setuptools = pyproject["tool"]["setuptools"]  # type: ignore[index]
    package_dir: dict[str, str] = setuptools.get("package-dir", {})
    package_data: dict[str, list[str]] = setuptools.get("package-data", {})
    wanted: set[str] = set()
    for package in setuptools["packages"]:
        # The nearest mapped ancestor decides where a package's files live.
        head, rest = package, ""
        while head not in package_dir and "." in head:
            head, _, last = head.rpartition(".")
            rest = f"{last}/{rest}" if rest else last
        base = Path(package_dir.get(head, head.replace(".", "/")))
        source = root / base / rest if rest else root / base
        in_wheel = package.replace(".", "/")
        for py in source.glob("*.py"):
            wanted.add(f"{in_wheel}/{py.name}")
        for pattern in package_data.get(package, []):
            for data in source.glob(pattern):
                if data.is_file():
                    wanted.add(f"{in_wheel}/{data.relative_to(source).as_posix()}")
    return wanted


def unlisted_packages(pyproject: dict[str, object], root: Path) -> list[str]:
    """Directories with an ``__init__.py`` under a mapped directory but missing from
    ``packages``: setuptools leaves them out of the wheel (an editable install hides it)."""
    setuptools = pyproject["tool"]["setuptools"]  # type: ignore[index]
    listed = set(setuptools["packages"])
    found = []
    for package, directory in setuptools.get("package-dir", {}).items():
        base = root / directory
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base).parts
            name = ".".join((package, *rel))
            if name not in listed:
                found.append(name)
    return sorted(found)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("out", type=Path, help="work directory (emptied first)")
    args = p.parse_args(argv)
    out: Path = args.out.resolve()
    shutil.rmtree(out, ignore_errors=True)
    context, wheels = out / "context", out / "wheels"
    copy_context(context)
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--wheel-dir",
            str(wheels),
            str(context),
        ],
        capture_output=True,
        text=True,
    )
    if built.returncode != 0:
        print(built.stdout + built.stderr, file=sys.stderr)
        print("the wheel does not build from the files docker/Dockerfile copies", file=sys.stderr)
        return 1
    (wheel,) = wheels.glob("stream_risk-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    unlisted = unlisted_packages(pyproject, ROOT)
    if unlisted:
        print(
            f"pyproject.toml [tool.setuptools] packages lacks {', '.join(unlisted)}: "
            "the wheel would not contain them",
            file=sys.stderr,
        )
        return 1
    missing = sorted(expected_files(pyproject, ROOT) - names)
    if missing:
        print(
            f"the wheel built from the files docker/Dockerfile copies lacks {len(missing)} "
            f"files of the package: {', '.join(missing[:10])}",
            file=sys.stderr,
        )
        return 1
    print(wheel)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
