"""Reading files written by ``torch.save`` without torch and without running pickled code.

Two layouts are read: the zip archive torch.save writes by default (``<root>/data.pkl``, one
``<root>/data/<key>`` entry per storage and ``<root>/byteorder``), and the legacy stream of
pickles (``_use_new_zipfile_serialization=False``: magic number, protocol, system info, the
object, the storage keys, then each storage as an int64 element count and its raw bytes).

The pickles go through ``_RestrictedUnpickler``, whose ``find_class`` resolves only the globals
a state_dict needs (the set torch's ``weights_only=True`` loader allows for one: tensor and
parameter rebuild functions, storage types, dtypes, ``torch.device``, ``torch.Size`` and
``collections.OrderedDict``), each to a pyconvnet stand-in; any other global is refused with
UnpicklingError naming it before anything is called. Tensors come back as pyconvnet Tensors:
floating dtypes as float32 (float64, float16 and bfloat16 are rounded), integer dtypes as int64
and bool as bool; complex and quantised storages raise.
"""

import collections
import io
import pickle
import struct
import zipfile

import numpy as np

from .creation import from_numpy
from .tensor import float32

__all__ = ["is_torch_file", "read_torch_file"]

_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_STARTS = tuple(bytes([0x80, protocol]) for protocol in range(2, 6))
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
# bfloat16 has no numpy dtype: its bits are the top half of a float32's.
_BFLOAT16 = "bfloat16"
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": _BFLOAT16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
    "UntypedStorage": np.uint8,
}
_DTYPES = {
    "float32": np.float32, "float": np.float32, "float64": np.float64, "double": np.float64,
    "float16": np.float16, "half": np.float16, "bfloat16": _BFLOAT16, "int64": np.int64, "long": np.int64,
    "int32": np.int32, "int": np.int32, "int16": np.int16, "short": np.int16, "int8": np.int8,
    "uint8": np.uint8, "bool": np.bool_,
}


class _Frozen:
    """Base of the objects globals resolve to: a pickle's BUILD opcode cannot set their attributes,
    so no file can alter them for later loads."""

    __slots__ = ()

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} objects are read-only")


class _StorageType(_Frozen):
    """What a pickled ``torch.FloatStorage`` (or a dtype) global resolves to: its element type."""

    __slots__ = ("name", "dtype")

    def __init__(self, name, dtype):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "dtype", dtype)


class _Callable(_Frozen):
    """What a pickled function or class global resolves to: a read-only wrapper calling it."""

    __slots__ = ("_function",)

    def __init__(self, function):
        object.__setattr__(self, "_function", function)

    def __call__(self, *args):
        return self._function(*args)


class _Storage:
    """A loaded storage: its flat elements (in the file's own dtype)."""

    def __init__(self, array):
        self.array = array


def is_torch_file(data):
    """Whether the bytes ``data`` start like one of torch.save's formats."""
    return data.startswith(_ZIP_MAGIC) or data.startswith(_PICKLE_STARTS)


class _Refused(pickle.UnpicklingError):
    """A global outside the allowed set: passed through read_torch_file as it is."""


def read_torch_file(data, name):
    """The object torch.save wrote into the bytes ``data`` (``name`` labels errors)."""
    try:
        if data.startswith(_ZIP_MAGIC):
            return _read_zip(data, name)
        return _read_legacy(data, name)
    except _Refused:
        raise
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, KeyError, struct.error, ValueError,
            TypeError, IndexError, AttributeError) as error:
        raise ValueError(f"{name}: truncated or corrupt torch.save file: {error}") from None


def _read_zip(data, name):
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        pickles = [entry for entry in archive.namelist() if entry.endswith("/data.pkl") and entry.count("/") == 1]
        if len(pickles) != 1:
            raise ValueError(f"expected one <root>/data.pkl in the archive, found {len(pickles)}")
        root = pickles[0][: -len("data.pkl")]
        byteorder = "little"
        if root + "byteorder" in archive.namelist():
            byteorder = archive.read(root + "byteorder").decode("ascii").strip()
        if byteorder not in ("little", "big"):
            raise ValueError(f"unknown byteorder {byteorder!r}")

        loaded = {}

        def storage(record):
            kind, storage_type, key, _location, numel = record[:5]
            if kind != "storage" or not isinstance(storage_type, _StorageType):
                raise ValueError(f"unexpected persistent record {record!r}")
            if key not in loaded:  # tensors sharing a storage share its one read
                raw = archive.read(f"{root}data/{key}")
                loaded[key] = _Storage(_flat_array(raw, storage_type, byteorder, numel))
            return loaded[key]

        return _RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), storage).load()


def _read_legacy(data, name):
    stream = io.BytesIO(data)
    header = _RestrictedUnpickler(stream, _no_storage)
    if header.load() != _LEGACY_MAGIC:
        raise ValueError("not a torch.save file (wrong magic number)")
    if _RestrictedUnpickler(stream, _no_storage).load() != _LEGACY_PROTOCOL:
        raise ValueError("unsupported legacy protocol version")
    sys_info = _RestrictedUnpickler(stream, _no_storage).load()
    byteorder = "little" if not isinstance(sys_info, dict) or sys_info.get("little_endian", True) else "big"
    records = {}

    def remember(record):
        # The storages follow the object in the file: keep a placeholder filled in below.
        kind, storage_type, key, _location, _numel = record[:5]
        view = record[5] if len(record) > 5 else None
        if kind != "storage" or not isinstance(storage_type, _StorageType):
            raise ValueError(f"unexpected persistent record {record!r}")
        if view is not None:
            raise ValueError("storage views in legacy files are not supported")
        return records.setdefault(key, (storage_type, _Storage(None)))[1]

    result = _RestrictedUnpickler(stream, remember).load()
    keys = _RestrictedUnpickler(stream, _no_storage).load()
    for key in keys:
        count = struct.unpack("<q" if byteorder == "little" else ">q", stream.read(8))[0]
        if key not in records:
            raise ValueError(f"storage {key!r} is not referenced by the object")
        storage_type, storage = records[key]
        itemsize = 2 if storage_type.dtype == _BFLOAT16 else np.dtype(storage_type.dtype).itemsize
        storage.array = _flat_array(stream.read(count * itemsize), storage_type, byteorder, count)
    if any(storage.array is None for _type, storage in records.values()):
        raise ValueError("a storage referenced by the object is missing")
    return _materialise(result)


def _no_storage(record):
    raise ValueError(f"unexpected persistent record {record!r}")


def _flat_array(raw, storage_type, byteorder, numel):
    order = "<" if byteorder == "little" else ">"
    if storage_type.dtype == _BFLOAT16:
        bits = np.frombuffer(raw, dtype=order + "u2").astype(np.uint32) << 16
        array = bits.view(np.float32)
    else:
        array = np.frombuffer(raw, dtype=np.dtype(storage_type.dtype).newbyteorder(order))
    if array.size != numel:
        raise ValueError(f"storage holds {array.size} elements, expected {numel}")
    return array


class _PendingTensor:
    """A legacy-format tensor whose storage bytes come after the pickle: built by _materialise."""

    def __init__(self, storage, offset, size, stride, requires_grad):
        self.args = (storage, offset, size, stride, requires_grad)


def _materialise(value):
    if isinstance(value, _PendingTensor):
        return _tensor(*value.args)
    if isinstance(value, dict):
        return type(value)((key, _materialise(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_materialise(item) for item in value)
    return value


def _tensor(storage, offset, size, stride, requires_grad):
    flat = storage.array
    size, stride = tuple(int(n) for n in size), tuple(int(n) for n in stride)
    if len(size) != len(stride) or offset < 0 or any(n < 0 for n in size):
        raise ValueError(f"bad tensor view: offset {offset}, size {size}, stride {stride}")
    if 0 not in size:
        last = offset + sum((n - 1) * step for n, step in zip(size, stride))
        if last >= flat.size or any(step < 0 for step in stride):
            raise ValueError(f"tensor view (offset {offset}, size {size}, stride {stride}) "
                             f"exceeds its storage of {flat.size} elements")
        view = np.lib.stride_tricks.as_strided(
            flat[offset:], shape=size, strides=[step * flat.itemsize for step in stride], writeable=False)
    else:
        view = np.empty(size, dtype=flat.dtype)
    if view.dtype.kind == "c":
        raise TypeError(f"complex tensors ({view.dtype}) cannot be represented in pyconvnet")
    tensor = from_numpy(np.array(view, dtype=view.dtype.newbyteorder("="), order="C"))
    if requires_grad and tensor.dtype == float32:
        tensor.requires_grad_(True)
    return tensor


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, *_hooks_and_metadata):
    if storage.array is None:
        return _PendingTensor(storage, offset, size, stride, requires_grad)
    return _tensor(storage, offset, size, stride, requires_grad)


def _rebuild_tensor_v1(storage, offset, size, stride):
    return _rebuild_tensor(storage, offset, size, stride)


def _rebuild_parameter(data, requires_grad, _hooks, _state=None):
    if isinstance(data, _PendingTensor):
        data.args = (*data.args[:4], requires_grad)
        return data
    if requires_grad and data.dtype == float32:
        data.requires_grad_(True)
    return data


def _device(*args):
    return ":".join(str(arg) for arg in args)


def _size(*args):
    return tuple(*args)


_ALLOWED = {
    ("collections", "OrderedDict"): _Callable(collections.OrderedDict),
    ("torch._utils", "_rebuild_tensor_v2"): _Callable(_rebuild_tensor),
    ("torch._utils", "_rebuild_tensor"): _Callable(_rebuild_tensor_v1),
    ("torch._utils", "_rebuild_parameter"): _Callable(_rebuild_parameter),
    ("torch._utils", "_rebuild_parameter_with_state"): _Callable(_rebuild_parameter),
    ("torch", "device"): _Callable(_device),
    ("torch", "Size"): _Callable(_size),
    **{("torch", storage): _StorageType(storage, dtype) for storage, dtype in _STORAGE_DTYPES.items()},
    ("torch.storage", "UntypedStorage"): _StorageType("UntypedStorage", np.uint8),
    **{("torch", dtype): _StorageType(dtype, numpy_dtype) for dtype, numpy_dtype in _DTYPES.items()},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler resolving only the globals in ``_ALLOWED``; ``persistent_load`` is given."""

    def __init__(self, file, persistent_load):
        super().__init__(file)
        self._storage = persistent_load

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise _Refused(
                f"refusing to load the global {module}.{name}: a torch.save file may only hold tensors, "
                "storages and plain containers (what torch.load(weights_only=True) accepts), since "
                "unpickling anything else could run arbitrary code"
            ) from None

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid:
            raise ValueError(f"unexpected persistent record {pid!r}")
        return self._storage(pid)
