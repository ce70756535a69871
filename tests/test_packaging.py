"""The wheel the README tells users to build (``python -m build --wheel``) holds the whole package.

Built from this checkout into a temporary directory, without build isolation (the test extra installs
the build-system requirement), so it takes seconds and needs no network.
"""

from __future__ import annotations

import email
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # A copy of the sources: building in place would leave build/ and *.egg-info in the shared tree.
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        (src / name).write_bytes((ROOT / name).read_bytes())
    for path in (ROOT / "sqreen_otel").rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            target = src / path.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    result = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(src)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = out.glob("sqreen_otel-*-py3-none-any.whl")
    return built


def test_wheel_holds_every_module_py_typed_and_no_tests(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "sqreen_otel").rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert {"sqreen_otel/explorer/__init__.py", "sqreen_otel/integrations/__init__.py"} <= sources
    assert sources <= names, sorted(sources - names)  # every subpackage and module
    assert "sqreen_otel/py.typed" in names
    assert not [name for name in names if name.startswith(("tests/", "examples/", "benchmarks/"))]


def test_wheel_metadata_declares_extras_and_the_console_script(wheel: Path) -> None:
    archive = zipfile.ZipFile(wheel)
    info = next(name.rsplit("/", 1)[0] for name in archive.namelist() if name.endswith(".dist-info/METADATA"))
    metadata = email.message_from_bytes(archive.read(f"{info}/METADATA"))
    assert metadata["Name"] == "sqreen_otel" and metadata["Requires-Python"] == ">=3.10"
    extras = set(metadata.get_all("Provides-Extra") or [])
    assert {"flask", "django", "asgi", "explorer"} <= extras
    requires = metadata.get_all("Requires-Dist") or []
    assert any(r.startswith("flask") and 'extra == "flask"' in r for r in requires)
    entry_points = archive.read(f"{info}/entry_points.txt").decode()
    assert "sqreen-otel = sqreen_otel.cli:main" in entry_points
    assert "sqreen_otel = sqreen_otel.integrations.auto:SqreenDistro" in entry_points
