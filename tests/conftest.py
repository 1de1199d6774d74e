"""Shared fixtures and the run's prerequisites.

``isa`` runs a test once per instruction set this machine can run, ``bf16_isa`` once per one with
bfloat16 products (avx512bf16, amx), skipping with the reason where the machine lacks it. Before any test runs, the run
checks that everything the suite needs is present (the `test` extra's packages, PyTorch as the
parity oracle, the real Fashion-MNIST files) and stops with what is missing and how to install it,
so a run never passes by skipping. ``PYCONVNET_TEST_ALLOW_MISSING=1`` opts out: the tests that need
a missing piece then skip, each with its reason in the summary.
"""

import importlib.util
import os

import pytest

import pyconvnet.data
from pyconvnet import backend

ISAS = backend.available_isas()

# Measured kernel selection would time every new convolution shape of the suite and write the
# user's plan cache: the suite (and its subprocesses) run the fixed heuristics; tests/test_plans.py
# turns selection on with a scratch cache.
os.environ["PYCONVNET_AUTOTUNE"] = "0"
backend.set_autotune(False)
# Tests that set a thread count mean it (they cover each partition of the work): the count does not
# adapt to the machine's load here (subprocesses included); tests/test_backend.py turns it on.
os.environ["PYCONVNET_ADAPTIVE_THREADS"] = "0"
backend.set_adaptive_threads(False)


@pytest.fixture(params=ISAS)
def isa(request):
    """Selects each available ISA's kernels (``reference`` included) for the test, then restores."""
    previous = backend.isa()
    backend.set_isa(request.param)
    yield request.param
    backend.set_isa(previous)


# The ISAs whose GEMMs multiply bfloat16 panels under autocast, and why one may be missing.
BF16_PRODUCT_ISAS = {"avx512bf16": "the CPU lacks AVX512-BF16", "amx": "the CPU or the OS lacks AMX-BF16 tiles"}


@pytest.fixture(params=list(BF16_PRODUCT_ISAS))
def bf16_isa(request):
    """Selects each ISA with bfloat16 products (vdpbf16ps, AMX tiles), skipped with the reason where
    unavailable; restores the ISA in use."""
    if request.param not in ISAS:
        pytest.skip(f"{BF16_PRODUCT_ISAS[request.param]} (or the build lacks its kernels)")
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


# Module -> what to install. torch is the version the tolerances were measured with.
REQUIRED_MODULES = {
    "torch": "pip install torch==2.14.1 (the `test` extra pins it)",
    "torchvision": "pip install torchvision==0.29.1 (the `test` extra pins it)",
    "hypothesis": "pip install '.[test]'",
    "PIL": "pip install '.[test]'",
    "matplotlib": "pip install '.[test]'",
    "onnx": "pip install '.[test]'",
    "onnxruntime": "pip install '.[test]'",
    "mpi4py": "pip install '.[test]' (mpi4py, and the mpich wheel with mpiexec)",
}
ALLOW_MISSING = os.environ.get("PYCONVNET_TEST_ALLOW_MISSING") == "1"


def _missing_prerequisites():
    missing = [f"{name}: {remedy}" for name, remedy in REQUIRED_MODULES.items()
               if importlib.util.find_spec(name) is None]
    try:
        pyconvnet.data.FashionMNIST(train=False)
    except pyconvnet.data.DatasetNotFoundError:
        missing.append("Fashion-MNIST: apt-get install dataset-fashion-mnist, or run `pyconvnet train` "
                       "once to download it, or point $PYCONVNET_DATA at the files")
    return missing


def pytest_configure(config):
    missing = _missing_prerequisites()
    if missing and not ALLOW_MISSING:
        lines = "\n  ".join(missing)
        pytest.exit(f"the test suite needs:\n  {lines}\n"
                    "(PYCONVNET_TEST_ALLOW_MISSING=1 runs without them, skipping the tests that need them)",
                    returncode=4)


@pytest.fixture(scope="session")
def real_fashion_mnist():
    """The real Fashion-MNIST (train, test), found where ``pyconvnet train`` looks for it."""
    try:
        return pyconvnet.data.FashionMNIST(train=True), pyconvnet.data.FashionMNIST(train=False)
    except pyconvnet.data.DatasetNotFoundError as error:
        pytest.skip(f"Fashion-MNIST is not installed ({error})")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` need a usable GPU: where there is none they skip, with the reason."""
    cuda_items = [item for item in items if item.get_closest_marker("cuda")]
    if not cuda_items:
        return
    import pyconvnet.cuda

    if pyconvnet.cuda.is_available():
        return
    skip = pytest.mark.skip(reason=f"no usable GPU: {pyconvnet.cuda.unavailable_reason()}")
    for item in cuda_items:
        item.add_marker(skip)
