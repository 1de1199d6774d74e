"""``torch.cuda.amp`` (deprecated in torch for ``torch.amp``): the same ``autocast`` and
``GradScaler``, for the CUDA device."""

import functools

from .. import amp

__all__ = ["autocast", "GradScaler"]

autocast = functools.partial(amp.autocast, "cuda")
GradScaler = functools.partial(amp.GradScaler, "cuda")
