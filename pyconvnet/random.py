"""The global random generator behind randn/rand, initialisers and seeded C++ kernels.

One numpy ``Generator`` (PCG64) serves the whole process, like torch's default CPU generator.
``manual_seed`` reseeds it in place, so references obtained from ``default_generator()``
stay valid. Kernels that draw their own random numbers (dropout) take a fresh 64-bit seed
from ``next_seed()``, which keeps every run reproducible from one ``manual_seed`` call.
"""

import numpy as np

from . import devices

__all__ = ["Generator", "manual_seed", "initial_seed", "default_generator", "next_seed"]

# torch's default CPU seed, so an unseeded program is still deterministic.
_DEFAULT_SEED = 67280421310721
_UINT64_LIMIT = 1 << 64

def _checked_seed(seed):
    """``seed`` as torch takes it: an int in ``[-2**63, 2**64)``, negatives modulo 2**64."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"manual_seed expected an int seed, got {type(seed).__name__}")
    seed = int(seed)
    if not -(1 << 63) <= seed < _UINT64_LIMIT:
        raise ValueError(f"manual_seed: seed must be in [-2**63, 2**64), got {seed}")
    return seed % _UINT64_LIMIT


class Generator(np.random.Generator):
    """torch.Generator for the CPU: a numpy PCG64 ``Generator`` with torch's seeding methods, so
    it goes wherever pyconvnet takes a generator (``randperm``, ``random_split``, samplers, the
    DataLoader). The numbers differ from torch's for the same seed."""

    def __init__(self, device="cpu"):
        devices.resolve(device)
        super().__init__(np.random.PCG64(_DEFAULT_SEED))
        self._initial_seed = _DEFAULT_SEED

    def manual_seed(self, seed):
        """Reseed in place and return self (``Generator().manual_seed(42)``)."""
        seed = _checked_seed(seed)
        self.bit_generator.state = np.random.PCG64(seed).state
        self._initial_seed = seed
        return self

    def initial_seed(self):
        return self._initial_seed

    def seed(self):
        """Reseed from the operating system's entropy; returns the new seed."""
        return self.manual_seed(int(np.random.SeedSequence().generate_state(1, np.uint64)[0])).initial_seed()

    @property
    def device(self):
        return devices.CPU


_generator = Generator()


def manual_seed(seed):
    """Reseed the global generator in place and return it (negative seeds are taken modulo 2**64)."""
    return _generator.manual_seed(seed)


def initial_seed():
    """The seed last given to ``manual_seed`` (or the default seed)."""
    return _generator.initial_seed()


def default_generator():
    """The process-wide ``Generator``."""
    return _generator


def next_seed():
    """A fresh uint64 drawn from the global generator, as a Python int, for C++ kernels."""
    return int(_generator.integers(0, _UINT64_LIMIT, dtype=np.uint64))
