"""pyconvnet.distributed: the process group and the collectives, on 2 MPI ranks (see mpi_support),
and what a process without mpiexec or without mpi4py gets."""

import pytest

import pyconvnet as pcn
from mpi_support import needs_mpi, run_python, run_ranks


def test_importing_pyconvnet_does_not_load_mpi():
    result = run_python("""
        import sys
        import pyconvnet
        from pyconvnet import distributed
        assert "mpi4py" not in sys.modules, "mpi4py imported"
        assert not distributed.is_initialized()
    """)
    assert result.returncode == 0, result.stderr


def test_without_mpi4py_init_says_what_to_install():
    result = run_python("""
        import sys
        sys.modules["mpi4py"] = None  # as if the mpi extra were not installed
        from pyconvnet import distributed
        try:
            distributed.init_process_group()
        except ImportError as error:
            print(error)
        else:
            raise SystemExit("no error")
    """)
    assert result.returncode == 0, result.stderr
    assert "pip install 'pyconvnet[mpi]'" in result.stdout


def test_collectives_need_an_initialised_group():
    with pytest.raises(RuntimeError, match="init_process_group"):
        pcn.distributed.all_reduce(pcn.zeros(2))
    with pytest.raises(RuntimeError, match="init_process_group"):
        pcn.distributed.get_rank()


@needs_mpi
def test_a_world_of_one_without_mpiexec():
    result = run_python("""
        import pyconvnet as pcn
        from pyconvnet import distributed as dist
        dist.init_process_group("gloo", world_size=1, rank=0)
        assert (dist.get_rank(), dist.get_world_size(), dist.get_local_world_size()) == (0, 1, 1)
        assert not dist.launched_by_mpi()
        t = pcn.tensor([1.5, -2.0])
        dist.all_reduce(t, op=dist.ReduceOp.AVG)
        assert t.tolist() == [1.5, -2.0]
        dist.destroy_process_group()
        assert not dist.is_initialized()
        try:
            dist.init_process_group(world_size=2)
        except ValueError as error:
            assert "world_size=2 but MPI started this process with world_size 1" in str(error), error
        else:
            raise AssertionError("no error for world_size=2")
        assert not dist.is_initialized()
    """)
    assert result.returncode == 0, result.stderr


# ----------------------------------------------------------------------------- collectives
COLLECTIVES = """
import numpy as np
import pyconvnet as pcn
from pyconvnet import distributed as dist

dist.init_process_group()
rank, world = dist.get_rank(), dist.get_world_size()
assert world == 2 and dist.get_local_world_size() == 2 and dist.launched_by_mpi()


def values(r, shape, dtype):
    # rank r's input: distinct per rank and element, negative and positive
    count = int(np.prod(shape))
    return ((np.arange(count) * (3 if r else -2) + 7 * r - 5).reshape(shape)).astype(dtype)


reducers = {dist.ReduceOp.SUM: lambda a: a.sum(0), dist.ReduceOp.MAX: lambda a: a.max(0),
            dist.ReduceOp.MIN: lambda a: a.min(0), dist.ReduceOp.AVG: lambda a: a.mean(0)}
for dtype in (np.float32, np.int64):
    for shape in ((), (1,), (7,), (3, 4, 5)):
        every = np.stack([values(r, shape, dtype) for r in range(world)])
        for op, reduce in reducers.items():
            if op is dist.ReduceOp.AVG and dtype is np.int64:
                continue
            for async_op in (False, True):
                t = pcn.tensor(values(rank, shape, dtype))
                work = dist.all_reduce(t, op=op, async_op=async_op)
                if async_op:
                    assert work.wait() and work.is_completed()
                else:
                    assert work is None
                assert t.numpy().dtype == dtype and t.shape == shape
                np.testing.assert_array_equal(t.numpy(), reduce(every).astype(dtype), err_msg=f"{op} {dtype} {shape}")
        for async_op in (False, True):
            t = pcn.tensor(values(rank, shape, dtype))
            work = dist.broadcast(t, src=1, async_op=async_op)
            if async_op:
                work.wait()
            np.testing.assert_array_equal(t.numpy(), values(1, shape, dtype))
            gathered = [pcn.tensor(np.zeros(shape, dtype)) for _ in range(world)]
            work = dist.all_gather(gathered, pcn.tensor(values(rank, shape, dtype)), async_op=async_op)
            if async_op:
                work.wait()
            for r in range(world):
                np.testing.assert_array_equal(gathered[r].numpy(), values(r, shape, dtype))
flags = pcn.tensor([rank == 0, rank == 1, True])
dist.broadcast(flags, src=1)
assert flags.tolist() == [False, True, True]
gathered = [pcn.tensor([False, False]) for _ in range(world)]
dist.all_gather(gathered, pcn.tensor([rank == 1, True]))
assert [g.tolist() for g in gathered] == [[False, True], [True, True]]
objects = [None, None]
dist.all_gather_object(objects, {"rank": rank})
assert objects == [{"rank": 0}, {"rank": 1}]

# Wrong arguments: the same clear error on every rank, before any communication.
def raises(kind, text, call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except kind as error:
        assert text in str(error), str(error)
    else:
        raise AssertionError(f"no {kind.__name__} from {call.__name__}{args}")

raises(TypeError, "ReduceOp.AVG needs a float32", dist.all_reduce, pcn.tensor([1, 2]), op=dist.ReduceOp.AVG)
raises(TypeError, "got bool", dist.all_reduce, pcn.tensor([True]))
raises(TypeError, "must be a Tensor", dist.all_reduce, np.zeros(3, np.float32))
raises(TypeError, "op must be a ReduceOp", dist.all_reduce, pcn.zeros(3), op="sum")
raises(ValueError, "src must be a rank in [0, 2)", dist.broadcast, pcn.zeros(3), src=2)
raises(ValueError, "world_size=2", dist.all_gather, [pcn.zeros(3)], pcn.zeros(3))
raises(ValueError, "tensor_list[1] is float32 [4]", dist.all_gather, [pcn.zeros(3), pcn.zeros(4)], pcn.zeros(3))
raises(ValueError, "tensor_list[0] is int64", dist.all_gather, [pcn.tensor([1, 2, 3]), pcn.zeros(3)], pcn.zeros(3))
raises(RuntimeError, "twice", dist.init_process_group)
raises(ValueError, "backend must be 'mpi' or 'gloo'", dist.init_process_group, backend="nccl")
raises(ValueError, "group must be None", dist.all_reduce, pcn.zeros(3), dist.ReduceOp.SUM, "world")
dist.barrier()
dist.barrier(async_op=True).wait()
dist.destroy_process_group()
print("collectives ok on rank", rank)
"""


@needs_mpi
def test_collectives_over_dtypes_shapes_and_ops(tmp_path):
    result = run_ranks(tmp_path, COLLECTIVES)
    assert result.stdout.count("collectives ok") == 2


ONE_RANK_FAILS = """
from pyconvnet import distributed as dist

dist.init_process_group()
if dist.get_rank() == 1:
    raise ValueError("rank one gives up")
dist.barrier()  # rank 0 would wait here forever without the abort
"""


@needs_mpi
def test_an_exception_on_one_rank_ends_the_job(tmp_path):
    result = run_ranks(tmp_path, ONE_RANK_FAILS, check=False, time_limit=30)
    assert result.returncode != 0
    assert "ValueError: rank one gives up" in result.stderr
    assert "rank 1 raised ValueError; aborting all 2 ranks" in result.stderr


ONE_RANK_KILLED = """
import os
import signal
from pyconvnet import distributed as dist

dist.init_process_group()
if dist.get_rank() == 1:
    os.kill(os.getpid(), signal.SIGKILL)
dist.barrier()
"""


@needs_mpi
def test_a_rank_killed_by_sigkill_ends_the_job(tmp_path):
    result = run_ranks(tmp_path, ONE_RANK_KILLED, check=False, time_limit=30)
    assert result.returncode != 0


ONE_RANK_ABORTS = """
from pyconvnet import distributed as dist

dist.init_process_group()
if dist.get_rank() == 1:
    print("rank 1 stops", flush=True)
    dist.abort(3)
dist.barrier()
"""


@needs_mpi
def test_abort_on_one_rank_ends_the_job(tmp_path):
    result = run_ranks(tmp_path, ONE_RANK_ABORTS, check=False, time_limit=30)
    assert result.returncode != 0 and "rank 1 stops" in result.stdout
