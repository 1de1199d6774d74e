"""``torch.cuda``'s queries, answered for a build without a GPU backend: scripts that pick a device
with ``pcn.cuda.is_available()`` run on the CPU, and seeding the GPU is a no-op, as in torch on a
machine without CUDA. Anything that would need a GPU raises through ``pcn.device`` resolution."""

from . import amp

__all__ = ["amp", "is_available", "device_count", "manual_seed", "manual_seed_all"]


def is_available():
    return False


def device_count():
    return 0


def manual_seed(seed):
    """No GPU generator exists to seed (torch also ignores this call when CUDA is absent)."""
    int(seed)


manual_seed_all = manual_seed
