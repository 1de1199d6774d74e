"""``parameters_to_vector`` and ``vector_to_parameters``: a model's parameters as one flat vector
and back, as ``torch.nn.utils``."""

from ...ops.elementwise import cat
from ...tensor import Tensor

__all__ = ["parameters_to_vector", "vector_to_parameters"]


def parameters_to_vector(parameters):
    """The parameters flattened and concatenated into one 1-D Tensor (a copy, differentiable)."""
    return cat([p.reshape(-1) for p in parameters])


def vector_to_parameters(vec, parameters):
    """Point each parameter's data at its slice of the 1-D Tensor ``vec`` (in order, viewed in the
    parameter's shape), as ``torch.nn.utils.vector_to_parameters``: the parameters then share
    ``vec``'s memory."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected Tensor, but got: {type(vec).__name__}")
    parameters = list(parameters)
    needed = sum(p.numel() for p in parameters)
    if vec.ndim != 1 or vec.numel() != needed:
        raise ValueError(
            f"vector_to_parameters: vec must be 1-D with {needed} elements (the parameters' total), "
            f"got shape {list(vec.shape)}"
        )
    pointer = 0
    for param in parameters:
        count = param.numel()
        param.data = vec[pointer : pointer + count].view_as(param).data
        pointer += count
