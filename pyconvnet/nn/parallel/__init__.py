"""Multi-device wrappers (torch.nn.parallel): ``DataParallel`` (one process) and
``DistributedDataParallel`` (one process a rank, over MPI)."""

from .data_parallel import DataParallel
from .distributed import DistributedDataParallel

__all__ = ["DataParallel", "DistributedDataParallel"]
