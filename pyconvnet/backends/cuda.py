"""``torch.backends.cuda``: ``matmul.allow_tf32``, whether matrix products on the GPU (linear layers,
matmul) may use TF32 tensor cores (off by default, as in torch). The convolutions' switch is
``pyconvnet.backends.cudnn.allow_tf32`` (on by default, as in torch). Both reach the GPU module when it
is loaded and at every change; a build or machine without a GPU keeps them and ignores them."""

import sys

__all__ = ["matmul"]

# The switches' values, read by pyconvnet.cuda when it loads the GPU module.
TF32 = {"conv": True, "matmul": False}


def push_tf32():
    """Hands the switches to the GPU module if it is loaded (pyconvnet.cuda calls this when it loads it)."""
    module = sys.modules.get("pyconvnet._C_cuda")
    if module is not None:
        module.set_allow_tf32(conv=TF32["conv"], matmul=TF32["matmul"])


def set_tf32(kind, value):
    TF32[kind] = bool(value)
    push_tf32()


class _MatmulSwitches:
    """``torch.backends.cuda.matmul``."""

    @property
    def allow_tf32(self):
        return TF32["matmul"]

    @allow_tf32.setter
    def allow_tf32(self, value):
        set_tf32("matmul", value)


matmul = _MatmulSwitches()
