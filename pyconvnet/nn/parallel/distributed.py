"""``DistributedDataParallel``: one model replica per MPI rank, gradients averaged over the ranks
while backward still runs.

At wrap time every rank checks that all ranks hold the same parameter and buffer names and shapes
(one small object all-gather, so a mismatch is the same error on every rank, never a hang), then
takes rank 0's parameters and buffers. The parameters that require grad are laid out, in reverse
registration order (roughly the order backward produces their gradients), into flat float32
buckets of at most ``bucket_cap_mb``. A post-accumulate-grad hook copies each finished gradient
into its bucket; a full bucket starts its non-blocking all-reduce at once, buckets always in the
same order on every rank (MPI matches collectives by order). When backward ends, an engine
callback starts the buckets still waiting (a parameter that got no gradient this pass contributes
its current ``.grad`` or zeros), waits for all of them and writes the averages back into ``.grad``,
so the optimiser step sees reduced gradients.
"""

import contextlib
import weakref

import numpy as np

from ... import autograd, distributed as dist
from ...tensor import Tensor
from ..modules.module import Module

__all__ = ["DistributedDataParallel"]


class _Bucket:
    """A flat float32 buffer holding a group of parameters' gradients end to end."""

    def __init__(self, parameters):
        self.parameters = parameters
        self.offsets = np.cumsum([0] + [p.numel() for p in parameters]).tolist()
        self.flat = np.zeros(self.offsets[-1], dtype=np.float32)
        self.ready = [False] * len(parameters)
        self.waiting = len(parameters)
        self.work = None

    def slot(self, index):
        return self.flat[self.offsets[index]:self.offsets[index + 1]]

    def reset(self):
        self.ready = [False] * len(self.parameters)
        self.waiting = len(self.parameters)
        self.work = None


class DistributedDataParallel(Module):
    # Keyword-only past broadcast_buffers: torch's next positional arguments are ones pyconvnet has no
    # use for. Parameters without a gradient in a pass are always handled (torch needs
    # find_unused_parameters=True for them), so that flag is accepted and changes nothing.
    def __init__(self, module, device_ids=None, output_device=None, dim=0, broadcast_buffers=True, *,
                 bucket_cap_mb=25, find_unused_parameters=False):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: module must be a Module, got {type(module).__name__}")
        if isinstance(bucket_cap_mb, bool) or not isinstance(bucket_cap_mb, (int, float)) or not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be a positive number, got {bucket_cap_mb!r}")
        if not dist.is_initialized():
            raise RuntimeError("DistributedDataParallel: call pyconvnet.distributed.init_process_group() first")
        self.module = module
        self.device_ids = []
        self.output_device = None
        self.dim = dim
        self.broadcast_buffers = broadcast_buffers
        self.bucket_cap_mb = bucket_cap_mb
        self.find_unused_parameters = find_unused_parameters
        self.require_backward_grad_sync = True
        _check_same_architecture(module)
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor, src=0)
        self._buckets = _make_buckets(module, bucket_cap_mb)
        self._sync_this_backward = False
        self._pass_started = False
        self._next_launch = 0
        self._hook_handles = [
            autograd.register_post_accumulate_grad_hook(param, self._grad_ready_hook(bucket, index))
            for bucket in self._buckets for index, param in enumerate(bucket.parameters)]

    def forward(self, *inputs, **kwargs):
        if self._pass_started:
            raise RuntimeError("DistributedDataParallel: the previous backward pass ended before its gradient "
                               "reduction finished (it raised); the ranks can no longer be kept in step")
        # As torch, whether the coming backward synchronises is decided by the forward (see no_sync).
        self._sync_this_backward = self.require_backward_grad_sync and autograd.is_grad_enabled()
        if self.broadcast_buffers and dist.get_world_size() > 1:
            for buffer in self.module.buffers():
                dist.broadcast(buffer, src=0)
        return self.module(*inputs, **kwargs)

    @contextlib.contextmanager
    def no_sync(self):
        """Backward passes of forwards run inside only accumulate into ``.grad`` locally; the first
        synchronised backward after it averages the accumulated gradients."""
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    # ------------------------------------------------------------------ gradient reduction
    def _grad_ready_hook(self, bucket, index):
        # A weak reference: the hooks live on the parameters, which must not keep a dropped wrapper alive.
        wrapper = weakref.ref(self)

        def grad_ready(param):
            ddp = wrapper()
            if ddp is None or not ddp._sync_this_backward:
                return
            if not ddp._pass_started:
                ddp._pass_started = True
                autograd.queue_callback(ddp._finish_reduction)
            np.copyto(bucket.slot(index), param.grad._array.reshape(-1))
            bucket.ready[index] = True
            bucket.waiting -= 1
            if bucket.waiting == 0:
                ddp._launch_ready_buckets()
            for other in ddp._buckets[:ddp._next_launch]:
                other.work.is_completed()  # lets MPI progress the reductions in flight

        return grad_ready

    def _launch_ready_buckets(self):
        while self._next_launch < len(self._buckets) and self._buckets[self._next_launch].waiting == 0:
            self._launch(self._buckets[self._next_launch])

    def _launch(self, bucket):
        bucket.work = dist.all_reduce(Tensor._wrap(bucket.flat), op=dist.ReduceOp.AVG, async_op=True)
        self._next_launch += 1

    def _finish_reduction(self):
        """End of backward: start what still waits (parameters that got no gradient this pass send
        their current ``.grad``, or zeros), wait for every bucket, write the averages back."""
        for bucket in self._buckets[self._next_launch:]:
            for index, param in enumerate(bucket.parameters):
                if not bucket.ready[index]:
                    grad = param.grad
                    bucket.slot(index)[:] = 0.0 if grad is None else grad._array.reshape(-1)
            self._launch(bucket)
        for bucket in self._buckets:
            bucket.work.wait()
            for index, param in enumerate(bucket.parameters):
                _write_grad(param, bucket.slot(index))
            bucket.reset()
        self._pass_started = False
        self._next_launch = 0
        self._sync_this_backward = False


def _write_grad(param, reduced):
    grad = param.grad
    if grad is not None and grad._array.flags.writeable:
        np.copyto(grad._array, reduced.reshape(grad._array.shape))
    elif grad is not None or reduced.any():  # no rank had a gradient: it stays None, as torch
        param.grad = Tensor._wrap(reduced.reshape(param.shape).copy())


def _make_buckets(module, bucket_cap_mb):
    cap_bytes = bucket_cap_mb * 2**20
    buckets, current, current_bytes = [], [], 0
    for param in reversed([p for p in module.parameters() if p.requires_grad]):
        nbytes = param.numel() * 4
        if current and current_bytes + nbytes > cap_bytes:
            buckets.append(_Bucket(current))
            current, current_bytes = [], 0
        current.append(param)
        current_bytes += nbytes
    if current:
        buckets.append(_Bucket(current))
    return buckets


def _describe(module):
    """What must agree across ranks: every parameter's and buffer's name, shape and dtype, in order."""
    return ([("parameter", name, tuple(p.shape), str(p.dtype), p.requires_grad)
             for name, p in module.named_parameters()] +
            [("buffer", name, tuple(b.shape), str(b.dtype)) for name, b in module.named_buffers()])


def _check_same_architecture(module):
    descriptions = [None] * dist.get_world_size()
    dist.all_gather_object(descriptions, _describe(module))
    reference = descriptions[0]
    for rank, description in enumerate(descriptions[1:], start=1):
        if description == reference:
            continue
        for ours, theirs in zip(reference, description):
            if ours != theirs:
                raise RuntimeError(f"DistributedDataParallel: the ranks hold different models: rank 0 has "
                                   f"{_entry(ours)} where rank {rank} has {_entry(theirs)}")
        raise RuntimeError(f"DistributedDataParallel: the ranks hold different models: rank 0 has "
                           f"{len(reference)} parameters and buffers, rank {rank} has {len(description)}")


def _entry(entry):
    kind, name, shape, dtype = entry[:4]
    frozen = ", requires_grad=False" if entry[4:] == (False,) else ""
    return f"{kind} {name!r} of shape {list(shape)} ({dtype}{frozen})"
