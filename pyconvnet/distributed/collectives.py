"""The process group (one MPI communicator over all ranks) and the collectives on tensors.

Every collective works in place on the tensor's own numpy storage through mpi4py's buffer interface
(upper-case ``Iallreduce``/``Ibcast``/``Iallgather``; arrays are never pickled), started
non-blocking and, unless ``async_op=True`` asks for the Work, waited for at once. As in MPI, every
rank must call the same collectives in the same order with tensors of the same shape and dtype;
the arguments that one rank can check alone are checked here with a clear exception. There is one
process group, the world: ``group`` (torch's argument, kept for its argument order) must be None.
"""

import enum
import importlib.util
import os
import sys
import time

import numpy as np

from ..tensor import Tensor

__all__ = ["ReduceOp", "Work", "abort", "all_gather", "all_gather_object", "all_reduce", "barrier", "broadcast",
           "destroy_process_group", "get_local_world_size", "get_rank", "get_world_size", "init_process_group",
           "is_available", "is_initialized", "launched_by_mpi"]

_INSTALL_HINT = "pip install 'pyconvnet[mpi]'"
# What mpiexec sets in each rank's environment: MPICH's Hydra and Intel MPI (PMI), Open MPI, PMIx.
_LAUNCH_VARIABLES = ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK")
_REDUCIBLE = (np.dtype(np.float32), np.dtype(np.int64))
_COMMUNICABLE = _REDUCIBLE + (np.dtype(np.bool_),)


class _ProcessGroup:
    """The initialised world: mpi4py's MPI module, our own duplicate of COMM_WORLD (so a user's
    MPI calls never match ours) and the excepthook we replaced."""

    def __init__(self, mpi):
        self.mpi = mpi
        self.comm = mpi.COMM_WORLD.Dup()
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        host = self.comm.Split_type(mpi.COMM_TYPE_SHARED)  # the ranks sharing this machine's memory
        self.local_size = host.Get_size()
        host.Free()
        self.previous_excepthook = sys.excepthook


_group = None


def _import_mpi():
    try:
        from mpi4py import MPI  # initialises MPI: a world of 1 when not started by mpiexec
    except ImportError as error:
        raise ImportError(f"pyconvnet.distributed needs mpi4py and an MPI library: {_INSTALL_HINT}") from error
    return MPI


def is_available():
    """Whether the MPI backend can be used (mpi4py is installed); imports nothing."""
    return importlib.util.find_spec("mpi4py") is not None


def launched_by_mpi():
    """Whether ``mpiexec`` started this process (its environment says so); imports nothing."""
    return any(name in os.environ for name in _LAUNCH_VARIABLES)


def is_initialized():
    return _group is not None


def init_process_group(backend=None, init_method=None, timeout=None, world_size=-1, rank=-1):
    """Join the world that ``mpiexec`` started (a world of 1 without it). ``backend`` may be None,
    "mpi" or "gloo" (torch's CPU backend, so CPU scripts run unchanged): all mean MPI. MPI finds the
    other ranks itself, so ``init_method`` and ``timeout`` (kept for torch's argument order) are not
    used; ``world_size``/``rank``, when given, must agree with MPI's. With more than one rank, an
    uncaught exception on any rank prints its traceback and aborts the whole job (MPI_Abort), so no
    rank waits forever on one that died."""
    global _group
    if backend not in (None, "mpi", "gloo"):
        raise ValueError(f"init_process_group: backend must be 'mpi' or 'gloo' (pyconvnet runs over MPI), "
                         f"got {backend!r}")
    if _group is not None:
        raise RuntimeError("init_process_group: trying to initialize the default process group twice!")
    group = _ProcessGroup(_import_mpi())
    for name, given, actual in (("world_size", world_size, group.size), ("rank", rank, group.rank)):
        if given != -1 and given != actual:
            group.comm.Free()
            raise ValueError(f"init_process_group: {name}={given} but MPI started this process with {name} {actual}")
    if group.size > 1:
        sys.excepthook = _abort_job_hook(group)
    _group = group


def _abort_job_hook(group):
    def abort_job(exc_type, exc_value, traceback):
        group.previous_excepthook(exc_type, exc_value, traceback)
        print(f"pyconvnet.distributed: rank {group.rank} raised {exc_type.__name__}; aborting all "
              f"{group.size} ranks", file=sys.stderr)
        abort(1)

    return abort_job


def abort(errorcode=1):
    """End every rank of the job now with ``errorcode`` (MPI_Abort); pyconvnet's addition, for a rank
    that stops where the others cannot follow (a rank that simply exits leaves the others waiting)."""
    group = _initialized("abort")
    sys.stdout.flush()
    sys.stderr.flush()
    # MPI_Abort takes the launcher's output forwarding down with the job: without a pause, what the
    # ranks printed just before (the error itself) was sometimes lost.
    time.sleep(0.5)
    group.mpi.COMM_WORLD.Abort(errorcode)


def destroy_process_group():
    """Leave the process group: frees its communicator and restores the excepthook."""
    global _group
    group = _initialized("destroy_process_group")
    group.comm.Free()
    sys.excepthook = group.previous_excepthook
    _group = None


def _initialized(caller, group=None):
    if group is not None:
        raise ValueError(f"{caller}: pyconvnet has one process group, the world; group must be None")
    if _group is None:
        raise RuntimeError(f"{caller}: Default process group has not been initialized, please make sure to "
                           "call init_process_group.")
    return _group


def get_rank():
    return _initialized("get_rank").rank


def get_world_size():
    return _initialized("get_world_size").size


def get_local_world_size():
    """How many ranks run on this machine (pyconvnet's; torch reads LOCAL_WORLD_SIZE from its launcher)."""
    return _initialized("get_local_world_size").local_size


def barrier(group=None, async_op=False):
    """Wait until every rank has reached the barrier."""
    return _issue(_initialized("barrier", group).comm.Ibarrier(), None, async_op)


class ReduceOp(enum.Enum):
    SUM = "sum"
    AVG = "avg"
    MAX = "max"
    MIN = "min"


class Work:
    """A collective in flight (``async_op=True``): ``wait()`` blocks until its result is in the
    tensors; ``is_completed()`` asks without blocking (and lets MPI progress it)."""

    def __init__(self, request, finish=None):
        self._request = request
        self._finish = finish
        self._done = False

    def is_completed(self):
        if not self._done and self._request.Test():
            self._complete()
        return self._done

    def wait(self):
        if not self._done:
            self._request.Wait()
            self._complete()
        return True

    def _complete(self):
        self._done = True
        if self._finish is not None:
            self._finish()


def _issue(request, finish, async_op):
    """The Work of a started collective, or None after waiting for it."""
    work = Work(request, finish)
    if async_op:
        return work
    work.wait()
    return None


def _buffer(tensor, caller, dtypes=_COMMUNICABLE):
    """The tensor's own storage, which the collective reads and overwrites."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{caller}: tensor must be a Tensor, got {type(tensor).__name__}")
    array = tensor._array
    if array.dtype not in dtypes:
        names = ", ".join(str(dtype) for dtype in dtypes)
        raise TypeError(f"{caller}: tensor dtype must be one of {names}, got {array.dtype}")
    if not (array.flags.c_contiguous and array.flags.writeable):
        raise ValueError(f"{caller}: tensor storage must be contiguous and writeable (use .clone())")
    return array


def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op=False):
    """Reduce ``tensor`` (float32 or int64) over all ranks, in place on every rank. ``ReduceOp.AVG``
    divides the sum by the world size (float32 only). With ``async_op=True`` returns a Work whose
    ``wait()`` must be called before the tensor is read or written."""
    group = _initialized("all_reduce", group)
    array = _buffer(tensor, "all_reduce", _REDUCIBLE)
    if not isinstance(op, ReduceOp):
        raise TypeError(f"all_reduce: op must be a ReduceOp, got {op!r}")
    if op is ReduceOp.AVG and array.dtype != np.float32:
        raise TypeError(f"all_reduce: ReduceOp.AVG needs a float32 tensor, got {array.dtype}")
    mpi_op = {ReduceOp.SUM: group.mpi.SUM, ReduceOp.AVG: group.mpi.SUM, ReduceOp.MAX: group.mpi.MAX,
              ReduceOp.MIN: group.mpi.MIN}[op]
    finish = None
    if op is ReduceOp.AVG:
        def finish():
            np.divide(array, np.float32(group.size), out=array)
    return _issue(group.comm.Iallreduce(group.mpi.IN_PLACE, array, mpi_op), finish, async_op)


def _check_src(src, group, caller):
    if isinstance(src, bool) or not isinstance(src, int) or not 0 <= src < group.size:
        raise ValueError(f"{caller}: src must be a rank in [0, {group.size}), got {src!r}")


def broadcast(tensor, src, group=None, async_op=False):
    """Overwrite ``tensor`` on every rank with rank ``src``'s."""
    group = _initialized("broadcast", group)
    _check_src(src, group, "broadcast")
    return _issue(group.comm.Ibcast(_buffer(tensor, "broadcast"), root=src), None, async_op)


def all_gather(tensor_list, tensor, group=None, async_op=False):
    """Fill ``tensor_list[r]`` with rank r's ``tensor`` on every rank; the list holds world-size
    tensors of ``tensor``'s shape and dtype."""
    group = _initialized("all_gather", group)
    send = _buffer(tensor, "all_gather")
    if not isinstance(tensor_list, (list, tuple)) or len(tensor_list) != group.size:
        got = len(tensor_list) if isinstance(tensor_list, (list, tuple)) else type(tensor_list).__name__
        raise ValueError(f"all_gather: tensor_list must be a list of world_size={group.size} tensors, got {got}")
    outputs = [_buffer(out, "all_gather") for out in tensor_list]
    for index, out in enumerate(outputs):
        if out.shape != send.shape or out.dtype != send.dtype:
            raise ValueError(f"all_gather: tensor_list[{index}] is {out.dtype} {list(out.shape)} but tensor is "
                             f"{send.dtype} {list(send.shape)}")
    gathered = np.empty((group.size,) + send.shape, dtype=send.dtype)

    def copy_out():
        for out, part in zip(outputs, gathered):
            np.copyto(out, part)

    return _issue(group.comm.Iallgather(send, gathered), copy_out, async_op)


def all_gather_object(object_list, obj, group=None):
    """torch's ``all_gather_object``: fill ``object_list`` (world-size long) with every rank's
    picklable ``obj``. For small metadata; tensors go through ``all_gather``."""
    group = _initialized("all_gather_object", group)
    if not isinstance(object_list, list) or len(object_list) != group.size:
        raise ValueError(f"all_gather_object: object_list must be a list of world_size={group.size} entries")
    object_list[:] = group.comm.allgather(obj)
