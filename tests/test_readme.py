"""README's Python examples run as written."""

import os
import re

import pytest

from pyconvnet import backend

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "README.md")


def _python_blocks():
    with open(README, encoding="utf-8") as f:
        return re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)


@pytest.mark.parametrize("index", range(len(_python_blocks())))
def test_readme_python_block_runs(index, capsys):
    isa, threads = backend.isa(), backend.get_num_threads()
    try:  # the examples switch ISA and threads: restore them for the tests that follow
        exec(compile(_python_blocks()[index], f"README.md python block {index}", "exec"), {})
    finally:
        backend.set_isa(isa)
        backend.set_num_threads(threads)
