"""README's and docs/'s Python examples run as written (training loops on a slice of Fashion-MNIST),
and their links point at files inside the repository."""

import glob
import os
import re

import pytest

import pyconvnet.data
from pyconvnet import backend

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
DOCUMENTS = ["README.md"] + sorted(
    os.path.relpath(path, ROOT) for path in glob.glob(os.path.join(ROOT, "docs", "*.md"))
)


def _read(document):
    with open(os.path.join(ROOT, document), encoding="utf-8") as f:
        return f.read()


def _python_blocks():
    return [
        pytest.param(document, block, id=f"{document}-{index}")
        for document in DOCUMENTS
        for index, block in enumerate(re.findall(r"```python\n(.*?)```", _read(document), flags=re.S))
    ]


@pytest.mark.parametrize("document,block", _python_blocks())
def test_python_block_runs(document, block, monkeypatch, request):
    if "FashionMNIST(" in block:
        original = pyconvnet.data.FashionMNIST
        request.getfixturevalue("real_fashion_mnist")  # the data must be there
        # Same code, fewer images: the loop's imports pick up the patched name.
        def first_512(train=True, **kwargs):
            return pyconvnet.data.Subset(original(train=train, **kwargs), range(512))

        monkeypatch.setattr(pyconvnet.data, "FashionMNIST", first_512)
    isa, threads = backend.isa(), backend.get_num_threads()
    try:  # the examples switch ISA and threads: restore them for the tests that follow
        exec(compile(block, f"{document} python block", "exec"), {})
    finally:
        backend.set_isa(isa)
        backend.set_num_threads(threads)


@pytest.mark.parametrize("document", DOCUMENTS)
def test_links_point_inside_the_repository(document):
    folder = os.path.dirname(os.path.join(ROOT, document))
    for target in re.findall(r"\]\(([^)\s]+)\)", _read(document)):
        if re.match(r"[a-z]+:", target):
            continue  # a web address
        file, _, anchor = target.partition("#")
        path = os.path.realpath(os.path.join(folder, file or os.path.basename(document)))
        assert os.path.exists(path), f"{document} links to missing {target}"
        assert os.path.commonpath([path, os.path.realpath(ROOT)]) == os.path.realpath(ROOT), (
            f"{document} links outside the repository: {target}")
        if anchor:
            assert anchor in _heading_anchors(path), f"{document} links to a missing heading: {target}"


def _heading_anchors(path):
    """The anchors GitHub gives a Markdown file's headings: lower case, punctuation dropped, - for spaces."""
    with open(path, encoding="utf-8") as f:
        headings = re.findall(r"^#+ (.*)$", f.read(), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}
