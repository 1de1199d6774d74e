"""``Parameter``: a leaf Tensor that a ``Module`` registers as one of its learnable weights."""

import numpy as np

from ..tensor import Tensor, _convert

__all__ = ["Parameter"]


class Parameter(Tensor):
    """A Tensor that ``Module.__setattr__`` registers as a parameter (torch.nn.Parameter).

    ``Parameter(tensor)`` shares ``tensor``'s storage, as in torch; a numpy array or nested
    list is copied into float32 storage. It is always a leaf; ``requires_grad`` defaults to
    True.
    """

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            array = np.empty((0,), dtype=np.float32)
        elif isinstance(data, Tensor):
            array = data._array
        else:
            array = _convert(data, np.float32)
        self._init(array, False)
        if requires_grad:
            self.requires_grad_()

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()
