"""How a Tensor prints (``repr``): torch's layout, ``tensor([...])`` with its dtype when it is not
the default, its device when it is a GPU (whose values are copied to the host to print), and its
``grad_fn`` or ``requires_grad``, numbers in one fixed or scientific format."""

import numpy as np

__all__ = ["format_tensor"]

float32 = np.dtype(np.float32)


def format_tensor(tensor):
    array = tensor._array
    on_gpu = type(array) is not np.ndarray
    if on_gpu:
        array = array.get()
    if array.dtype == float32 and array.size:
        formatter = {"float_kind": _float_formatter(array)}
    else:
        formatter = None
    body = np.array2string(
        array, separator=", ", prefix="tensor(", formatter=formatter, threshold=1000, edgeitems=3
    ).replace(", ..., ", ",  ..., ")  # torch pads the in-row ellipsis by one space
    extras = []
    if array.size == 0 and array.ndim != 1:
        extras.append(f"size={array.shape}")
    if on_gpu:
        extras.append(f"device='{tensor.device}'")
    if tensor._grad_fn is not None:
        extras.append(f"grad_fn=<{tensor._grad_fn.name()}>")
    elif tensor._requires_grad:
        extras.append("requires_grad=True")
    return "tensor(" + ", ".join([body] + extras) + ")"


def _float_formatter(array):
    """torch's print style: '1.' for integral values, else 4 decimals or 4-digit scientific."""
    is_finite = np.isfinite(array)
    finite = array[is_finite].astype(np.float64)
    magnitudes = np.abs(finite[finite != 0])
    integral = bool(np.all(finite == np.round(finite)))
    scientific = False
    if magnitudes.size:
        largest, smallest = magnitudes.max(), magnitudes.min()
        scientific = (
            largest / smallest > 1000 or largest > 1e8 or (not integral and smallest < 1e-4)
        )
    if scientific:
        pattern = "{:.4e}"
    elif integral:
        pattern = "{:.0f}."
    else:
        pattern = "{:.4f}"

    def format_value(value):
        return pattern.format(value) if np.isfinite(value) else str(value)

    # Right-align to the widest string, which comes from an extreme or a non-finite value.
    samples = list(np.unique(array[~is_finite]))
    if finite.size:
        samples += [finite.max(), finite.min()]
    width = max(len(format_value(v)) for v in samples)
    return lambda value: format_value(value).rjust(width)
