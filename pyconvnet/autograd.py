"""Reverse-mode autograd: grad mode, the ``Function`` base class and the backward engine.

Every differentiable op is a ``Function`` subclass whose ``forward``/``backward`` work on
numpy arrays (the C++ kernels' currency), not on Tensors::

    class Scale(Function):
        @staticmethod
        def forward(ctx, x, factor):        # x: np.ndarray, factor: as given
            ctx.factor = factor
            return x * factor
        @staticmethod
        def backward(ctx, grad_out):        # one array per output
            return grad_out * ctx.factor, None

    y = Scale.apply(x_tensor, 2.0)

``apply`` unwraps Tensor arguments, runs ``forward`` and, when grad mode is on and some
Tensor argument requires grad, records the call: the ``ctx`` object becomes the outputs'
``grad_fn`` node. ``Tensor.backward`` walks those nodes in topological order without
recursion, so graphs thousands of ops deep are fine.

Differences from torch, by design: forward/backward see arrays, so a backward graph cannot
be differentiated again (no ``create_graph``), and there are no in-place version counters.
``Tensor.register_hook`` hooks run as the gradient reaches the tensor, before it flows on;
``register_post_accumulate_grad_hook`` hooks run once a leaf's ``.grad`` holds this pass's sum,
and ``queue_callback`` runs a function when the current backward pass ends (what
``DistributedDataParallel`` builds on).
"""

import functools
import itertools
import threading

import numpy as np

from . import _C, _array

__all__ = [
    "Function",
    "FunctionCtx",
    "backward",
    "no_grad",
    "enable_grad",
    "set_grad_enabled",
    "is_grad_enabled",
    "queue_callback",
    "register_post_accumulate_grad_hook",
]

_FLOAT32 = np.dtype(np.float32)
_NDARRAY = np.ndarray

# Marks a positional forward argument that was not a Tensor, so it may not get a gradient.
_NOT_A_TENSOR = object()

_FREED_GRAPH_MESSAGE = (
    "Trying to backward through the graph a second time (or directly access saved tensors "
    "after they have already been freed). Saved intermediate values of the graph are freed "
    "when you call .backward(). Specify retain_graph=True if you need to backward through "
    "the graph a second time or if you need to access saved tensors after calling backward."
)


# ----------------------------------------------------------------------------- grad mode
class _GradMode(threading.local):
    """Thread-local like torch: each thread starts with grad mode on. A class default, read on every
    op: a ``getattr`` default would raise and catch an AttributeError each time until a thread
    first sets the mode (0.35 us)."""

    enabled = True


_grad_mode = _GradMode()


def is_grad_enabled():
    """True when ops record the graph for backward (the default)."""
    return _grad_mode.enabled


def _set_grad_mode(enabled):
    _grad_mode.enabled = enabled


class _GradModeContext:
    """Sets grad mode inside a ``with`` block or a decorated function, then restores it."""

    _enabled = True

    def __new__(cls, orig_func=None):
        # Bare ``@no_grad`` (no parentheses) hands us the function directly.
        if orig_func is None:
            return super().__new__(cls)
        if not callable(orig_func):
            raise TypeError(f"{cls.__name__}() takes no arguments")
        return cls()(orig_func)

    def __init__(self, orig_func=None):
        self._previous = []

    def __enter__(self):
        self._previous.append(is_grad_enabled())
        _set_grad_mode(self._enabled)

    def __exit__(self, exc_type, exc_value, traceback):
        _set_grad_mode(self._previous.pop())

    def __call__(self, func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with self._fresh():  # a fresh context per call keeps threads and recursion apart
                return func(*args, **kwargs)

        return wrapper

    def _fresh(self):
        return type(self)()


class no_grad(_GradModeContext):
    """Context manager and decorator that turns graph recording off (torch.no_grad)."""

    _enabled = False


class enable_grad(_GradModeContext):
    """Context manager and decorator that turns graph recording on (torch.enable_grad)."""

    _enabled = True


class inference_mode(_GradModeContext):
    """torch.inference_mode: no graph recording inside. pyconvnet has no separate inference
    tensors, so this is ``no_grad``; ``inference_mode(False)`` leaves grad mode as it is."""

    def __new__(cls, mode=True):
        if callable(mode):  # bare ``@inference_mode``
            return cls()(mode)
        return object.__new__(cls)

    def __init__(self, mode=True):
        super().__init__()
        self._mode = bool(mode)

    def __enter__(self):
        self._previous.append(is_grad_enabled())
        _set_grad_mode(self._previous[-1] and not self._mode)

    def _fresh(self):
        return type(self)(self._mode)


class set_grad_enabled:
    """Set grad mode now; used as a context manager, restore the previous mode on exit."""

    def __init__(self, mode):
        if not isinstance(mode, bool):
            raise TypeError(f"set_grad_enabled expected a bool, got {type(mode).__name__}")
        self._previous = is_grad_enabled()
        _set_grad_mode(mode)

    def __enter__(self):
        pass

    def __exit__(self, exc_type, exc_value, traceback):
        _set_grad_mode(self._previous)


def check_inplace(target, *operands, op=None, recorded=False):
    """Refuse an in-place write to ``target`` where it would make gradients wrong, as torch does.

    A leaf that requires grad is never written in place. Ops that autograd records (the in-place
    activations: their Function saves what backward needs) may overwrite a non-leaf. The Tensor's
    own in-place methods (``add_``, ``masked_fill_``, ``x[i] = v``, ...) are not recorded, so they
    also refuse a non-leaf that requires grad and an operand that requires grad.
    """
    if tracer is not None and not recorded:
        tracer.check_inplace(target, operands, op)
    if not is_grad_enabled():
        return
    prefix = f"{op}: " if op else ""
    if target.requires_grad:
        if target.is_leaf:
            raise RuntimeError(f"{prefix}a leaf Variable that requires grad is being used in an in-place operation.")
        if not recorded:
            raise RuntimeError(f"{prefix}pyconvnet does not record in-place operations on a Tensor that requires "
                               "grad; use the out-of-place op (x = x + y) instead")
    if not recorded and any(getattr(operand, "requires_grad", False) for operand in operands):
        raise RuntimeError(f"{prefix}an in-place operation would drop the gradient of an operand that requires "
                           "grad; use the out-of-place op or wrap the update in pyconvnet.no_grad()")


# ----------------------------------------------------------------------------- tracing
# The recorder of ``pyconvnet.onnx.export`` while it traces a model, else None: ``Function.apply``
# hands it every call, and an in-place Tensor method it is not told about raises there.
tracer = None


# ----------------------------------------------------------------------------- hooks
class RemovableHandle:
    """Returned by ``Tensor.register_hook`` and the Module hook registrations; ``remove()`` undoes
    the registration. Also a context manager that removes the hook on exit."""

    _next_id = itertools.count()

    def __init__(self, hooks):
        self._hooks = hooks
        self.id = next(RemovableHandle._next_id)

    def remove(self):
        self._hooks.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        self.remove()


def register_post_accumulate_grad_hook(tensor, hook):
    """torch's ``Tensor.register_post_accumulate_grad_hook``: ``hook(tensor)`` runs once per backward
    pass that sends gradient to the leaf ``tensor``, after all of that pass's gradient has been added
    into ``tensor.grad``. Returns a RemovableHandle."""
    if not tensor._requires_grad:
        raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
    if tensor._grad_fn is not None:
        raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf tensors")
    global _post_accumulate_hooks_registered
    _post_accumulate_hooks_registered = True
    hooks = tensor.__dict__.setdefault("_post_accumulate_grad_hooks", {})
    handle = RemovableHandle(hooks)
    hooks[handle.id] = hook
    return handle


# Whether any post-accumulate hook was ever registered: until then backward passes skip their
# bookkeeping for every leaf.
_post_accumulate_hooks_registered = False


def _post_accumulate_hooks(tensor):
    return tensor.__dict__.get("_post_accumulate_grad_hooks")


# The callbacks queued during the running backward pass (None outside one); per thread.
_backward_pass = threading.local()


def queue_callback(callback):
    """Run ``callback()`` when the backward pass now running ends (after every leaf's ``.grad`` is
    written), as torch's ``Variable._execution_engine.queue_callback``; only valid inside backward,
    e.g. from a gradient hook."""
    callbacks = getattr(_backward_pass, "callbacks", None)
    if callbacks is None:
        raise RuntimeError("queue_callback can only be called during the backward pass")
    callbacks.append(callback)



# ----------------------------------------------------------------------------- graph nodes
class FunctionCtx:
    """The ``ctx`` handed to ``forward``/``backward``; once recorded, also the ``grad_fn`` node.

    Public: ``save_for_backward``, ``saved_tensors``, ``needs_input_grad``,
    ``mark_non_differentiable`` and any attribute you set. After a backward pass without
    ``retain_graph`` the node is released: saved arrays and your attributes are dropped.
    """

    # Engine bookkeeping lives in slots so user attributes (in __dict__) cannot clash with it
    # and can be dropped wholesale on release.
    __slots__ = (
        "__dict__",
        "__weakref__",
        "needs_input_grad",
        "_function",
        "_saved",
        "_non_differentiable",
        "_edges",
        "_input_shapes",
        "_output_shapes",
        "_output_hooks",
        "_released",
    )

    def __init__(self, function, needs_input_grad):
        self._function = function
        self.needs_input_grad = needs_input_grad
        self._saved = ()
        self._non_differentiable = ()
        self._output_hooks = None  # {output index: {handle id: hook}} from Tensor.register_hook
        self._released = False

    def save_for_backward(self, *arrays):
        """Keep arrays (or None) for ``backward``; read them back from ``saved_tensors``."""
        self._saved = arrays

    @property
    def saved_tensors(self):
        if self._released:
            raise RuntimeError(_FREED_GRAPH_MESSAGE)
        return self._saved

    def mark_non_differentiable(self, *outputs):
        """Mark output arrays (the very objects ``forward`` returns) as not differentiable."""
        self._non_differentiable = outputs

    def name(self):
        return self._function.__name__ + "Backward"

    @property
    def next_functions(self):
        """Per positional input: ``(node, output_index)``, ``(AccumulateGrad, 0)`` for a leaf,
        or ``(None, 0)``."""
        functions = []
        for edge in self._edges:
            if edge is None:
                functions.append((None, 0))
            elif isinstance(edge[0], FunctionCtx):
                functions.append(edge)
            else:
                functions.append((AccumulateGrad(edge[0]), 0))
        return tuple(functions)

    def _release(self):
        self._saved = ()
        self.__dict__.clear()
        self._released = True

    def __repr__(self):
        return f"<{self.name()} object at {id(self):#x}>"


class AccumulateGrad:
    """What ``next_functions`` shows for a leaf: the tensor whose ``.grad`` receives gradient."""

    __slots__ = ("variable",)

    def __init__(self, variable):
        self.variable = variable

    def name(self):
        return "AccumulateGrad"

    def __repr__(self):
        return f"<AccumulateGrad object at {id(self):#x}>"


class Function:
    """Base class for differentiable ops; subclass and define static forward/backward.

    Contract:
      * ``forward(ctx, *args, **kwargs)``: Tensor arguments arrive as their C-contiguous
        storage arrays (treat them as read-only), everything else as given. Return one
        np.ndarray or a tuple of them. Float outputs are differentiable unless passed to
        ``ctx.mark_non_differentiable``; int64/bool outputs never are. float64 results are
        stored as float32.
      * ``backward(ctx, *grad_outputs)``: one C-contiguous float32 array per output (zeros
        when an output received no gradient), read-only because it may be shared.
        Return one gradient (or None) per positional forward argument; a shorter tuple means
        the missing trailing entries are None. Only Tensor arguments may get a gradient. A
        gradient whose shape broadcasts to the argument's shape is summed down to it.
        A kernel output returned once is handed over: the engine may keep it as a leaf's
        ``.grad`` and add into it later, so do not keep it (see ``_owned_by_engine``).
      * ``ctx.needs_input_grad[i]`` says whether argument ``i`` needs a gradient; skip the
        work for those that do not.
    """

    def __init__(self, *args, **kwargs):
        name = type(self).__name__
        raise RuntimeError(f"{name} is not instantiated; call {name}.apply(...)")

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("Function subclasses must implement forward")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("Function subclasses must implement backward")

    @classmethod
    def apply(cls, *args, **kwargs):
        # Every op of a step runs this: lists made whole and filled where a Tensor is (most
        # arguments of the layer ops are strides, paddings and flags) cost less than appends.
        tensor_type = _tensor.Tensor
        grad_mode = is_grad_enabled()
        record = on_gpu = False
        count = len(args)
        arrays = list(args)
        needs_input_grad = [False] * count
        edges = [None] * count
        input_shapes = [_NOT_A_TENSOR] * count
        for index, arg in enumerate(args):
            if not isinstance(arg, tensor_type):
                continue
            array = arrays[index] = arg._array
            if type(array) is not _NDARRAY:
                on_gpu = True
            if grad_mode and arg._requires_grad:
                record = needs_input_grad[index] = True
                # where its gradient goes: its producer's output slot, or the leaf itself
                edges[index] = (arg, 0) if arg._grad_fn is None else (arg._grad_fn, arg._output_nr)
                input_shapes[index] = array.shape
            else:
                input_shapes[index] = None
        if on_gpu:
            _check_devices(args, arrays, tensor_type)
        ctx = FunctionCtx(cls, tuple(needs_input_grad))

        raw = cls.forward(ctx, *arrays, **kwargs)
        single = not isinstance(raw, tuple)
        raw_outputs = (raw,) if single else raw
        non_differentiable = ()
        if ctx._non_differentiable:  # needed only here; kept, they would outlive backward
            non_differentiable = {id(a) for a in ctx._non_differentiable}
            ctx._non_differentiable = ()
        outputs, output_shapes = [], []
        for index, raw_output in enumerate(raw_outputs):
            array = _tensor._as_storage(raw_output)
            differentiable = (
                record and array.dtype == _FLOAT32 and id(raw_output) not in non_differentiable
            )
            output = tensor_type._wrap(array, differentiable)
            if differentiable:
                output._grad_fn = ctx
                output._output_nr = index
            outputs.append(output)
            output_shapes.append(array.shape)

        if record:
            ctx._edges = tuple(edges)
            ctx._input_shapes = tuple(input_shapes)
            ctx._output_shapes = tuple(output_shapes)

        if tracer is not None:  # pyconvnet.onnx.export is recording the graph
            tracer.record(cls, args, kwargs, outputs)
        return outputs[0] if single else tuple(outputs)


def _check_devices(args, arrays, tensor_type):
    """ValueError naming both devices unless every Tensor argument lives on one device, as torch's
    "same device" check; a 0-d CPU tensor beside GPU tensors is passed as its Python number."""
    gpu = {arg.device for arg in args if isinstance(arg, tensor_type) and type(arg._array) is not _NDARRAY}
    first = min(gpu, key=str)
    for index, arg in enumerate(args):
        if not isinstance(arg, tensor_type):
            continue
        where = arg.device
        if where.type == "cpu" and arg._array.ndim == 0:
            arrays[index] = arg._array.item()
        elif where != first:
            raise ValueError(f"Expected all tensors to be on the same device, but found at least two devices, "
                             f"{first} and {where}!")


# ----------------------------------------------------------------------------- engine
def sum_to_shape(grad, shape):
    """Sum ``grad`` over broadcast dimensions so it has ``shape``; None if it cannot."""
    if grad.shape == shape:
        return grad
    try:
        if np.broadcast_shapes(shape, grad.shape) != grad.shape:
            return None
    except ValueError:
        return None
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, size in enumerate(shape) if size == 1 and grad.shape[lead + i] != 1
    )
    return grad.sum(axis=axes, keepdims=True).reshape(shape)


def backward(tensors, grad_tensors=None, retain_graph=None):
    """Accumulate d(tensors)/d(leaf) into every leaf's ``.grad`` (torch.autograd.backward).

    ``grad_tensors`` holds one gradient per tensor (None only for single-element tensors,
    meaning 1). ``retain_graph=None`` means False: the graph's saved arrays are freed.
    """
    tensor_type = _tensor.Tensor
    tensors = (tensors,) if isinstance(tensors, tensor_type) else tuple(tensors)
    if grad_tensors is None:
        grad_tensors = (None,) * len(tensors)
    elif isinstance(grad_tensors, (list, tuple)):
        grad_tensors = tuple(grad_tensors)
    else:
        grad_tensors = (grad_tensors,)
    if len(grad_tensors) != len(tensors):
        raise ValueError(
            f"grad_tensors has {len(grad_tensors)} entries but tensors has {len(tensors)}"
        )
    roots = []
    for index, (root, gradient) in enumerate(zip(tensors, grad_tensors)):
        if not root._requires_grad:
            raise RuntimeError(
                f"element {index} of tensors does not require grad and does not have a grad_fn"
            )
        roots.append((root, *_root_gradient(index, root, gradient)))
    outer = getattr(_backward_pass, "callbacks", None)  # a hook may run a backward of its own
    _backward_pass.callbacks = callbacks = []
    try:
        _run_backward(roots, bool(retain_graph))
        while callbacks:  # a callback may queue another
            callbacks.pop(0)()
    finally:
        _backward_pass.callbacks = outer


def _root_gradient(index, root, gradient):
    """The seed gradient for one root as a float32 array of the root's shape, and whether the
    engine allocated it (``_owned_by_engine``)."""
    shape = root._array.shape
    if gradient is None:
        if root._array.size != 1:
            raise RuntimeError("grad can be implicitly created only for scalar outputs")
        return _array.ones(shape, _FLOAT32, root._array), True
    array = gradient._array if isinstance(gradient, _tensor.Tensor) else np.asarray(gradient)
    if _array.on_gpu(array) or _array.on_gpu(root._array):
        if gradient.device != root.device:
            raise ValueError(f"gradient is on {gradient.device} but output[{index}] is on {root.device}")
        if array.shape != shape:
            raise ValueError(f"Mismatch in shape: gradient has a shape of {list(array.shape)} and "
                             f"output[{index}] has a shape of {list(shape)}")
        return array.astype(_FLOAT32), True
    if array.dtype.kind not in "fiub":
        raise TypeError(f"gradient must be a real number array, got dtype {array.dtype}")
    if array.shape != shape:
        raise ValueError(
            f"Mismatch in shape: gradient has a shape of {list(array.shape)} and "
            f"output[{index}] has a shape of {list(shape)}"
        )
    seed = np.asarray(array, dtype=_FLOAT32, order="C")  # keeps 0-d shapes (ascontiguousarray does not)
    return seed, seed is not array and seed.base is None  # a converted copy is the engine's own


def _add_gradient(buffers, node, slot, grad):
    """Adds ``grad`` to the gradients arriving at ``node``'s output ``slot`` (``buffers``: node ->
    one entry per output). Sums are fresh arrays, never written in place: an arriving gradient may
    be shared with other nodes. Same-shape float32 sums run on the threaded add kernel, whose
    output memory comes from the buffer cache."""
    slots = buffers.get(node)
    if slots is None:
        slots = buffers[node] = [None] * len(node._output_shapes)
    current = slots[slot]
    slots[slot] = grad if current is None else _arithmetic.add_arrays(current, grad)


def _run_backward(roots, retain_graph):
    # Pass 1: count, for every node reachable from the roots, the edges that point at it.
    # Leaves with post-accumulate hooks: id -> [edges still to come, leaf, whether gradient arrived].
    dependencies = {}
    hooked_leaves = {}
    root_nodes = []
    for root, _, _ in roots:
        node = root._grad_fn
        if node is None:
            _count_leaf_edge(hooked_leaves, root)
        elif node not in dependencies:
            dependencies[node] = 0
            root_nodes.append(node)
    stack = list(root_nodes)
    while stack:
        node = stack.pop()
        if node._released:
            raise RuntimeError(_FREED_GRAPH_MESSAGE)
        for edge in node._edges:
            if edge is not None and isinstance(edge[0], FunctionCtx):
                child = edge[0]
                if child in dependencies:
                    dependencies[child] += 1
                else:
                    dependencies[child] = 1
                    stack.append(child)
            elif edge is not None and _post_accumulate_hooks_registered:
                _count_leaf_edge(hooked_leaves, edge[0])

    # Pass 2: run each node once all its consumers have run (Kahn's algorithm).
    buffers = {}
    for root, gradient, owned in roots:
        node = root._grad_fn
        if node is None:
            _accumulate_leaf(root, gradient, owned)
            _leaf_edge_done(hooked_leaves, root, True)
        else:
            _add_gradient(buffers, node, root._output_nr, gradient)
    ready = [node for node in root_nodes if dependencies[node] == 0]
    while ready:
        node = ready.pop()
        input_grads = _call_backward(node, buffers.pop(node, None))
        input_shapes = node._input_shapes
        for index, edge in enumerate(node._edges):
            returned = grad = input_grads[index]
            if edge is None:
                if grad is not None and input_shapes[index] is _NOT_A_TENSOR:
                    raise RuntimeError(
                        f"function {node.name()} returned a gradient different than None at "
                        f"position {index + 1}, but the corresponding forward input was not "
                        f"a Tensor"
                    )
                continue
            # The usual gradient, float32 of the input's shape, is taken as it is.
            if grad is not None and not (type(grad) is _NDARRAY and grad.dtype == _FLOAT32
                                         and grad.shape == input_shapes[index]):
                grad = _converted_input_grad(node, index, grad)
            target, output_nr = edge
            if isinstance(target, FunctionCtx):
                if grad is not None:
                    _add_gradient(buffers, target, output_nr, grad)
                remaining = dependencies[target] = dependencies[target] - 1
                if remaining == 0:
                    ready.append(target)
            else:
                if grad is not None:
                    _accumulate_leaf(target, grad, _owned_by_engine(grad, returned, input_grads))
                if hooked_leaves:
                    _leaf_edge_done(hooked_leaves, target, grad is not None)
        if not retain_graph:
            node._release()


def _count_leaf_edge(hooked_leaves, leaf):
    if _post_accumulate_hooks(leaf):
        entry = hooked_leaves.setdefault(id(leaf), [0, leaf, False])
        entry[0] += 1


def _leaf_edge_done(hooked_leaves, leaf, accumulated):
    """One edge into ``leaf`` has been handled; after its last one, run its post-accumulate hooks
    (when some gradient reached it in this pass)."""
    entry = hooked_leaves.get(id(leaf))
    if entry is None:
        return
    entry[0] -= 1
    entry[2] = entry[2] or accumulated
    if entry[0] == 0 and entry[2] and leaf._requires_grad:
        hooks = _post_accumulate_hooks(leaf)
        for hook in [hooks[key] for key in sorted(hooks)]:
            hook(leaf)


def _call_backward(node, grads):
    """Run ``node``'s backward on ``grads`` (one per output, None where none arrived; the list is
    the caller's to give away); returns one gradient (or None) per positional input."""
    n_inputs = len(node._edges)
    if grads is None:
        # No gradient reached any output (an upstream backward returned None): nothing flows.
        return (None,) * n_inputs
    if node._output_hooks:
        for index, hooks in node._output_hooks.items():
            if grads[index] is not None:
                grads[index] = _run_hooks(hooks, grads[index])
    if len(grads) == 1:  # most ops; a slot exists because a gradient arrived
        grad_outputs = (_read_only(grads[0]),)
    else:
        like = next(grad for grad in grads if grad is not None)
        grad_outputs = [
            _read_only(_array.zeros(shape, _FLOAT32, like) if grad is None else grad)
            for grad, shape in zip(grads, node._output_shapes)
        ]
    result = node._function.backward(node, *grad_outputs)
    if not isinstance(result, tuple):
        result = (result,)
    if len(result) < n_inputs:
        result += (None,) * (n_inputs - len(result))
    elif len(result) > n_inputs and any(grad is not None for grad in result[n_inputs:]):
        raise RuntimeError(
            f"function {node.name()} returned an incorrect number of gradients "
            f"(expected {n_inputs}, got {len(result)})"
        )
    return result


def _read_only(grad):
    """A C-contiguous read-only view: one gradient array may feed several branches, so a
    backward that wrote into its ``grad_output`` would corrupt the others. (GPU arrays have no
    read-only flag: they pass as they are.)"""
    if _array.on_gpu(grad):
        return grad
    view = np.asarray(grad, order="C").view()  # 0-d stays 0-d
    view.setflags(write=False)  # 0.2 us less than setting flags.writeable
    return view


def _converted_input_grad(node, index, grad):
    """One gradient from ``node``'s backward that is not float32 of the input's shape, converted
    and summed down to it."""
    expected = node._input_shapes[index]
    grad = _array.asarray(grad, _FLOAT32)
    reduced = sum_to_shape(grad, expected)
    if reduced is None:
        raise RuntimeError(
            f"function {node.name()} returned an invalid gradient at index {index} - got "
            f"{list(grad.shape)} but expected shape compatible with {list(expected)}"
        )
    return reduced


# What owns the memory of every kernel output: the bindings wrap each output buffer in one of
# these (a pybind11 capsule that hands the buffer back to the cache when the array dies).
_KERNEL_BUFFER_OWNER = type(_C.add(np.zeros(1, _FLOAT32), np.zeros(1, _FLOAT32)).base)


def _owned_by_engine(grad, returned, input_grads):
    """Whether ``grad`` (checked from ``returned``, one of a backward's ``input_grads``) is an
    array no one but the engine holds, which a leaf may keep as its ``.grad`` without a copy:
    one the engine allocated converting or summing ``returned`` down to the input's shape, or a
    whole kernel output that the backward returned once (handed over, as ``Function``'s
    contract says). Views, read-only arrays (a passed-on ``grad_output``), plain numpy arrays
    and memory returned for two inputs are not: the caller or another input may hold them."""
    if type(grad) is not np.ndarray:
        # A GPU array has no buffer owner to ask: only what the engine itself converted or summed.
        return _array.on_gpu(grad) and grad is not returned
    if not (grad.flags.c_contiguous and grad.flags.writeable):
        return False
    if grad is not returned:
        return not np.may_share_memory(grad, returned)  # np.asarray views an ndarray subclass
    owner = grad.base
    if type(owner) is not _KERNEL_BUFFER_OWNER:
        return False
    once = False
    for other in input_grads:
        if other is grad:
            if once:  # returned for two inputs
                return False
            once = True
        # Another kernel output has a buffer of its own: only the others need the bounds test.
        elif isinstance(other, np.ndarray) and not (type(other.base) is _KERNEL_BUFFER_OWNER and other.base is not owner) \
                and np.may_share_memory(other, grad):
            return False
    return True


# The key of a retain_grad hook: sorted after every handle id, so it sees the final gradient.
RETAIN_GRAD_KEY = float("inf")


def _run_hooks(hooks, grad):
    """Each hook sees the gradient (read-only) as a Tensor and may return a replacement; hooks
    run in registration order, retain_grad's last (as torch's)."""
    for hook in [hooks[key] for key in sorted(hooks)]:
        replaced = hook(_tensor.Tensor._wrap(_read_only(grad)))
        if replaced is not None:
            if not isinstance(replaced, _tensor.Tensor) or replaced.shape != grad.shape:
                raise RuntimeError(f"a gradient hook returned {type(replaced).__name__} "
                                   f"{getattr(replaced, 'shape', '')}; expected None or a Tensor of shape "
                                   f"{tuple(grad.shape)}")
            grad = _array.asarray(replaced._array, _FLOAT32)
    return grad


def _accumulate_leaf(leaf, grad, owned):
    """Add ``grad`` into ``leaf.grad``; the first gradient becomes ``.grad`` itself when the
    engine ``owned`` it (copying AlexNet's 151 MB fc6 gradient would be pure cost), else a copy."""
    if not leaf._requires_grad:
        return
    if leaf._hooks:
        replaced = _run_hooks(leaf._hooks, grad)
        owned = owned and replaced is grad
        grad = replaced
    if leaf._grad is None:
        if not owned:
            grad = grad.copy() if _array.on_gpu(grad) else np.array(grad, dtype=_FLOAT32, order="C", copy=True)
        leaf._grad = _tensor.Tensor._wrap(grad)
    else:
        np.add(leaf._grad._array, grad, out=leaf._grad._array)


# Imported last: tensor.py imports this module, so either may be imported first.
from . import tensor as _tensor  # noqa: E402
from .ops import arithmetic as _arithmetic  # noqa: E402
