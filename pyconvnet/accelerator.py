"""``torch.accelerator``'s queries: the GPU when ``pyconvnet.cuda`` has a usable one, else none, so
scripts fall back to the CPU."""

from . import cuda, devices

__all__ = ["is_available", "current_accelerator", "device_count"]


def is_available():
    return cuda.is_available()


def current_accelerator(check_available=False):
    return devices.device("cuda") if cuda.is_available() else None


def device_count():
    return cuda.device_count()
