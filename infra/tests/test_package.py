"""The deployment package: what `.funcignore` keeps out, what must be in, and the content hash."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from components.package import (
    PackageError,
    app_files,
    build_package,
    check_files,
    content_hash,
    is_ignored,
    read_funcignore,
)
from conftest import REPO_ROOT

EXCLUDED_TOP = ("tests", "infra", "sandbox", "devhost", "benchmarks", "node_modules", ".venv", ".git")


@pytest.fixture(scope="module")
def code_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_package(REPO_ROOT, tmp_path_factory.mktemp("build"), with_dependencies=False).path


def _names(package: Path) -> list[str]:
    with zipfile.ZipFile(package) as archive:
        return archive.namelist()


def test_package_holds_the_app_and_nothing_local(code_package: Path) -> None:
    names = _names(code_package)
    for required in ("function_app.py", "host.json", "requirements.txt", "shared/settings.py", "shared/names.py"):
        assert required in names
    assert any(n.startswith("functions/") for n in names)
    assert not [n for n in names if n.split("/")[0] in EXCLUDED_TOP]
    assert not [n for n in names if n.endswith("local.settings.json") or n.endswith("local.settings.sample.json")]
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    with zipfile.ZipFile(code_package) as archive:
        assert not [n for n in names if b"PRIVATE KEY-----" in archive.read(n)]


def test_funcignore_is_read_not_duplicated() -> None:
    patterns = read_funcignore(REPO_ROOT)
    assert "tests" in patterns and "infra" in patterns
    assert is_ignored("tests/test_settings.py", patterns)
    assert is_ignored("shared/__pycache__/settings.cpython-311.pyc", patterns)
    assert is_ignored("csp_fraud_responder.egg-info/PKG-INFO", patterns)
    assert not is_ignored("shared/settings.py", patterns)
    assert is_ignored("build/x.txt", ["build/"]) and not is_ignored("build", ["build/"])
    assert is_ignored("docs/a.md", ["/docs"]) and not is_ignored("shared/docs/a.md", ["/docs"])
    assert not is_ignored("tests/keep.py", ["tests", "!tests/keep.py"])


def _scratch_app(tmp_path: Path) -> Path:
    root = tmp_path / "app"
    for rel in [*app_files(REPO_ROOT), ".funcignore"]:
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / rel, target)
    return root


def test_content_hash_changes_only_when_packaged_files_change(tmp_path: Path) -> None:
    root = _scratch_app(tmp_path)
    before = content_hash(root, app_files(root))
    (root / "tests").mkdir()
    (root / "tests" / "test_new.py").write_text("assert True\n")
    (root / "local.settings.json").write_text('{"Values": {}}')
    assert content_hash(root, app_files(root)) == before  # ignored files do not redeploy
    (root / "requirements.txt").write_text((root / "requirements.txt").read_text() + "six>=1.16,<2\n")
    after_deps = content_hash(root, app_files(root))
    assert after_deps != before
    (root / "shared" / "names.py").write_text((root / "shared" / "names.py").read_text() + "\n# changed\n")
    assert content_hash(root, app_files(root)) not in (before, after_deps)


def test_same_code_builds_the_same_zip_name(tmp_path: Path) -> None:
    root = _scratch_app(tmp_path)
    first = build_package(root, tmp_path / "a", with_dependencies=False)
    second = build_package(root, tmp_path / "b", with_dependencies=False)
    assert first.path.name == second.path.name
    assert first.path.read_bytes() == second.path.read_bytes()


def test_builder_refuses_private_keys_and_local_settings(tmp_path: Path) -> None:
    root = _scratch_app(tmp_path)
    files = app_files(root)
    (root / "shared" / "leak.pem").write_text("-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n")
    with pytest.raises(PackageError, match="private key"):
        check_files(root, app_files(root))
    (root / "shared" / "leak.pem").unlink()
    with pytest.raises(PackageError, match=r"local\.settings\.json"):
        check_files(root, [*files, "shared/local.settings.json"])
    with pytest.raises(PackageError, match=r"host\.json"):
        check_files(root, [f for f in files if f != "host.json"])


def test_unpacked_package_imports_in_a_clean_venv(code_package: Path, tmp_path: Path) -> None:
    """Slow: the package plus requirements.txt in a fresh venv is enough to load every function."""
    app_dir = tmp_path / "wwwroot"
    with zipfile.ZipFile(code_package) as archive:
        archive.extractall(app_dir)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", "requirements.txt"],
        cwd=app_dir, capture_output=True, text=True, check=False,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    code = ("import json, function_app; "
            "print(json.dumps(sorted(f.get_function_name() for f in function_app.app.get_functions())))")
    result = subprocess.run([str(python), "-c", code], cwd=app_dir, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert set(result.stdout.split('"')) >= {"receive_webhook", "poll_alerts", "sync_alerts", "respond_to_alert",
                                               "health"}
