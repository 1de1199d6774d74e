"""The kernel families on either device: ``kernels.<name>(*args, **kwargs)`` calls ``_C.<name>``,
or ``_C_cuda.<name>`` when an argument (also inside a list or tuple) is a ``CudaArray``.

The GPU bindings mirror the CPU ones name for name and argument for argument, so the autograd
Functions in ``ops/`` call one name for both devices. On the GPU path every ``CudaArray`` argument
is passed as its ``DeviceArray`` and every ``DeviceArray`` result (also inside a tuple) comes back
as a ``CudaArray``. Dispatchers are built once per name, so the CPU path costs one type scan.
"""

import functools

from . import _C


# The CudaArray class, set by pyconvnet.cuda.array when it is imported: until then no GPU array can
# exist and every call goes straight to the CPU kernel.
gpu_array_type = None


@functools.cache
def _gpu_function(name):
    from .cuda import _required

    return getattr(_required(), name)


def _on_gpu(value, gpu_type):
    if isinstance(value, (list, tuple)):
        return any(_on_gpu(item, gpu_type) for item in value)
    return isinstance(value, gpu_type)


def _dispatcher(name):
    cpu = getattr(_C, name)  # AttributeError for a name the CPU module lacks

    def call(*args, **kwargs):
        gpu_type = gpu_array_type
        if gpu_type is None or not (any(_on_gpu(arg, gpu_type) for arg in args)
                                    or any(_on_gpu(arg, gpu_type) for arg in kwargs.values())):
            return getattr(_C, name)(*args, **kwargs)  # looked up per call: tests may patch _C
        from .cuda.array import unwrap, wrap

        return wrap(_gpu_function(name)(*unwrap(args), **{key: unwrap(value) for key, value in kwargs.items()}))

    call.__name__ = call.__qualname__ = name
    call.__doc__ = cpu.__doc__
    return call


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    function = _dispatcher(name)
    globals()[name] = function  # later look-ups find it directly
    return function
