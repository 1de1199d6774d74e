"""The Tensor class: storage, autograd state and the torch methods.

A Tensor wraps one numpy array, its storage, which is always C-contiguous, native-endian
and float32, int64 or bool: exactly what the C++ kernels take. The API mirrors torch's
names, argument order, defaults and semantics. Where it differs, by design:

  * permute/transpose/t/expand and non-contiguous indexing return copies, not views,
    because storage is always C-contiguous (reshape/view/flatten/squeeze/unsqueeze and
    contiguous slices still share memory, as in torch);
  * the Tensor's own in-place methods refuse any Tensor that requires grad while grad mode
    is on (torch allows it on non-leaves); ``x += y`` on such a tensor rebinds ``x`` to ``x + y``;
  * ``dtype`` is a numpy dtype and the one device is the CPU (``pyconvnet.device('cpu')``);
    int64 is the one integer dtype and float32 the one float dtype, so ``int()`` and
    ``double()`` give those.

Methods parse and check arguments, then call the differentiable ops in ``pyconvnet.ops``
(``shape``, ``arithmetic``, ``reduction``, ``indexing``, the kernel families); the creation
functions live in ``creation.py``, the ``torch.X`` forms of the methods in ``functions.py``,
printing in ``formatting.py``.
"""

import math
import warnings
from collections import namedtuple

import numpy as np

from . import _array, devices
from . import autograd as _autograd, random as _random
from .autograd import (
    RETAIN_GRAD_KEY,
    Function,
    RemovableHandle,
    backward as _autograd_backward,
    check_inplace,
    is_grad_enabled,
    register_post_accumulate_grad_hook,
)
from .formatting import format_tensor
from .ops import activation as _activation, indexing as _indexing, loss as _loss
from .ops.arithmetic import Abs, Add, Cast, Clamp, Compare, Div, Exp, Log, MatMul, Mul, Neg, Pow, Sqrt, Sub
from .ops.reduction import Extremum, ExtremumAlongDim, Mean, Sum
from .ops.shape import Clone, Expand, Index, Permute, Reshape

__all__ = ["Tensor", "Size", "float32", "int64", "bool_"]

float32 = np.dtype(np.float32)
int64 = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)
_STORAGE_DTYPES = (float32, int64, bool_)
_INT64_MAX = np.iinfo(np.int64).max

# What max(dim)/min(dim), topk and sort return, like torch.return_types.max.
MaxMinResult = namedtuple("MaxMinResult", ["values", "indices"])
TopKResult = namedtuple("TopKResult", ["values", "indices"])
SortResult = namedtuple("SortResult", ["values", "indices"])
_TYPE_NAMES = {float32: "torch.FloatTensor", int64: "torch.LongTensor", bool_: "torch.BoolTensor"}


class Size(tuple):
    """A tensor's shape: a tuple of ints (torch.Size)."""

    def numel(self):
        return math.prod(self)

    def __repr__(self):
        return f"pyconvnet.Size({list(self)})"


# ----------------------------------------------------------------------------- conversions
def _storage_dtype(source_dtype, requested):
    """The storage dtype for converting an array of ``source_dtype`` (TypeError if none)."""
    if requested is not None:
        return _resolve_dtype(requested)
    kind = source_dtype.kind
    if kind == "f":
        return float32
    if kind in "iu":
        return int64
    if kind == "b":
        return bool_
    raise TypeError(
        f"can't convert np.ndarray of type numpy.{source_dtype.type.__name__}. The only "
        f"supported types are: float16, float32, float64, int8, int16, int32, int64, uint8, "
        f"uint16, uint32, uint64 and bool."
    )


def _resolve_dtype(dtype):
    """Validate a user-given dtype; pyconvnet stores float32, int64 and bool."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be pyconvnet.float32, int64 or bool, got {dtype!r}") from None
    if resolved not in _STORAGE_DTYPES:
        raise TypeError(f"pyconvnet tensors are float32, int64 or bool, got dtype {resolved}")
    return resolved


def _convert(data, dtype=None):
    """A fresh C-contiguous, native, writable storage array holding ``data`` (on the GPU when
    ``data`` is a GPU Tensor)."""
    array = data._array if isinstance(data, Tensor) else np.asarray(data)
    if _array.on_gpu(array):
        return array.astype(_storage_dtype(array.dtype, dtype))
    target = _storage_dtype(array.dtype, dtype)
    if array.dtype == np.uint64 and array.size and array.max() > _INT64_MAX:
        raise OverflowError("uint64 value does not fit in int64")
    with np.errstate(invalid="ignore"):  # NaN -> int casts are undefined in torch too
        return np.array(array, dtype=target, order="C", copy=True)


def _as_storage(value):
    """``value`` if it is already valid storage, else a converted copy (Function outputs)."""
    if (
        type(value) is np.ndarray
        and value.dtype in _STORAGE_DTYPES
        and value.flags.c_contiguous
        and value.flags.writeable
    ) or _array.on_gpu(value):
        return value
    return _convert(value)


def _operand(value):
    """The other operand of an arithmetic op: Tensors and Python numbers pass through
    (numbers stay weakly typed, so float32 stays float32); anything else becomes a
    constant Tensor."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (Tensor, int, float)):
        return value
    return Tensor._wrap(_convert(value))


def _array_of(value):
    """The storage array of a Tensor operand, or the number itself."""
    value = _operand(value)
    return value._array if isinstance(value, Tensor) else value


def _parse_to_args(args, kwargs):
    """(device, dtype, other keywords) from the forms ``to`` takes: ``to(device)``, ``to(dtype)``,
    ``to(device, dtype)``, ``to(other_tensor)`` and the keywords; the device is resolved (None when
    not given), and ``non_blocking`` dropped (copies are ordered on the device's one stream)."""
    device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
    kwargs.pop("non_blocking", None)
    for arg in args:
        if isinstance(arg, Tensor):
            dtype, device = arg.dtype, arg.device
        elif isinstance(arg, (str, devices.device)) or (isinstance(arg, int) and not isinstance(arg, bool)):
            device = arg
        else:
            dtype = arg
    return (None if device is None else devices.resolve(device)), dtype, kwargs


# ----------------------------------------------------------------------------- argument parsing
def _size_args(size, name):
    """``f(2, 3)`` or ``f((2, 3))`` -> (2, 3), checking every entry is a non-negative int."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    for entry in size:
        if isinstance(entry, bool) or not isinstance(entry, (int, np.integer)):
            raise TypeError(f"{name}: size must be a sequence of ints, got {list(size)}")
        if entry < 0:
            raise ValueError(f"{name}: negative dimension {entry} in size {list(size)}")
    return tuple(int(entry) for entry in size)


def _shape_args(shape, name):
    """Like ``_size_args`` but allowing -1 (reshape, view, expand)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for entry in shape:
        if isinstance(entry, bool) or not isinstance(entry, (int, np.integer)):
            raise TypeError(f"{name}: shape must be a sequence of ints, got {list(shape)}")
    return tuple(int(entry) for entry in shape)


def _wrap_dim(dim, ndim):
    """Map a possibly negative dim into [0, ndim); a 0-d tensor accepts 0 and -1."""
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"dim must be an int, got {type(dim).__name__}")
    low, high = (-1, 0) if ndim == 0 else (-ndim, ndim - 1)
    if not low <= dim <= high:
        raise IndexError(
            f"Dimension out of range (expected to be in range of [{low}, {high}], but got {dim})"
        )
    return int(dim) % max(ndim, 1)


def _reduction_axes(dim, ndim):
    """numpy ``axis`` for a reduction over ``dim`` (None: all; an int, tuple or list)."""
    if dim is None:
        return None
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    axes = tuple(_wrap_dim(d, ndim) for d in dims)
    if len(set(axes)) != len(axes):
        raise ValueError(f"dim {list(dims)} names a dimension more than once")
    return () if ndim == 0 else tuple(sorted(axes))


def _index_key(key):
    """Replace Tensors inside an indexing key by their arrays (numpy indexes the rest)."""
    if isinstance(key, tuple):
        return tuple(_index_key(k) for k in key)
    if isinstance(key, Tensor):
        if key.dtype == float32:
            raise IndexError("tensors used as indices must be long or bool tensors")
        return key._array
    return key


def _bool_mask(mask, name):
    if not isinstance(mask, Tensor) or mask.dtype != bool_:
        raise TypeError(f"{name}: mask must be a bool Tensor, got "
                        f"{mask.dtype if isinstance(mask, Tensor) else type(mask).__name__}")
    return mask._array


def _sorted_indices(array, dim, descending):
    """int64 indices that sort ``array`` along ``dim``; equal entries keep their order."""
    if array.ndim == 0:
        return _array.zeros((), int64, array)
    if _array.on_gpu(array):
        return _cuda_array().CudaArray(_cuda().sort(array.device_array, dim, descending)[1])
    keys = array
    if descending:
        keys = ~array if array.dtype == bool_ else -array
    return np.argsort(keys, axis=dim, kind="stable").astype(int64)


def _cuda():
    from .cuda import _required

    return _required()


def _cuda_array():
    from .cuda import array

    return array


def _to_device(array, device):
    """``array`` copied to ``device`` (itself when it is there already)."""
    if device.type == "cpu":
        return array.get() if _array.on_gpu(array) else array
    if _array.on_gpu(array):
        if array.device == device.index:
            return array
        moved = _cuda_array().empty(array.shape, array.dtype, device.index)
        _cuda().copy_(moved.device_array, array.device_array)
        return moved
    return _cuda_array().from_numpy(array, device.index)


# ----------------------------------------------------------------------------- the Tensor
class Tensor:
    """An n-dimensional float32/int64/bool array with reverse-mode autograd (torch.Tensor).

    ``Tensor(data)`` copies ``data`` as float32 and ``Tensor(*sizes)`` is uninitialised
    float32, like torch's legacy constructor; prefer ``pyconvnet.tensor`` and friends.
    """

    # Make numpy's binary operators (ndarray + Tensor) defer to Tensor's reflected ones.
    __array_priority__ = 1000

    def __init__(self, *args):
        if args and all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in args):
            array = np.empty(_size_args(args, "Tensor"), dtype=float32)
        elif len(args) == 1:
            array = _convert(args[0], float32)
        elif not args:
            array = np.empty((0,), dtype=float32)
        else:
            raise TypeError("Tensor(data) or Tensor(*sizes) expected")
        self._init(array, False)

    def _init(self, array, requires_grad):
        self._array = array
        self._requires_grad = requires_grad
        self._grad = None
        self._grad_fn = None
        self._output_nr = 0
        self._hooks = None  # a leaf's gradient hooks (a non-leaf's live on its grad_fn)
        self._retains_grad = False

    @classmethod
    def _wrap(cls, array, requires_grad=False):
        """A Tensor adopting ``array`` (valid storage, not copied) as its storage."""
        tensor = object.__new__(cls)
        tensor._init(array, requires_grad)
        return tensor

    # --------------------------------------------------------------- properties
    @property
    def data(self):
        """A Tensor sharing this one's storage, outside the graph."""
        return Tensor._wrap(self._array)

    @data.setter
    def data(self, value):
        if not isinstance(value, Tensor):
            raise TypeError(f"data must be a Tensor, got {type(value).__name__}")
        self._array = value._array

    @property
    def shape(self):
        return Size(self._array.shape)

    def size(self, dim=None):
        if dim is None:
            return Size(self._array.shape)
        if self._array.ndim == 0:
            raise IndexError(f"dimension specified as {dim} but tensor has no dimensions")
        return self._array.shape[_wrap_dim(dim, self._array.ndim)]

    @property
    def ndim(self):
        return self._array.ndim

    def dim(self):
        return self._array.ndim

    def numel(self):
        return self._array.size

    @property
    def dtype(self):
        return self._array.dtype

    @property
    def device(self):
        return devices.of_array(self._array)

    @property
    def is_cuda(self):
        return _array.on_gpu(self._array)

    @property
    def is_cpu(self):
        return not _array.on_gpu(self._array)

    def get_device(self):
        """The GPU ordinal, or -1 for the CPU (as torch)."""
        return self._array.device if _array.on_gpu(self._array) else -1

    @property
    def grad_fn(self):
        return self._grad_fn

    @property
    def is_leaf(self):
        return self._grad_fn is None

    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        if self._grad_fn is not None:
            raise RuntimeError(
                "you can only change requires_grad flags of leaf variables. If you want to use "
                "a computed variable in a subgraph that doesn't require differentiation use "
                "var_no_grad = var.detach()."
            )
        if value and self._array.dtype != float32:
            raise RuntimeError("only Tensors of floating point dtype can require gradients")
        self._requires_grad = bool(value)

    def requires_grad_(self, requires_grad=True):
        self.requires_grad = requires_grad
        return self

    @property
    def grad(self):
        if self._grad_fn is not None and not self._retains_grad:
            warnings.warn(
                "The .grad attribute of a Tensor that is not a leaf Tensor is being accessed. "
                "Its .grad attribute won't be populated during autograd.backward().",
                UserWarning,
                stacklevel=2,
            )
        return self._grad

    @grad.setter
    def grad(self, value):
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(
                    "assigned grad expected to be a Tensor or None but got grad of type "
                    f"{type(value).__name__}"
                )
            if value._array.shape != self._array.shape:
                raise ValueError(
                    f"attempting to assign a gradient of size {list(value.shape)} to a tensor "
                    f"of size {list(self.shape)}"
                )
            if value._array.dtype != self._array.dtype:
                raise TypeError(
                    f"attempting to assign a gradient with dtype {value.dtype} to a tensor "
                    f"with dtype {self.dtype}"
                )
        self._grad = value

    # --------------------------------------------------------------- autograd
    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is computed in backward; a returned
        Tensor replaces the gradient. Returns a handle whose ``remove()`` unregisters it."""
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self._grad_fn is None:
            if self._hooks is None:
                self._hooks = {}
            hooks = self._hooks
        else:
            node = self._grad_fn
            if node._output_hooks is None:
                node._output_hooks = {}
            hooks = node._output_hooks.setdefault(self._output_nr, {})
        handle = RemovableHandle(hooks)
        hooks[handle.id] = hook
        return handle

    # hook(tensor) once this pass's gradient is summed into .grad (see autograd's function).
    register_post_accumulate_grad_hook = register_post_accumulate_grad_hook

    def retain_grad(self):
        """Keep this non-leaf tensor's gradient in ``.grad`` after backward (leaves always do)."""
        if self._grad_fn is None or self._retains_grad:
            return
        if not self._requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")

        def keep(grad):
            if self._grad is None:
                self._grad = Tensor._wrap(grad._array.copy())
            else:
                np.add(self._grad._array, grad._array, out=self._grad._array)

        handle = self.register_hook(keep)
        hooks = self._grad_fn._output_hooks[self._output_nr]
        hooks[RETAIN_GRAD_KEY] = hooks.pop(handle.id)
        self._retains_grad = True

    @property
    def retains_grad(self):
        return self._retains_grad

    def backward(self, gradient=None, retain_graph=None):
        """Accumulate d(self)/d(leaf) into the leaves' ``.grad``; see ``autograd.backward``."""
        _autograd_backward((self,), (gradient,), retain_graph)

    def detach(self):
        return Tensor._wrap(self._array)

    def detach_(self):
        self._grad_fn = None
        self._requires_grad = False
        return self

    def clone(self):
        return Clone.apply(self)

    # --------------------------------------------------------------- conversion
    def numpy(self):
        """The storage array itself (shared, like torch); a GPU tensor must be copied with ``cpu()`` first."""
        if _array.on_gpu(self._array):
            raise TypeError(f"can't convert {self.device} device type tensor to numpy. Use Tensor.cpu() to copy "
                            f"the tensor to host memory first.")
        if self._requires_grad:
            raise RuntimeError(
                "Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() "
                "instead."
            )
        return self._array

    def __array__(self, dtype=None, copy=None):
        array = self.numpy()
        if dtype is not None and np.dtype(dtype) != array.dtype:
            if copy is False:
                raise ValueError(f"converting a {array.dtype} Tensor to {dtype} needs a copy")
            return array.astype(dtype)
        return array.copy() if copy else array

    def item(self):
        if self._array.size != 1:
            raise RuntimeError(
                f"a Tensor with {self._array.size} elements cannot be converted to Scalar"
            )
        return self._array.item()

    def tolist(self):
        return self._array.tolist()

    def contiguous(self):
        return self

    def is_contiguous(self):
        return True

    def to(self, *args, **kwargs):
        """``to(device)``, ``to(dtype)``, ``to(device, dtype)``, ``to(other)``, with torch's keywords.
        A move to another device is a copy outside the graph's gradient flow only when this tensor
        does not require grad; otherwise it is recorded (gradients flow back to this device)."""
        device, dtype, kwargs = _parse_to_args(args, kwargs)
        copy = kwargs.pop("copy", False)
        if kwargs:
            raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
        result = self if dtype is None else self._cast(dtype)
        if device is not None and device != result.device:
            result = ToDevice.apply(result, device)
        return result.clone() if copy and result is self else result

    def cpu(self):
        return self.to(devices.CPU)

    def cuda(self, device=None, non_blocking=False):
        return self.to(devices.device("cuda") if device is None else devices.device(device))

    def float(self):
        return self._cast(float32)

    def long(self):
        return self._cast(int64)

    def int(self):
        """int64: the one integer dtype (torch's ``int()`` gives int32)."""
        return self._cast(int64)

    def bool(self):
        return self._cast(bool_)

    def double(self):
        """float32: the one float dtype (torch's ``double()`` gives float64)."""
        return self._cast(float32)

    def type_as(self, other):
        return self._cast(other.dtype)

    def type(self, dtype=None):
        """No argument: torch's type string ('torch.FloatTensor', ...); else ``to(dtype)``."""
        if dtype is None:
            return _TYPE_NAMES[self._array.dtype]
        if isinstance(dtype, str):
            names = {name: dt for dt, name in _TYPE_NAMES.items()}
            if dtype not in names:
                raise TypeError(f"type(): unknown type {dtype!r}; expected one of {sorted(names)}")
            dtype = names[dtype]
        return self._cast(dtype)

    def _cast(self, dtype):
        dtype = _resolve_dtype(dtype)
        if dtype == self._array.dtype:
            return self
        return Cast.apply(self, dtype)


    # --------------------------------------------------------------- Python protocols
    __hash__ = object.__hash__

    def __len__(self):
        if self._array.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._array.shape[0]

    def __iter__(self):
        if self._array.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._array.shape[0]))

    def __bool__(self):
        if self._array.size != 1:
            raise RuntimeError("Boolean value of Tensor with more than one value is ambiguous")
        return bool(self._array.item())

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self._array.dtype == float32 or self._array.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self._array.item())

    def __repr__(self):
        return format_tensor(self)

    def __format__(self, format_spec):
        """A one-element tensor formats as its number (``f"{loss:.4f}"``), as in torch."""
        if self._array.ndim == 0:
            return format(self._array.item(), format_spec)
        return object.__format__(self, format_spec)

    # --------------------------------------------------------------- shape ops
    def reshape(self, *shape):
        return Reshape.apply(self, _shape_args(shape, "reshape"))

    def view(self, *shape):
        """Same as reshape: storage is always contiguous, so every view is possible."""
        return Reshape.apply(self, _shape_args(shape, "view"))

    def view_as(self, other):
        return Reshape.apply(self, other._array.shape)

    def flatten(self, start_dim=0, end_dim=-1):
        shape = self._array.shape
        if not shape:
            return Reshape.apply(self, (1,))
        start, end = _wrap_dim(start_dim, len(shape)), _wrap_dim(end_dim, len(shape))
        if start > end:
            raise ValueError("flatten() has invalid args: start_dim cannot come after end_dim")
        flat = shape[:start] + (math.prod(shape[start : end + 1]),) + shape[end + 1 :]
        return Reshape.apply(self, flat)

    def unsqueeze(self, dim):
        shape = self._array.shape
        dim = _wrap_dim(dim, len(shape) + 1)
        return Reshape.apply(self, shape[:dim] + (1,) + shape[dim:])

    def squeeze(self, dim=None):
        shape = self._array.shape
        if dim is None:
            dims = range(len(shape))
        else:
            dims = _reduction_axes(dim, len(shape))
        drop = {d for d in dims if shape[d] == 1}
        return Reshape.apply(self, tuple(s for d, s in enumerate(shape) if d not in drop))

    def permute(self, *dims):
        dims = _shape_args(dims, "permute")
        ndim = self._array.ndim
        if len(dims) != ndim:
            raise ValueError(
                f"permute: dims {list(dims)} must list each of the tensor's {ndim} dimensions once"
            )
        axes = tuple(_wrap_dim(d, ndim) for d in dims)
        if sorted(axes) != list(range(ndim)):
            raise ValueError(f"permute: dims {list(dims)} repeat a dimension")
        return Permute.apply(self, axes)

    def transpose(self, dim0, dim1):
        ndim = self._array.ndim
        dim0, dim1 = _wrap_dim(dim0, ndim), _wrap_dim(dim1, ndim)
        axes = list(range(ndim))
        if ndim:
            axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
        return Permute.apply(self, tuple(axes))

    def t(self):
        if self._array.ndim > 2:
            raise ValueError(
                f"t() expects a tensor with <= 2 dimensions, but self is {self._array.ndim}D"
            )
        return self.transpose(0, -1) if self._array.ndim == 2 else self

    @property
    def T(self):
        """The dimensions reversed (torch deprecates it beyond 2-D but still does this)."""
        return Permute.apply(self, tuple(reversed(range(self._array.ndim))))

    def expand_as(self, other):
        return self.expand(other._array.shape)

    def repeat(self, *sizes):
        repeats = _size_args(sizes, "repeat")
        if len(repeats) < self._array.ndim:
            raise ValueError(f"repeat: {len(repeats)} repeats {list(repeats)} for a {self._array.ndim}-D tensor "
                             f"of shape {list(self._array.shape)}: give at least one per dimension")
        return _indexing.Repeat.apply(self, repeats)

    def _slice_along(self, dim, start, stop):
        return self[(slice(None),) * dim + (slice(start, stop),)]

    def split(self, split_size_or_sections, dim=0):
        """Pieces of ``split_size`` along ``dim`` (the last may be smaller), or of the listed sizes."""
        dim = _wrap_dim(dim, self._array.ndim)
        extent = self._array.shape[dim]
        if isinstance(split_size_or_sections, (list, tuple)):
            sizes = list(split_size_or_sections)
            if sum(sizes) != extent or any(size < 0 for size in sizes):
                raise ValueError(f"split: sizes {sizes} must be non-negative and sum to {extent}, the size "
                                 f"of dim {dim} of shape {list(self._array.shape)}")
        else:
            size = split_size_or_sections
            if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size <= 0:
                raise ValueError(f"split: split_size must be a positive int, got {size!r}")
            sizes = [min(size, extent - start) for start in range(0, extent, size)] or [0]
        starts = np.cumsum([0] + sizes[:-1])
        return tuple(self._slice_along(dim, int(start), int(start) + size) for start, size in zip(starts, sizes))

    def chunk(self, chunks, dim=0):
        """At most ``chunks`` pieces of ceil(size / chunks) along ``dim``, as torch."""
        if isinstance(chunks, bool) or not isinstance(chunks, (int, np.integer)) or chunks <= 0:
            raise ValueError(f"chunk: chunks must be a positive int, got {chunks!r}")
        extent = self._array.shape[_wrap_dim(dim, self._array.ndim)]
        return self.split(max(math.ceil(extent / chunks), 1), dim)

    def unbind(self, dim=0):
        dim = _wrap_dim(dim, self._array.ndim)
        return tuple(self[(slice(None),) * dim + (i,)] for i in range(self._array.shape[dim]))

    def _index_tensor(self, index, name):
        if not isinstance(index, Tensor) or index.dtype != int64:
            raise TypeError(f"{name}: index must be an int64 Tensor, got "
                            f"{index.dtype if isinstance(index, Tensor) else type(index).__name__}")
        return index._array

    def gather(self, dim, index):
        dim = _wrap_dim(dim, self._array.ndim)
        indices = self._index_tensor(index, "gather")
        shape = self._array.shape
        if indices.ndim != len(shape) or any(n > s for axis, (n, s) in enumerate(zip(indices.shape, shape))
                                             if axis != dim):
            raise ValueError(f"gather: index of shape {list(indices.shape)} does not fit input of shape "
                             f"{list(shape)} along dims other than {dim}")
        if indices.size and (indices.min() < 0 or indices.max() >= shape[dim]):
            raise IndexError(f"gather: index out of range for dim {dim} of size {shape[dim]}")
        return _indexing.Gather.apply(self, dim, indices)

    def index_select(self, dim, index):
        dim = _wrap_dim(dim, self._array.ndim)
        indices = self._index_tensor(index, "index_select")
        if indices.ndim > 1:
            raise ValueError(f"index_select: index must be 0-D or 1-D, got shape {list(indices.shape)}")
        return self[(slice(None),) * dim + (indices.reshape(-1),)]

    def masked_fill(self, mask, value):
        """``value`` where ``mask`` (bool, broadcast to this shape) is true, else this tensor."""
        mask = _bool_mask(mask, "masked_fill")
        return _indexing.Where.apply(mask, _operand(value), self)._cast(self.dtype)

    def masked_fill_(self, mask, value):
        self._check_inplace(value)
        mask = _bool_mask(mask, "masked_fill_")
        np.copyto(self._array, _array_of(value), where=np.broadcast_to(mask, self._array.shape), casting="unsafe")
        return self

    def expand(self, *sizes):
        sizes = _shape_args(sizes, "expand")
        shape = self._array.shape
        lead = len(sizes) - len(shape)
        if lead < 0:
            raise ValueError(
                f"expand: the number of sizes provided ({len(sizes)}) must be greater or equal "
                f"to the number of dimensions in the tensor ({len(shape)})"
            )
        target = tuple(
            shape[i - lead] if size == -1 and i >= lead else size for i, size in enumerate(sizes)
        )
        if any(size < 0 for size in target):
            raise ValueError(
                f"expand: invalid sizes {list(sizes)} for a tensor of shape {list(shape)}"
            )
        return Expand.apply(self, target)

    def __getitem__(self, key):
        return Index.apply(self, _index_key(key))

    def __setitem__(self, key, value):
        self._check_inplace(value)
        self._array[_index_key(key)] = _array_of(value)

    # --------------------------------------------------------------- arithmetic
    def __add__(self, other):
        return Add.apply(self, _operand(other))

    def __radd__(self, other):
        return Add.apply(_operand(other), self)

    def __sub__(self, other):
        return Sub.apply(self, _operand(other))

    def __rsub__(self, other):
        return Sub.apply(_operand(other), self)

    def __mul__(self, other):
        return Mul.apply(self, _operand(other))

    def __rmul__(self, other):
        return Mul.apply(_operand(other), self)

    def __truediv__(self, other):
        return Div.apply(self, _operand(other))

    def __rtruediv__(self, other):
        return Div.apply(_operand(other), self)

    def __pow__(self, exponent):
        return Pow.apply(self, _operand(exponent))

    def __rpow__(self, base):
        return Pow.apply(_operand(base), self)

    def __matmul__(self, other):
        return MatMul.apply(self, _operand(other))

    def __rmatmul__(self, other):
        return MatMul.apply(_operand(other), self)

    def __neg__(self):
        return Neg.apply(self)

    def __abs__(self):
        return Abs.apply(self)

    def add(self, other):
        return self + other

    def sub(self, other):
        return self - other

    def mul(self, other):
        return self * other

    def div(self, other):
        return self / other

    def pow(self, exponent):
        return self**exponent

    def matmul(self, other):
        return self @ other

    def neg(self):
        return Neg.apply(self)

    def abs(self):
        return Abs.apply(self)

    def exp(self):
        return Exp.apply(self)

    def log(self):
        return Log.apply(self)

    def sqrt(self):
        return Sqrt.apply(self)

    def clamp(self, min=None, max=None):
        if min is None and max is None:
            raise ValueError("clamp: at least one of 'min' or 'max' must not be None")
        return Clamp.apply(self, min, max)

    clip = clamp

    def clamp_(self, min=None, max=None):
        if min is None and max is None:
            raise ValueError("clamp_: at least one of 'min' or 'max' must not be None")
        self._check_inplace()
        np.clip(self._array, min, max, out=self._array)
        return self

    def sigmoid(self):
        return _activation.sigmoid(self)

    def tanh(self):
        return _activation.tanh(self)

    def relu(self):
        return _activation.relu(self)

    def softmax(self, dim):
        return _loss.softmax(self, dim)

    def log_softmax(self, dim):
        return _loss.log_softmax(self, dim)

    # --------------------------------------------------------------- reductions
    def sum(self, dim=None, keepdim=False):
        return Sum.apply(self, _reduction_axes(dim, self._array.ndim), keepdim)

    def mean(self, dim=None, keepdim=False):
        if self._array.dtype != float32:
            raise TypeError(
                f"mean(): input dtype must be floating point, got {self._array.dtype}"
            )
        return Mean.apply(self, _reduction_axes(dim, self._array.ndim), keepdim)

    def max(self, dim=None, keepdim=False):
        """No dim: the largest element. With dim: ``(values, indices)`` along ``dim``."""
        return self._extremum(dim, keepdim, largest=True)

    def min(self, dim=None, keepdim=False):
        """No dim: the smallest element. With dim: ``(values, indices)`` along ``dim``."""
        return self._extremum(dim, keepdim, largest=False)

    def _extremum(self, dim, keepdim, largest):
        if isinstance(dim, Tensor):  # max(other): the element-wise maximum, as torch.maximum
            return self.maximum(dim) if largest else self.minimum(dim)
        if dim is None:
            return Extremum.apply(self, largest)
        if self._array.ndim == 0:
            _wrap_dim(dim, 0)
            values, indices = ExtremumAlongDim.apply(self.reshape(1), 0, False, largest)
        else:
            dim = _wrap_dim(dim, self._array.ndim)
            values, indices = ExtremumAlongDim.apply(self, dim, keepdim, largest)
        return MaxMinResult(values, indices)

    def var(self, dim=None, *, correction=1, keepdim=False, unbiased=None):
        """Variance over ``dim`` divided by N - correction (``unbiased=False`` means correction 0)."""
        if unbiased is not None:
            correction = 1 if unbiased else 0
        if self._array.dtype != float32:
            raise TypeError(f"var(): input dtype must be floating point, got {self._array.dtype}")
        axes = _reduction_axes(dim, self._array.ndim)
        count = math.prod(self._array.shape if axes is None else [self._array.shape[a] for a in axes])
        centred = self - self.mean(dim=axes, keepdim=True)
        return (centred * centred).sum(dim=axes, keepdim=keepdim) / max(count - correction, 0)

    def std(self, dim=None, *, correction=1, keepdim=False, unbiased=None):
        return self.var(dim, correction=correction, keepdim=keepdim, unbiased=unbiased).sqrt()

    def all(self, dim=None, keepdim=False):
        return Tensor._wrap(_array.asarray(np.all(self._array, axis=_reduction_axes(dim, self._array.ndim),
                                              keepdims=keepdim)))

    def any(self, dim=None, keepdim=False):
        return Tensor._wrap(_array.asarray(np.any(self._array, axis=_reduction_axes(dim, self._array.ndim),
                                              keepdims=keepdim)))

    def sort(self, dim=-1, descending=False, stable=False):
        """``(values, indices)`` along ``dim``; ties keep their order (a stable sort)."""
        dim = _wrap_dim(dim, self._array.ndim)
        indices = _sorted_indices(self._array, dim, descending)
        return SortResult(self.gather(dim, Tensor._wrap(indices)) if self._array.ndim else self.clone(),
                          Tensor._wrap(indices))

    def argsort(self, dim=-1, descending=False, stable=False):
        return Tensor._wrap(_sorted_indices(self._array, _wrap_dim(dim, self._array.ndim), descending))

    def topk(self, k, dim=-1, largest=True, sorted=True):
        """The ``k`` largest (or smallest) entries along ``dim`` as ``(values, indices)``, best first."""
        dim = _wrap_dim(dim, self._array.ndim)
        extent = self._array.shape[dim] if self._array.ndim else 1
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= extent:
            raise ValueError(f"topk: k={k!r} out of range for dim {dim} of size {extent}")
        if self._array.ndim == 0:
            return TopKResult(self.clone(), Tensor._wrap(_array.zeros((), int64, self._array)))
        indices = _array.ascontiguous(_sorted_indices(self._array, dim, largest)[(slice(None),) * dim + (slice(0, k),)])
        return TopKResult(self.gather(dim, Tensor._wrap(indices)), Tensor._wrap(indices))

    def maximum(self, other):
        return _indexing.Where.apply(self.ge(other), self, _operand(other))

    def minimum(self, other):
        return _indexing.Where.apply(self.le(other), self, _operand(other))

    def argmax(self, dim=None, keepdim=False):
        return Tensor._wrap(_arg_extremum(self._array, dim, keepdim, np.argmax))

    def argmin(self, dim=None, keepdim=False):
        return Tensor._wrap(_arg_extremum(self._array, dim, keepdim, np.argmin))

    # --------------------------------------------------------------- comparisons
    def _compare(self, ufunc, other):
        return Compare.apply(self, _operand(other), ufunc)

    def eq(self, other):
        return self._compare(np.equal, other)

    def ne(self, other):
        return self._compare(np.not_equal, other)

    def lt(self, other):
        return self._compare(np.less, other)

    def le(self, other):
        return self._compare(np.less_equal, other)

    def gt(self, other):
        return self._compare(np.greater, other)

    def ge(self, other):
        return self._compare(np.greater_equal, other)

    def __eq__(self, other):
        return False if other is None else self.eq(other)

    def __ne__(self, other):
        return True if other is None else self.ne(other)

    __lt__ = lt
    __le__ = le
    __gt__ = gt
    __ge__ = ge

    # --------------------------------------------------------------- in-place updates
    _check_inplace = check_inplace  # in-place methods are not recorded: see autograd.check_inplace

    def _fill_random_(self, draw, gpu_draw):
        """Fill from the CPU generator with ``draw(rng, shape)``, or on a GPU with
        ``gpu_draw(cuda_array_module, shape, seed, device)`` from the GPU generator."""
        self._check_inplace()
        array = self._array
        if _array.on_gpu(array):
            from .cuda import next_seed

            array[...] = gpu_draw(_cuda_array(), array.shape, next_seed(), array.device)
        else:
            array[...] = draw(_random.default_generator(), array.shape)
        return self

    def uniform_(self, from_=0.0, to=1.0):
        return self._fill_random_(lambda rng, shape: rng.uniform(from_, to, shape),
                                  lambda gpu, shape, seed, device: gpu.uniform(shape, from_, to, seed, device))

    def normal_(self, mean=0.0, std=1.0):
        return self._fill_random_(lambda rng, shape: rng.normal(mean, std, shape),
                                  lambda gpu, shape, seed, device: gpu.normal(shape, mean, std, seed, device))

    def bernoulli_(self, p=0.5):
        """Each element 1 with probability ``p`` (a number or a Tensor of probabilities), else 0."""
        probability = _array_of(p)
        return self._fill_random_(lambda rng, shape: rng.random(shape) < probability,
                                  lambda gpu, shape, seed, device: gpu.uniform(shape, 0, 1, seed, device) < probability)

    def fill_(self, value):
        self._check_inplace(value)
        self._array[...] = _array_of(value)
        return self

    def zero_(self):
        return self.fill_(0)

    def copy_(self, src):
        """Copy ``src`` (broadcast, cast, from any device) into this tensor."""
        self._check_inplace(src)
        source = _array_of(src)
        if isinstance(src, Tensor) and src.device != self.device:
            source = _to_device(source, self.device)
        np.copyto(self._array, source, casting="unsafe")
        return self

    def add_(self, other, *, alpha=1):
        self._check_inplace(other)
        other = _array_of(other)
        np.add(self._array, other if alpha == 1 else other * alpha, out=self._array)
        return self

    def sub_(self, other, *, alpha=1):
        self._check_inplace(other)
        other = _array_of(other)
        np.subtract(self._array, other if alpha == 1 else other * alpha, out=self._array)
        return self

    def mul_(self, other):
        self._check_inplace(other)
        np.multiply(self._array, _array_of(other), out=self._array)
        return self

    def div_(self, other):
        self._check_inplace(other)
        np.divide(self._array, _array_of(other), out=self._array)
        return self

    def addcmul_(self, tensor1, tensor2, *, value=1):
        """self += value * tensor1 * tensor2 (used by optimisers)."""
        self._check_inplace(tensor1, tensor2)
        product = np.multiply(_array_of(tensor1), _array_of(tensor2))
        np.add(self._array, product if value == 1 else product * value, out=self._array)
        return self

    def addcdiv_(self, tensor1, tensor2, *, value=1):
        """self += value * tensor1 / tensor2 (used by optimisers)."""
        self._check_inplace(tensor1, tensor2)
        quotient = np.divide(_array_of(tensor1), _array_of(tensor2))
        np.add(self._array, quotient if value == 1 else quotient * value, out=self._array)
        return self

    def _inplace_or_rebind(self, other, inplace, out_of_place):
        # With grad tracking needed, `x += y` rebinds x to the recorded `x + y`: the same
        # result torch gives, except that other references to the old x do not change. ONNX
        # export's tracing records it the same way where x or y comes from the traced input.
        tracer = _autograd.tracer
        if (tracer is not None and (tracer.is_traced(self) or tracer.is_traced(other))) or is_grad_enabled() and (
            self._requires_grad or (isinstance(other, Tensor) and other._requires_grad)
        ):
            if self._requires_grad and self._grad_fn is None:
                self._check_inplace()
            return out_of_place(self, other)
        return inplace(self, other)

    def __iadd__(self, other):
        return self._inplace_or_rebind(other, Tensor.add_, Tensor.__add__)

    def __isub__(self, other):
        return self._inplace_or_rebind(other, Tensor.sub_, Tensor.__sub__)

    def __imul__(self, other):
        return self._inplace_or_rebind(other, Tensor.mul_, Tensor.__mul__)

    def __itruediv__(self, other):
        return self._inplace_or_rebind(other, Tensor.div_, Tensor.__truediv__)


class ToDevice(Function):
    """A copy to another device; the gradient is copied back."""

    @staticmethod
    def forward(ctx, array, device):
        ctx.source = devices.of_array(array)
        return _to_device(array, device)

    @staticmethod
    def backward(ctx, grad):
        return _to_device(grad, ctx.source), None


def _arg_extremum(array, dim, keepdim, arg_function):
    """argmax/argmin as int64; dim=None indexes the flattened tensor."""
    if dim is None:
        index = _array.asarray(arg_function(array), int64)
        return index.reshape((1,) * array.ndim) if keepdim else index
    dim = _wrap_dim(dim, array.ndim)
    if array.ndim == 0:
        return _array.zeros((), int64, array)
    return _array.asarray(arg_function(array, axis=dim, keepdims=keepdim), int64)
