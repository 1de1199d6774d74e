"""Shared fixtures: ``isa`` runs a test once per instruction set this machine can run."""

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
