"""The deployment package: app code plus Linux wheels, filtered by the repo's ``.funcignore``.

The package is what Flex Consumption runs: ``function_app.py`` and ``host.json`` at the root,
the app's packages, and its dependencies under ``.python_packages/lib/site-packages`` (the
place the Python worker adds to ``sys.path``), installed for Linux x86_64 / CPython 3.11 so a
build on macOS or Windows still ships Linux wheels. ``.funcignore`` is the single list of what
stays out (tests, infra, sandbox, devhost, local settings, ...); this module reads and applies
it rather than keeping its own copy.

The content hash covers every packaged app file (path and bytes, ``requirements.txt``
included) and the target platform, so a redeploy happens only when code or dependencies change.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

FUNCIGNORE = ".funcignore"
REQUIREMENTS = "requirements.txt"
SITE_PACKAGES = ".python_packages/lib/site-packages"
PYTHON_VERSION = "3.11"
PLATFORM = "manylinux2014_x86_64"
TARGET = f"cp{PYTHON_VERSION}-{PLATFORM}"
"""Part of the content hash: the same code built for another platform is another package."""

REQUIRED_FILES = ("function_app.py", "host.json", REQUIREMENTS)
# Belt and braces on top of .funcignore: never ship these, whatever the ignore file says.
FORBIDDEN_NAMES = ("local.settings.json", ".env")
PRIVATE_KEY_MARKER = b"PRIVATE KEY-----"
# Fixed timestamp so the same files always give the same zip bytes.
_ZIP_DATE = (2020, 1, 1, 0, 0, 0)


class PackageError(RuntimeError):
    """The package cannot be built; the message says what to fix."""


def read_funcignore(root: Path) -> list[str]:
    """Patterns from ``.funcignore`` (gitignore-style lines; blanks and comments dropped)."""
    path = root / FUNCIGNORE
    if not path.is_file():
        raise PackageError(f"{FUNCIGNORE} is missing in {root.name}/: it lists what the package leaves out")
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def is_ignored(relative: str, patterns: Sequence[str]) -> bool:
    """Whether a repo-relative POSIX path is excluded, the way Core Tools reads ``.funcignore``.

    A pattern without a slash matches any path component (``tests`` drops ``tests/`` and
    everything below it; ``*.pyc`` drops every such file); a pattern with a slash is anchored at
    the root; a trailing slash matches directories only (any component but the last).
    """
    parts = relative.split("/")
    ignored = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        dir_only = pattern.endswith("/")
        anchored = "/" in pattern.rstrip("/")
        pattern = pattern.strip("/")
        if anchored:
            candidates = ["/".join(parts[: i + 1]) for i in range(len(parts) - (1 if dir_only else 0))]
        else:
            candidates = parts[:-1] if dir_only else parts
        if any(fnmatch.fnmatchcase(candidate, pattern) for candidate in candidates):
            ignored = not negate
    return ignored


def app_files(root: Path, patterns: Sequence[str] | None = None) -> list[str]:
    """Repo-relative POSIX paths of every file that goes into the package, sorted."""
    patterns = read_funcignore(root) if patterns is None else patterns
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        # Prune ignored directories early (node_modules, .venv are large).
        dirnames[:] = sorted(d for d in dirnames if not is_ignored(prefix + d + "/x", patterns)
                             and not is_ignored(prefix + d, patterns))
        for name in sorted(filenames):
            rel = prefix + name
            if not is_ignored(rel, patterns):
                found.append(rel)
    return sorted(found)


def check_files(root: Path, files: Iterable[str]) -> None:
    """Refuse a package without the entry points or with local settings or private keys."""
    files = list(files)
    missing = [name for name in REQUIRED_FILES if name not in files]
    if missing:
        raise PackageError(f"the package would lack {', '.join(missing)}; check {FUNCIGNORE}")
    for rel in files:
        if rel.rsplit("/", 1)[-1] in FORBIDDEN_NAMES:
            raise PackageError(f"{rel} must not be deployed: add it to {FUNCIGNORE}")
        if PRIVATE_KEY_MARKER in (root / rel).read_bytes():
            raise PackageError(f"{rel} holds a private key and must not be deployed: add it to {FUNCIGNORE}")


def content_hash(root: Path, files: Iterable[str]) -> str:
    """SHA-256 over the target platform and each file's path and bytes (hex)."""
    digest = hashlib.sha256(TARGET.encode())
    for rel in sorted(files):
        data = (root / rel).read_bytes()
        digest.update(b"\0" + rel.encode() + b"\0" + str(len(data)).encode() + b"\0")
        digest.update(data)
    return digest.hexdigest()


@dataclass(frozen=True)
class Package:
    """A built package: the zip, its content hash and the app files in it."""

    path: Path
    content_hash: str
    files: tuple[str, ...]


def install_dependencies(requirements: Path, target: Path, *, pip_args: Sequence[str] = ()) -> None:
    """``pip install`` Linux x86_64 / CPython 3.11 wheels into ``target`` (wheels only, no builds)."""
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--platform", PLATFORM, "--only-binary=:all:", "--python-version", PYTHON_VERSION,
        "--implementation", "cp", "--target", str(target), "-r", str(requirements), *pip_args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PackageError(
            f"pip could not install {requirements.name} for {TARGET} (exit {result.returncode}): "
            f"{result.stderr.strip()[-2000:]}"
        )


def _write_zip(zip_path: Path, entries: Iterable[tuple[str, Path]]) -> None:
    tmp = zip_path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for arcname, source in sorted(entries):
            info = zipfile.ZipInfo(arcname, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            mode = source.stat().st_mode & 0o777
            info.external_attr = ((mode | 0o644) & 0o755) << 16
            archive.writestr(info, source.read_bytes())
    tmp.replace(zip_path)


def build_package(root: Path, out_dir: Path, *, with_dependencies: bool = True,
                  pip_args: Sequence[str] = ()) -> Package:
    """Build (or reuse) ``out_dir/package-<hash>.zip`` for the app in ``root``.

    The zip is named by its content hash, so a second build of unchanged code is free.
    """
    files = app_files(root)
    check_files(root, files)
    digest = content_hash(root, files)
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = "" if with_dependencies else "-code"
    zip_path = out_dir / f"package-{digest[:16]}{suffix}.zip"
    if zip_path.is_file():
        return Package(zip_path, digest, tuple(files))
    entries = [(rel, root / rel) for rel in files]
    with tempfile.TemporaryDirectory(prefix="fraud-responder-pkg-") as staging:
        if with_dependencies:
            site = Path(staging) / SITE_PACKAGES
            install_dependencies(root / REQUIREMENTS, site, pip_args=pip_args)
            for path in sorted(site.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    entries.append((f"{SITE_PACKAGES}/{path.relative_to(site).as_posix()}", path))
        _write_zip(zip_path, entries)
    return Package(zip_path, digest, tuple(files))


def clean_old_packages(out_dir: Path, keep: Path) -> None:
    """Remove earlier builds so the build directory does not grow with every change."""
    if out_dir.is_dir():
        for old in out_dir.glob("package-*.zip"):
            if old != keep:
                old.unlink(missing_ok=True)

