"""Neural-network building blocks; ``pyconvnet.nn.functional`` holds the stateless ops."""

from . import functional

__all__ = ["functional"]
