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
        original = pyconvnet.data.FashionMNIST
        request.getfixturevalue("real_fashion_mnist")  # the data must be there
        # Same code, fewer images: the loop's imports pick up the patched name.
        def first_512(train=True, **kwargs):
            return pyconvnet.data.Subset(original(train=train, **kwargs), range(512))

        monkeypatch.setattr(pyconvnet.data, "FashionMNIST", first_512)
    isa, threads = backend.isa(), backend.get_num_threads()
    try:  # the examples switch ISA and threads: restore them for the tests that follow
        exec(compile(block, f"README.md python block {index}", "exec"), {})
    finally:
        backend.set_isa(isa)
        backend.set_num_threads(threads)
