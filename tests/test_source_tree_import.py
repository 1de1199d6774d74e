"""Importing pyconvnet from a source checkout without a built extension says to install it."""

import importlib.machinery
import os
import shutil
import subprocess
import sys

import pyconvnet

PACKAGE = os.path.dirname(os.path.abspath(pyconvnet.__file__))


def _bare_copy(folder):
    """The package's Python sources in folder/pyconvnet, without the compiled extensions."""
    shutil.copytree(PACKAGE, folder / "pyconvnet",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    return folder / "pyconvnet"


def _import_from(folder):
    # `python -c` puts the working directory first on sys.path, as `python -m pyconvnet` run in a
    # checkout's root does; -S leaves site-packages out, so no installed (or editable, whose finder
    # would answer before sys.path is searched) pyconvnet is found: a machine where it never was.
    return subprocess.run([sys.executable, "-S", "-c", "import pyconvnet"], cwd=folder,
                          capture_output=True, text=True, timeout=120)


def test_bare_source_tree_says_to_install(tmp_path):
    package = _bare_copy(tmp_path)
    result = _import_from(tmp_path)
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("ImportError: pyconvnet at ")
    assert str(package) in last_line
    assert "is not built" in last_line
    assert "`pip install .`" in last_line and "`pip install --no-build-isolation -e .`" in last_line
    assert "circular import" not in result.stderr


def test_an_extension_that_fails_to_load_keeps_its_own_error(tmp_path):
    package = _bare_copy(tmp_path)
    (package / f"_C{importlib.machinery.EXTENSION_SUFFIXES[0]}").write_bytes(b"not a shared library")
    result = _import_from(tmp_path)
    assert result.returncode != 0
    assert "is not built" not in result.stderr
    assert "ImportError" in result.stderr
