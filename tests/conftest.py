"""Shared fixtures: ``isa`` runs a test once per instruction set this machine can run."""

import os

import pytest

from pyconvnet import backend

ISAS = backend.available_isas()


@pytest.fixture(params=ISAS)
def isa(request):
    """Selects each available ISA's kernels (``reference`` included) for the test, then restores."""
    previous = backend.isa()
    backend.set_isa(request.param)
    yield request.param
    backend.set_isa(previous)


@pytest.fixture(autouse=True, scope="session")
def _outside_the_source_tree(tmp_path_factory):
    """Runs the session in a scratch directory: `python -c`/`-m` subprocesses put the working
    directory first on sys.path, and from the repository root they would import the source
    tree's package (which has no compiled extension in a non-editable install)."""
    previous = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    yield
    os.chdir(previous)
