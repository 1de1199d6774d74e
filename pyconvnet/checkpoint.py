"""``save(obj, f)`` / ``load(f)``: checkpoints as safetensors files, crash-safe and pickle-free.

The counterpart of ``torch.save`` / ``torch.load`` for what a training run keeps: nested dicts,
lists and tuples of Tensors, numpy arrays and plain values (None, bool, int, float, str), such as
model and optimiser state_dicts, epochs, RNG states and metrics. Tensors and arrays are stored as
safetensors tensors, named by their place in ``obj`` (``model/features.0.weight``), so any
safetensors reader can open the file; the structure and the plain values are JSON in the
safetensors metadata, with a CRC-32 over both. Loading parses JSON and raw arrays only: nothing
in the file is ever executed.

Saved to a file name, ``save`` writes a temporary file beside it, fsyncs it, renames it over the
name and fsyncs the directory, so a crash at any moment leaves either the previous file or the
new one, never a torn one. ``load`` raises ValueError naming the file when it is truncated,
corrupt or not a pyconvnet checkpoint.

``load`` also reads files written by ``torch.save`` (zip or legacy format) holding tensors in
plain containers, such as torchvision's weight files, through the restricted unpickler of
``pyconvnet.torch_format``: no pickled code runs, and other objects are refused.
"""

import json
import os
import secrets
import zlib

import numpy as np

from . import devices
from .tensor import Tensor
from .creation import from_numpy
from .torch_format import is_torch_file, read_torch_file

__all__ = ["save", "load", "load_state_dict_file"]

# Keys under which training scripts commonly nest a state_dict in a checkpoint dict.
_STATE_DICT_KEYS = ("state_dict", "model", "net")

_FORMAT = "pyconvnet.checkpoint"
_VERSION = "1"
# safetensors' own header-size field: a little-endian uint64 before the JSON header.
_HEADER_SIZE_BYTES = 8
_PLAIN_TYPES = (type(None), bool, int, float, str)
# Device types torch knows besides the CPU: a map_location naming one asks for an accelerator.
_ACCELERATOR_TYPES = ("cuda", "mps", "xpu", "hip", "xla", "meta", "ipu", "mtia", "hpu", "privateuseone")


def save(obj, f):
    """Write ``obj`` to ``f``: a file name (str or os.PathLike), written atomically as the
    module docstring says, or a binary file object opened for writing (``io.BytesIO``, an
    ``open(..., 'wb')`` file), into which the checkpoint's bytes are written at its position.

    Unlike torch.save: dict keys must be str, int, float, bool or None; a Tensor referenced
    twice is stored twice; gradients and autograd history are not saved (``requires_grad``
    is); dicts load as plain dicts (an OrderedDict comes back as a dict, in the same order).
    Anything else (objects, sets, bytes, object arrays) raises TypeError naming where it is:
    a whole model or optimiser (torch.save pickles it) is saved as its ``state_dict()``.
    """
    from safetensors.numpy import save as serialise  # a core dependency, imported when first used

    target = _file_argument(f, "save", "write")
    arrays = {}
    tree_json = json.dumps(_encode(obj, (), arrays), separators=(",", ":"))
    metadata = {"format": _FORMAT, "version": _VERSION, "tree": tree_json, "crc32": _checksum(tree_json, arrays)}
    data = serialise(arrays, metadata=metadata)
    if isinstance(target, str):
        _write_atomically(target, data)
    else:
        target.write(data)


def load(f, map_location=None, *, weights_only=None, mmap=None):
    """The object ``save`` wrote to ``f`` (a file name, or a binary file object read from its
    position): Tensors come back as Tensors (dtype and ``requires_grad`` kept), arrays as arrays.

    ``map_location`` is accepted in each of torch's forms: ``'cpu'`` or a device (str or device
    object), a dict from saved locations to targets, or a function ``(tensor, 'cpu')`` returning
    the tensor to use (None keeps the loaded one). GPU tensors are saved as host copies with
    their device recorded; without ``map_location`` each tensor loads back on its saved device
    when that device is available here, else on the CPU (so a checkpoint written from a GPU run
    loads on a CPU-only machine). A location naming an accelerator this build or machine cannot
    use raises RuntimeError. ``weights_only`` is accepted and both values load the same way:
    pyconvnet's format holds no pickled code, and torch.save files are always read with the
    restricted unpickler (as torch's ``weights_only=True``). ``mmap=True`` is accepted
    with a file name (as torch requires one) but the arrays are read into memory either way.
    """
    source = _file_argument(f, "load", "read")
    place = _placement(map_location)  # checks the location before the file is read
    if mmap and not isinstance(source, str):
        raise ValueError("load: f must be a file name (str or os.PathLike) to use the mmap argument")
    if isinstance(source, str):
        name = source
        with open(source, "rb") as file:
            data = file.read()
    else:
        name = str(getattr(source, "name", f"<{type(source).__name__}>"))
        data = source.read()
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"load: {name} must be opened in binary mode ('rb'), its read() gave {type(data).__name__}")
    return _read(data, name, place)


def _read(data, name, place):
    """The object in the bytes ``data`` of a pyconvnet checkpoint or a torch.save file."""
    from safetensors.numpy import load as deserialise

    # A safetensors header size can begin with a pickle's first bytes: try our format first.
    if not _is_ours(data, name) and is_torch_file(data):
        return _map_tensors(read_torch_file(data, name), place)
    metadata = _read_metadata(data, name)
    try:
        arrays = deserialise(data)
    except Exception as error:  # safetensors raises its own SafetensorError for malformed files
        raise ValueError(f"{name}: corrupt checkpoint: {error}") from None
    tree_json = metadata.get("tree")
    if not isinstance(tree_json, str) or metadata.get("crc32") != _checksum(tree_json, arrays):
        raise ValueError(f"{name}: corrupt checkpoint: checksum mismatch")
    try:
        return _decode(json.loads(tree_json), arrays, name, place)
    except _MapLocationError:
        raise
    except (KeyError, TypeError, json.JSONDecodeError) as error:
        raise ValueError(f"{name}: corrupt checkpoint structure: {error!r}") from None


def load_state_dict_file(path):
    """The state_dict (name -> Tensor) in the file ``path``: a torch.save file (``.pth``/``.pt``),
    a pyconvnet checkpoint or a plain ``.safetensors`` file. A checkpoint dict holding the
    state_dict under ``'state_dict'``, ``'model'`` or ``'net'`` is unwrapped, and a ``module.``
    prefix on every key (left by DataParallel) is stripped."""
    path = os.fspath(path)
    with open(path, "rb") as file:
        data = file.read()
    if _is_ours(data, path) or is_torch_file(data):
        value = _read(data, path, lambda tensor, location: tensor)  # weights load on the CPU
    else:
        from safetensors import SafetensorError
        from safetensors.numpy import load as deserialise
        try:
            value = {key: from_numpy(array) for key, array in deserialise(data).items()}
        except SafetensorError as error:
            raise ValueError(f"{path}: not a torch.save, pyconvnet or safetensors file: {error}") from None
    if isinstance(value, dict) and not any(isinstance(item, Tensor) for item in value.values()):
        nested = [value[key] for key in _STATE_DICT_KEYS if isinstance(value.get(key), dict)]
        value = nested[0] if nested else value
    if not isinstance(value, dict) or not value or not all(isinstance(item, Tensor) for item in value.values()):
        raise ValueError(f"{path}: does not hold a state_dict (a dict of tensors, possibly under "
                         f"{', '.join(repr(key) for key in _STATE_DICT_KEYS)})")
    if all(isinstance(key, str) and key.startswith("module.") for key in value):
        value = {key[len("module."):]: item for key, item in value.items()}
    return dict(value)


def _file_argument(f, caller, mode):
    """``f`` as a file-name str, or the file object itself when it has the method ``mode``."""
    if isinstance(f, (str, os.PathLike)):
        return os.fspath(f)
    if callable(getattr(f, mode, None)):
        return f
    raise TypeError(
        f"{caller}: f must be a file name (str or os.PathLike) or a binary file object with a {mode}() "
        f"method, got {type(f).__name__}"
    )


# --------------------------------------------------------------------- map_location


def _placement(map_location):
    """``place(tensor, saved_location)``: the Tensor to return for one loaded (CPU) Tensor saved
    from ``saved_location`` ('cpu', 'cuda:0', ...), as map_location asks."""
    if map_location is None:
        return _saved_place
    if isinstance(map_location, dict):
        targets = {str(key): _check_device(value) for key, value in map_location.items()}
        return lambda tensor, location: (tensor.to(targets[location]) if location in targets
                                         else _saved_place(tensor, location))
    if isinstance(map_location, str) or hasattr(map_location, "type"):
        target = _check_device(map_location)
        return lambda tensor, location: tensor.to(target)
    if callable(map_location):
        return lambda tensor, location: _mapped(map_location, tensor, location)
    raise TypeError(
        "load: map_location must be None, a device (str or device object), a dict or a function, "
        f"got {type(map_location).__name__}"
    )


def _saved_place(tensor, location):
    """A tensor back on the device it was saved from when that is available here, else the CPU."""
    if location == "cpu":
        return tensor
    from . import cuda

    available = location.startswith("cuda") and int(location.partition(":")[2] or 0) < cuda.device_count()
    return tensor.to(location) if available else tensor


def _check_device(location):
    """The device a CPU or usable GPU location names; RuntimeError for an accelerator this build or
    machine cannot use, ValueError for anything else."""
    kind = location if isinstance(location, str) else getattr(location, "type", None)
    kind = kind.partition(":")[0] if isinstance(kind, str) else kind
    if kind == "cpu":
        return devices.CPU
    if kind in _ACCELERATOR_TYPES:
        from . import cuda

        if kind == "cuda" and cuda.is_available():
            return devices.resolve(str(location))
        reason = f" ({cuda.unavailable_reason()})" if kind == "cuda" else ""
        raise RuntimeError(
            f"load: map_location={str(location)!r} asks for a {kind} device, but pyconvnet has no GPU backend "
            f"usable here{reason}: load on the CPU (pass map_location='cpu' or leave it out)"
        )
    raise ValueError(f"load: map_location {location!r} is not a device (expected 'cpu' or a device object)")


def _map_tensors(value, place):
    """``value`` with each Tensor inside its dicts, lists and tuples (all from the CPU) replaced by
    place(tensor, 'cpu')."""
    if isinstance(value, Tensor):
        return place(value, "cpu")
    if isinstance(value, dict):
        return {key: _map_tensors(item, place) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_map_tensors(item, place) for item in value)
    return value


class _MapLocationError(TypeError):
    """A bad map_location function result (raised while decoding, not a corrupt file)."""


def _mapped(function, tensor, location):
    result = function(tensor, location)
    if result is None:
        return _saved_place(tensor, location)
    if not isinstance(result, Tensor):
        raise _MapLocationError(f"load: the map_location function must return a Tensor or None, got "
                                f"{type(result).__name__}")
    return result


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
        node = {"tensor": _add_array(value.detach().cpu().numpy(), where, arrays), "requires_grad": value.requires_grad}
        if value.is_cuda:
            node["device"] = str(value.device)
        return node
    if isinstance(value, np.ndarray):
        return {"ndarray": _add_array(value, where, arrays)}
    if isinstance(value, np.generic):
        return {"scalar": _add_array(np.asarray(value), where, arrays)}
    hint = ""
    if callable(getattr(value, "state_dict", None)):  # torch.save(model) pickles the object; this format cannot
        hint = f" (objects are not stored: save its state_dict() and load that into a new {type(value).__name__})"
    raise TypeError(f"save: cannot store {type(value).__name__} at {_place(where)}{hint}")


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


def _decode(node, arrays, path, place):
    if isinstance(node, list):
        return [_decode(item, arrays, path, place) for item in node]
    if not isinstance(node, dict):
        return node
    if len(node) == 1 and "tuple" in node:
        return tuple(_decode(item, arrays, path, place) for item in node["tuple"])
    if len(node) == 1 and "dict" in node:
        return {key: _decode(item, arrays, path, place) for key, item in node["dict"]}
    if "tensor" in node:
        tensor = place(from_numpy(_array(node["tensor"], arrays, path)), str(node.get("device", "cpu")))
        return tensor.requires_grad_(node["requires_grad"]) if tensor.is_leaf else tensor
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


def _is_ours(data, path):
    try:
        _read_metadata(data, path)
    except ValueError:
        return False
    return True


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
