"""The global random generator behind randn/rand, initialisers and seeded C++ kernels.

One numpy ``Generator`` (PCG64) serves the whole process, like torch's default CPU generator.
``manual_seed`` reseeds it in place, so references obtained from ``default_generator()``
stay valid. Kernels that draw their own random numbers (dropout) take a fresh 64-bit seed
from ``next_seed()``, which keeps every run reproducible from one ``manual_seed`` call.
"""

import numpy as np

__all__ = ["manual_seed", "initial_seed", "default_generator", "next_seed"]

# torch's default CPU seed, so an unseeded program is still deterministic.
_DEFAULT_SEED = 67280421310721
_UINT64_LIMIT = 1 << 64

_initial_seed = _DEFAULT_SEED
_generator = np.random.Generator(np.random.PCG64(_DEFAULT_SEED))


def manual_seed(seed):
    """Reseed the global generator and return it.

    Like torch, ``seed`` is an int in ``[-2**63, 2**64)``; negative values are taken
    modulo 2**64.
    """
    global _initial_seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"manual_seed expected an int seed, got {type(seed).__name__}")
    seed = int(seed)
    if not -(1 << 63) <= seed < _UINT64_LIMIT:
        raise ValueError(f"manual_seed: seed must be in [-2**63, 2**64), got {seed}")
    seed %= _UINT64_LIMIT
    _generator.bit_generator.state = np.random.PCG64(seed).state
    _initial_seed = seed
    return _generator


def initial_seed():
    """The seed last given to ``manual_seed`` (or the default seed)."""
    return _initial_seed


def default_generator():
    """The process-wide ``np.random.Generator`` (PCG64)."""
    return _generator


def next_seed():
    """A fresh uint64 drawn from the global generator, as a Python int, for C++ kernels."""
    return int(_generator.integers(0, _UINT64_LIMIT, dtype=np.uint64))
