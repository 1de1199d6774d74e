"""``torch.backends``: the switches GPU scripts set (``backends.cudnn.benchmark = True``) and the
availability questions they ask. Without those backends the switches are accepted and change nothing."""

from . import cuda, cudnn, mps

__all__ = ["cuda", "cudnn", "mps"]
