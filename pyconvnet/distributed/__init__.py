"""Data-parallel training over MPI (torch.distributed's names): the process group and the
collectives on tensors. One process a rank, started by ``mpiexec``; mpi4py (the ``mpi`` extra) is
imported only when ``init_process_group`` or ``is_available`` needs it, so ``import pyconvnet``
never loads MPI. ``nn.parallel.DistributedDataParallel`` and ``data.DistributedSampler`` build on
this package."""

from .collectives import (ReduceOp, Work, abort, all_gather, all_gather_object, all_reduce, barrier, broadcast,
                          destroy_process_group, get_local_world_size, get_rank, get_world_size, init_process_group,
                          is_available, is_initialized, launched_by_mpi)

__all__ = ["ReduceOp", "Work", "abort", "all_gather", "all_gather_object", "all_reduce", "barrier", "broadcast",
           "destroy_process_group", "get_local_world_size", "get_rank", "get_world_size", "init_process_group",
           "is_available", "is_initialized", "launched_by_mpi"]
