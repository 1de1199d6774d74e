"""pyconvnet: fast CPU training of classic convolutional networks."""

__version__ = "0.1.0"
