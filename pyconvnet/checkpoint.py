"""``save(obj, path)`` / ``load(path)``: checkpoints as safetensors files, crash-safe and pickle-free.

The counterpart of ``torch.save`` / ``torch.load`` for what a training run keeps: nested dicts,
lists and tuples of Tensors, numpy arrays and plain values (None, bool, int, float, str), such as
model and optimiser state_dicts, epochs, RNG states and metrics. Tensors and arrays are stored as
safetensors tensors, named by their place in ``obj`` (``model/features.0.weight``), so any
safetensors reader can open the file; the structure and the plain values are JSON in the
safetensors metadata, with a CRC-32 over both. Loading parses JSON and raw arrays only: nothing
in the file is ever executed.

``save`` writes a temporary file beside ``path``, fsyncs it, renames it over ``path`` and fsyncs
the directory, so a crash at any moment leaves either the previous file or the new one, never a
torn one. ``load`` raises ValueError naming the file when it is truncated, corrupt or not a
pyconvnet checkpoint.
"""

import json
import os
import secrets
import zlib

import numpy as np

from .tensor import Tensor
from .creation import from_numpy

__all__ = ["save", "load"]

_FORMAT = "pyconvnet.checkpoint"
_VERSION = "1"
# safetensors' own header-size field: a little-endian uint64 before the JSON header.
_HEADER_SIZE_BYTES = 8
_PLAIN_TYPES = (type(None), bool, int, float, str)


def save(obj, path):
    """Write ``obj`` to ``path`` (str or os.PathLike) atomically; see the module docstring.

    Unlike torch.save: ``path`` must be a file name (a file object cannot be replaced
    atomically); dict keys must be str, int, float, bool or None; a Tensor referenced twice is
    stored twice; gradients and autograd history are not saved (``requires_grad`` is).
    Anything else (objects, sets, bytes, object arrays) raises TypeError naming where it is.
    """
    from safetensors.numpy import save as serialise  # a core dependency, imported when first used

    path = _check_path(path, "save")
    arrays = {}
    tree_json = json.dumps(_encode(obj, (), arrays), separators=(",", ":"))
    metadata = {"format": _FORMAT, "version": _VERSION, "tree": tree_json, "crc32": _checksum(tree_json, arrays)}
    _write_atomically(path, serialise(arrays, metadata=metadata))


def load(path):
    """The object ``save`` wrote to ``path``: Tensors come back as Tensors, arrays as arrays."""
    from safetensors.numpy import load as deserialise

    path = _check_path(path, "load")
    with open(path, "rb") as file:
        data = file.read()
    metadata = _read_metadata(data, path)
    try:
        arrays = deserialise(data)
    except Exception as error:  # safetensors raises its own SafetensorError for malformed files
        raise ValueError(f"{path}: corrupt checkpoint: {error}") from None
    tree_json = metadata.get("tree")
    if not isinstance(tree_json, str) or metadata.get("crc32") != _checksum(tree_json, arrays):
        raise ValueError(f"{path}: corrupt checkpoint: checksum mismatch")
    try:
        return _decode(json.loads(tree_json), arrays, path)
    except (KeyError, TypeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: corrupt checkpoint structure: {error!r}") from None


def _check_path(path, caller):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{caller}: path must be a str or os.PathLike file name, got {type(path).__name__}")
    return os.fspath(path)


# --------------------------------------------------------------------- structure <-> JSON
# Plain values and lists are themselves in JSON; every JSON object is a one-key tagged node:
# {"tuple": [...]}, {"dict": [[key, value], ...]}, {"tensor": name, "requires_grad": bool},
# {"ndarray": name} and {"scalar": name} (a numpy scalar kept as a 0-d array).


def _encode(value, where, arrays):
    if isinstance(value, _PLAIN_TYPES):
        return value
    if isinstance(value, list):
        return [_encode(item, (*where, str(i)), arrays) for i, item in enumerate(value)]
    if isinstance(value, tuple):
        return {"tuple": [_encode(item, (*where, str(i)), arrays) for i, item in enumerate(value)]}
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            if not isinstance(key, _PLAIN_TYPES):
                raise TypeError(f"save: dict key {key!r} at {_place(where)} must be str, int, float, bool or None")
            items.append([key, _encode(item, (*where, str(key)), arrays)])
        return {"dict": items}
    if isinstance(value, Tensor):
        return {"tensor": _add_array(value.detach().numpy(), where, arrays), "requires_grad": value.requires_grad}
    if isinstance(value, np.ndarray):
        return {"ndarray": _add_array(value, where, arrays)}
    if isinstance(value, np.generic):
        return {"scalar": _add_array(np.asarray(value), where, arrays)}
    raise TypeError(f"save: cannot store {type(value).__name__} at {_place(where)}")


def _add_array(array, where, arrays):
    if array.dtype.kind not in "biuf":
        raise TypeError(f"save: array of dtype {array.dtype} at {_place(where)} is not storable")
    name = "/".join(where) or "root"
    unique, copy = name, 1
    while unique in arrays:  # keys like 1 and "1" map to the same path
        unique, copy = f"{name}~{copy}", copy + 1
    arrays[unique] = np.require(array, requirements="C")  # ascontiguousarray would make 0-d arrays 1-d
    return unique


def _place(where):
    return "/".join(where) or "the top level"


def _decode(node, arrays, path):
    if isinstance(node, list):
        return [_decode(item, arrays, path) for item in node]
    if not isinstance(node, dict):
        return node
    if len(node) == 1 and "tuple" in node:
        return tuple(_decode(item, arrays, path) for item in node["tuple"])
    if len(node) == 1 and "dict" in node:
        return {key: _decode(item, arrays, path) for key, item in node["dict"]}
    if "tensor" in node:
        return from_numpy(_array(node["tensor"], arrays, path)).requires_grad_(node["requires_grad"])
    if "ndarray" in node:
        return _array(node["ndarray"], arrays, path)
    if "scalar" in node:
        return _array(node["scalar"], arrays, path)[()]
    raise ValueError(f"{path}: corrupt checkpoint: unknown node {sorted(node)}")


def _array(name, arrays, path):
    if name not in arrays:
        raise ValueError(f"{path}: corrupt checkpoint: tensor {name!r} is missing")
    return arrays[name]


# --------------------------------------------------------------------- integrity and files


def _checksum(tree_json, arrays):
    """CRC-32 over the structure and every array's name, dtype, shape and bytes, as 8 hex digits."""
    crc = zlib.crc32(tree_json.encode())
    for name in sorted(arrays):
        array = np.require(arrays[name], requirements="C")
        crc = zlib.crc32(f"{name}|{array.dtype.str}|{array.shape}".encode(), crc)
        crc = zlib.crc32(array.reshape(-1).view(np.uint8), crc)
    return f"{crc:08x}"


def _read_metadata(data, path):
    """The safetensors ``__metadata__`` map of ``data``, checking it is one of ours."""
    size = int.from_bytes(data[:_HEADER_SIZE_BYTES], "little")
    if len(data) <= _HEADER_SIZE_BYTES or size > len(data) - _HEADER_SIZE_BYTES:
        raise ValueError(f"{path}: truncated or not a safetensors checkpoint ({len(data)} bytes)")
    try:
        header = json.loads(data[_HEADER_SIZE_BYTES : _HEADER_SIZE_BYTES + size])
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: corrupt checkpoint header: {error}") from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or metadata.get("format") != _FORMAT:
        raise ValueError(f"{path}: not a pyconvnet checkpoint (a safetensors file without its metadata)")
    if metadata.get("version") != _VERSION:
        raise ValueError(f"{path}: checkpoint format version {metadata.get('version')!r}, expected {_VERSION}")
    return metadata


def _write_atomically(path, data):
    directory = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(temporary)
        raise
    os.close(fd)
    os.replace(temporary, path)
    _fsync_directory(directory)


def _fsync_directory(directory):
    """Make the rename durable; skipped where directories cannot be opened (Windows)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
