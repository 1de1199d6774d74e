"""README's Python examples run as written (the training loop on a slice of Fashion-MNIST)."""

import os
import re

import pytest

import pyconvnet.data
from pyconvnet import backend

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "README.md")


def _python_blocks():
    with open(README, encoding="utf-8") as f:
        return re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)


@pytest.mark.parametrize("index", range(len(_python_blocks())))
def test_readme_python_block_runs(index, capsys, monkeypatch, request):
    block = _python_blocks()[index]
    if "FashionMNIST(" in block:
        dataset = request.getfixturevalue("real_fashion_mnist")[0]
        # Same code, fewer images: the loop's imports pick up the patched name.
        monkeypatch.setattr(pyconvnet.data, "FashionMNIST", lambda train=True: pyconvnet.data.Subset(dataset, range(512)))
    isa, threads = backend.isa(), backend.get_num_threads()
    try:  # the examples switch ISA and threads: restore them for the tests that follow
        exec(compile(block, f"README.md python block {index}", "exec"), {})
    finally:
        backend.set_isa(isa)
        backend.set_num_threads(threads)
