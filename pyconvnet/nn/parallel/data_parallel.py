"""``DataParallel``: torch's single-process multi-GPU wrapper. pyconvnet has one device, the CPU,
whose cores the kernels already share, so the wrapper runs its module unchanged, as torch's does
on a machine without CUDA (``device_ids`` are ignored there too); what scripts rely on stays: ``.module`` and the ``module.`` prefix of
every state_dict key."""

from ..modules.module import Module

__all__ = ["DataParallel"]


class DataParallel(Module):
    def __init__(self, module, device_ids=None, output_device=None, dim=0):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DataParallel: module must be a Module, got {type(module).__name__}")
        self.module = module
        self.device_ids = []
        self.output_device = None
        self.dim = dim

    def forward(self, *inputs, **kwargs):
        return self.module(*inputs, **kwargs)
