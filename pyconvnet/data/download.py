"""Where datasets live on disk, and fetching the official files with checksum verification.

Lookup order for a dataset called ``name`` (lowercase with dashes: ``fashion-mnist``):
``root=`` if given, ``$PYCONVNET_DATA``, ``~/.cache/pyconvnet/<name>`` (``$XDG_CACHE_HOME``
when set) and the system directories in ``SYSTEM_DATA_DIRS`` (Debian's ``dataset-*`` packages
install under ``/usr/share/datasets/<name>``). ``root`` and ``$PYCONVNET_DATA`` may hold the
files directly or in a ``<name>/`` (or torchvision-named) subfolder; every place may keep
them under ``raw/``.

Downloads go where torchvision puts them if ``root`` is given (``root/MNIST/raw``,
``root/FashionMNIST/raw``, ``root/cifar-10-batches-py``), else to ``$PYCONVNET_DATA/<name>``,
else to the cache. Each file is streamed to a temporary file beside its destination, checked against the
checksum listed in the code, flushed to disk and only then renamed into place, so a failed
or interrupted download never leaves a partial file under the real name.
"""

import hashlib
import os
import sys
import tempfile
from pathlib import Path

__all__ = ["DatasetNotFoundError", "DownloadError", "MIRRORS", "SYSTEM_DATA_DIRS", "download_file"]

# Base URLs tried in order; tests and users behind a proxy may replace these lists.
MIRRORS = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"],
    "fashion-mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
    "cifar-10": ["https://www.cs.toronto.edu/~kriz/"],
}

SYSTEM_DATA_DIRS = ["/usr/share/datasets"]

_TIMEOUT_S = 60
_CHUNK = 1 << 20


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files were found in none of the places searched."""


class DownloadError(RuntimeError):
    """No mirror delivered a file with the expected checksum."""


def cache_dir(name):
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pyconvnet" / name


def search_dirs(name, root, aliases=()):
    """Every directory to try for dataset ``name``, in lookup order."""
    places = []
    parents = [Path(root)] if root is not None else []
    if os.environ.get("PYCONVNET_DATA"):
        parents.append(Path(os.environ["PYCONVNET_DATA"]))
    for parent in parents:
        for folder in (parent, parent / name, *(parent / alias for alias in aliases)):
            places += [folder, folder / "raw"]
    for folder in (cache_dir(name), *(Path(d) / name for d in SYSTEM_DATA_DIRS)):
        places += [folder, folder / "raw"]
    return list(dict.fromkeys(places))


def download_dir(name, root, torchvision_folder):
    """Where dataset ``name`` downloads to: ``root/torchvision_folder`` (torchvision's layout)
    when ``root`` is given, else ``$PYCONVNET_DATA/<name>``, else the cache."""
    if root is not None:
        return Path(root) / torchvision_folder
    if os.environ.get("PYCONVNET_DATA"):
        return Path(os.environ["PYCONVNET_DATA"]) / name
    return cache_dir(name)


def not_found(title, places, wanted, destination, apt_package=None):
    """The DatasetNotFoundError for ``title`` after looking for ``wanted`` in ``places``;
    ``destination`` is where download=True would save it."""
    lines = [f"{title} not found: looked for {wanted} in"]
    lines += [f"  {place}" for place in places]
    lines.append("To get it:")
    lines.append(f"  pass download=True (it saves to {destination}),")
    if apt_package:
        lines.append(f"  or on Debian/Ubuntu: apt-get install {apt_package},")
    lines.append("  or point root= (the CLI's --data-dir) or $PYCONVNET_DATA at a folder holding the files.")
    return DatasetNotFoundError("\n".join(lines))


def _md5(path):
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download_file(filename, urls, md5, destination):
    """Fetch ``filename`` into folder ``destination`` from the first of ``urls`` (base URLs)
    that delivers it with MD5 ``md5``; return its path. An existing file that matches is kept."""
    import http.client  # here: importing them costs more than the rest of pyconvnet.data
    import urllib.request

    destination = Path(destination)
    target = destination / filename
    if target.is_file() and _md5(target) == md5:
        return target
    destination.mkdir(parents=True, exist_ok=True)
    failures = []
    for base in urls:
        url = base + filename
        print(f"pyconvnet: downloading {url}", file=sys.stderr)
        handle, part = tempfile.mkstemp(dir=destination, prefix=f".{filename}.", suffix=".part")
        try:
            with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:
                digest = hashlib.md5(usedforsecurity=False)
                for block in iter(lambda: response.read(_CHUNK), b""):
                    digest.update(block)
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() != md5:
                failures.append(f"{url}: MD5 {digest.hexdigest()} != expected {md5}")
                continue
            os.replace(part, target)
            return target
        except (OSError, http.client.HTTPException) as error:
            failures.append(f"{url}: {error}")
        finally:
            if os.path.exists(part):
                os.unlink(part)
    raise DownloadError(f"could not download {filename}:\n" + "\n".join(f"  {f}" for f in failures))
