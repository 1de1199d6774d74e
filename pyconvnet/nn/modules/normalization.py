"""Normalisation layers: ``BatchNorm1d``, ``BatchNorm2d``, ``SyncBatchNorm`` (batch norm over all
ranks of a data-parallel job), ``LayerNorm``, ``GroupNorm`` and ``LocalResponseNorm``."""

import functools
import numbers

from ... import distributed as dist
from .. import functional as F
from .. import init
from ...ops.normalization import sync_batch_norm
from ..parameter import Parameter
from ...tensor import int64
from ...creation import empty, ones, tensor, zeros
from .module import Module, _name_failing_layer

__all__ = ["BatchNorm1d", "BatchNorm2d", "SyncBatchNorm", "LayerNorm", "GroupNorm", "LocalResponseNorm"]


class _BatchNorm(Module):
    """Batch normalisation over channel dim 1, with torch's parameters, buffers and update rule.

    ``bias=False`` (keyword-only, as in torch) keeps the scale but drops the shift.
    Training normalises with the batch statistics and, with ``track_running_stats``, updates
    ``running_mean``/``running_var`` (unbiased) by ``momentum``, or by the cumulative average
    1/num_batches_tracked when ``momentum`` is None. Evaluation uses the running statistics
    (the batch statistics when they are not tracked).
    """

    _input_ndims = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, *, bias=True):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = Parameter(empty(num_features))
        else:
            self.register_parameter("weight", None)
        if affine and bias:
            self.bias = Parameter(empty(num_features))
        else:
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", zeros(num_features))
            self.register_buffer("running_var", ones(num_features))
            self.register_buffer("num_batches_tracked", tensor(0, dtype=int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, input):
        return self._normalize(input, F.batch_norm)

    def forward_relu(self, input, relu=None):
        """A ReLU of ``self(input)`` as one fused kernel each way (``F.batch_norm_relu``; a
        pyconvnet extension). ``relu`` is the ReLU module that follows this one, if there is one
        (else ``F.relu`` is meant): while a hook watches either module, the two run one after the
        other as usual, so that the hooks see what they expect."""
        if self._has_forward_hooks():
            return relu(self(input)) if relu is not None else F.relu(self(input), inplace=True)
        if relu is not None and relu._has_forward_hooks():
            return relu(self(input))
        try:
            return self._normalize(input, F.batch_norm_relu)
        except ValueError as error:  # named like a call of the module (Module.__call__)
            _name_failing_layer(self, error, (input,))
            raise

    def _normalize(self, input, function):
        shape = input.shape
        if len(shape) not in self._input_ndims:
            expected = " or ".join(f"{n}D" for n in self._input_ndims)
            raise ValueError(f"expected {expected} input (got {len(shape)}D input)")
        if shape[1] != self.num_features:
            raise ValueError(f"expected {self.num_features} channels in dim 1, got {shape[1]}")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        # Batch statistics in training, and in evaluation when no running ones exist.
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        track = not self.training or self.track_running_stats
        return function(
            input,
            self.running_mean if track else None,
            self.running_var if track else None,
            self.weight,
            self.bias,
            use_batch_stats,
            factor,
            self.eps,
        )

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) input (torch.nn.BatchNorm1d)."""

    _input_ndims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) input (torch.nn.BatchNorm2d)."""

    _input_ndims = (4,)


class SyncBatchNorm(_BatchNorm):
    """Batch normalisation of (N, C, *) input whose training statistics cover the global batch of
    every rank of the process group (torch.nn.SyncBatchNorm): the per-channel statistics are
    all-gathered in forward, the running statistics are updated from the global ones (unbiased
    variance over the global count) and backward all-reduces the two per-channel gradient sums the
    input's gradient needs. Without an initialised process group, and in evaluation, it is plain
    batch norm. Every rank must run the same SyncBatchNorm layers in the same order.
    ``process_group`` must be None: pyconvnet has one group, the world."""

    _input_ndims = (2, 3, 4, 5)

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 process_group=None, *, bias=True):
        if process_group is not None:
            raise ValueError("SyncBatchNorm: pyconvnet has one process group, the world; process_group must be None")
        super().__init__(num_features, eps, momentum, affine, track_running_stats, bias=bias)
        self.process_group = None

    def _normalize(self, input, function):
        if self.training and dist.is_initialized():
            function = functools.partial(sync_batch_norm, relu=function is F.batch_norm_relu)
        return super()._normalize(input, function)

    @classmethod
    def convert_sync_batchnorm(cls, module, process_group=None):
        """``module`` with every BatchNorm1d/BatchNorm2d in it (itself included) replaced by a
        SyncBatchNorm holding the same parameters, buffers, configuration and training mode; the
        module itself, changed in place, unless it is a batch norm layer (then the new layer)."""
        output = module
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            output = cls(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats,
                         process_group, bias=module.bias is not None)
            for name in ("weight", "bias"):
                if getattr(module, name) is not None:
                    setattr(output, name, getattr(module, name))
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                setattr(output, name, getattr(module, name))
            output.train(module.training)
        for name, child in module.named_children():
            output.add_module(name, cls.convert_sync_batchnorm(child, process_group))
        return output


class _AffineNorm(Module):
    """A normalisation with an optional affine ``weight`` (ones) and ``bias`` (zeros) of ``shape``."""

    def _register_affine(self, shape, weight, bias):
        if weight:
            self.weight = Parameter(ones(*shape))
        else:
            self.register_parameter("weight", None)
        if weight and bias:
            self.bias = Parameter(zeros(*shape))
        else:
            self.register_parameter("bias", None)

    def reset_parameters(self):
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)


class LayerNorm(_AffineNorm):
    """Normalisation over the last dims given by ``normalized_shape``, with an element-wise affine
    ``weight`` and ``bias`` of that shape (torch.nn.LayerNorm)."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, numbers.Integral) else normalized_shape
        self.normalized_shape = tuple(int(n) for n in shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        self._register_affine(self.normalized_shape, elementwise_affine, bias)

    def forward(self, input):
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")


class GroupNorm(_AffineNorm):
    """Normalisation of ``num_groups`` groups of channels per sample, with a per-channel affine
    ``weight`` and ``bias`` (``bias=False``, keyword-only, drops it) (torch.nn.GroupNorm)."""

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, *, bias=True):
        super().__init__()
        if num_channels % num_groups != 0:
            raise ValueError("num_channels must be divisible by num_groups")
        self.num_groups = num_groups
        self.num_channels = num_channels
        self.eps = eps
        self.affine = affine
        self._register_affine((num_channels,), affine, bias)

    def forward(self, input):
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")


class LocalResponseNorm(Module):
    """Normalisation across ``size`` neighbouring channels (torch.nn.LocalResponseNorm; AlexNet)."""

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        self.size = size
        self.alpha = alpha
        self.beta = beta
        self.k = k

    def forward(self, input):
        return F.local_response_norm(input, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
