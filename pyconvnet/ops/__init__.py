"""Differentiable operations, one module per kernel family (``conv``, ``pooling``, ``activation``,
...) plus the Tensor's own ops (``shape``, ``arithmetic``, ``reduction``, ``indexing``).

Each module holds the ``Function`` subclasses that call the compiled kernels (``pyconvnet._C``)
and the PyTorch-style functions that ``pyconvnet.nn.functional`` re-exports; argument parsing
and PyTorch-compatible defaults live here, shape checks in the C++ descriptors.
"""
