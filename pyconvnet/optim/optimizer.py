"""``Optimizer``: the base class of pyconvnet's optimisers (torch.optim.Optimizer).

It owns the parameter groups (each a dict of ``params`` plus options, missing options taken
from ``defaults``), the per-parameter ``state`` (a dict keyed by the parameter Tensor),
``zero_grad``, ``add_param_group`` and ``state_dict``/``load_state_dict`` in torch's format:
parameters are referenced by their index across all groups and state tensors stay Tensors.

Differences from torch, by design: parameters must be float32 Tensors (the fused update
kernels' only dtype); ``load_state_dict`` copies the state tensors it is given (torch may alias
them); there are no step or state-dict hooks and no ``foreach``/``fused``/``capturable``
options (every update is one fused C++ pass per parameter).
"""

import copy
import warnings
from collections import defaultdict
from itertools import chain

import numpy as np

from .. import devices
from ..autograd import enable_grad, no_grad
from ..tensor import Tensor, _to_device, float32

__all__ = ["Optimizer"]


class Optimizer:
    """Base class: subclasses pass their option ``defaults`` and implement ``_update_group``
    (or override ``step`` entirely, as torch subclasses do)."""

    def __init__(self, params, defaults):
        if isinstance(params, Tensor):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or dicts, "
                f"but got {type(params).__name__}"
            )
        self.defaults = defaults
        self.state = defaultdict(dict)
        self.param_groups = []
        param_groups = list(params)
        if not param_groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for group in param_groups:
            self.add_param_group(group)

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for index, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {index}")
            lines.extend(f"    {key}: {group[key]}" for key in sorted(group) if key != "params")
        return "\n".join(lines) + "\n)"

    def add_param_group(self, param_group):
        """Add a group (a dict with ``params`` and any options overriding the defaults)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but the ordering "
                "of tensors in sets will change between runs. Please use a list instead."
            )
        else:
            params = list(params)
        # (name, Tensor) pairs, as from Module.named_parameters(), record the names.
        named = [isinstance(p, tuple) for p in params]
        if any(named):
            if not all(named):
                raise ValueError("all optimizer params should be with/without names. Some param names are missing")
            param_group["param_names"] = [name for name, _ in params]
            params = [p for _, p in params]
        for param in params:
            _check_param(param)
        param_group["params"] = params
        for name, default in self.defaults.items():
            param_group.setdefault(name, default)
        if len(params) != len(set(params)):
            warnings.warn(
                "optimizer contains a parameter group with duplicate parameters; each is updated once "
                "per occurrence",
                UserWarning,
                stacklevel=3,
            )
        for group in self.param_groups:
            if ("param_names" in group) != ("param_names" in param_group):
                kind = "with names" if "param_names" in param_group else "without names"
                raise ValueError(
                    "all optimizer param groups should be with/without names. "
                    f"cannot add param group {kind} to the optimizer"
                )
            if not set(group["params"]).isdisjoint(params):
                raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)

    def zero_grad(self, set_to_none=True):
        """Reset every parameter's ``.grad``: to None (the default), or fill it with zeros."""
        for group in self.param_groups:
            for param in group["params"]:
                grad = param._grad
                if grad is None:
                    continue
                if set_to_none:
                    param._grad = None
                else:
                    grad.detach_()
                    grad._array.fill(0.0)

    def step(self, closure=None):
        """Update the parameters once, group by group; returns the loss that ``closure`` (run
        first, with grad mode on, as in torch) re-evaluates, or None without a closure."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                self._update_group(group)
        return loss

    def _update_group(self, group):
        """Update the parameters of ``group`` that have a gradient (each subclass's rule)."""
        raise NotImplementedError

    def _params_with_grad(self, group):
        """``(param, grad, state)`` for each parameter of ``group`` that has a gradient."""
        for param in group["params"]:
            if param._grad is not None:
                yield param, param._grad, self.state[param]

    # ------------------------------------------------------------------ state dicts
    def state_dict(self):
        """``{'state': {index: {name: value}}, 'param_groups': [{..., 'params': [index, ...]}]}``.

        Parameters are numbered in group order; the state values are the live Tensors (not
        copies), as in torch.
        """
        index_of = {}
        groups = []
        for group in self.param_groups:
            packed = {key: value for key, value in group.items() if key != "params"}
            for param in group["params"]:
                index_of.setdefault(id(param), len(index_of))
            packed["params"] = [index_of[id(param)] for param in group["params"]]
            groups.append(packed)
        state = {index_of[id(param)]: values for param, values in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Load a ``state_dict()`` (this optimiser's or an identically grouped one's).

        Group options are replaced by the saved ones; state tensors (or arrays) are copied as
        float32 Tensors. Raises ValueError when the group counts or sizes differ.
        """
        saved_groups = copy.deepcopy(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                "loaded state dict has a different number of parameter groups "
                f"({len(saved_groups)} saved, {len(self.param_groups)} in the optimizer)"
            )
        saved_sizes = [len(g["params"]) for g in saved_groups]
        sizes = [len(g["params"]) for g in self.param_groups]
        if saved_sizes != sizes:
            raise ValueError(
                "loaded state dict contains a parameter group that doesn't match the size of "
                f"optimizer's group (saved sizes {saved_sizes}, optimizer's {sizes})"
            )
        param_of = dict(
            zip(
                chain.from_iterable(g["params"] for g in saved_groups),
                chain.from_iterable(g["params"] for g in self.param_groups),
            )
        )
        state = defaultdict(dict)
        for index, values in state_dict["state"].items():
            if index in param_of:
                param = param_of[index]
                state[param] = {key: _loaded_state_value(param, index, key, v) for key, v in values.items()}
            else:
                state[index] = values
        for group, saved in zip(self.param_groups, saved_groups):
            saved["params"] = group["params"]
            if "param_names" in group and "param_names" not in saved:
                saved["param_names"] = group["param_names"]
        self.state = state
        self.param_groups = saved_groups


def _zero_step():
    """A fresh step count as torch keeps it: a float32 scalar Tensor."""
    return Tensor._wrap(np.zeros((), np.float32))


def _zeros_like(param):
    """A fresh zero state buffer of the parameter's shape."""
    return Tensor._wrap(np.zeros_like(param._array))


def _check_param(param):
    if not isinstance(param, Tensor):
        raise TypeError(f"optimizer can only optimize Tensors, but one of the params is {type(param).__name__}")
    if not param.is_leaf:
        raise ValueError("can't optimize a non-leaf Tensor")
    if param.dtype != float32:
        raise TypeError(f"optimizer can only optimize float32 Tensors, but one of the params is {param.dtype}")


def _loaded_state_value(param, index, key, value):
    """A state entry as loaded: Tensors, arrays, numpy scalars and a ``step`` count kept as a
    Python number (older checkpoints) become fresh float32 Tensors; a parameter-shaped buffer
    must have the parameter's shape and goes to the parameter's device (``step`` stays on the host)."""
    if isinstance(value, Tensor):
        value = _to_device(value._array, devices.CPU)
    elif key == "step" and isinstance(value, (int, float)):
        value = np.float32(value)
    if not isinstance(value, (np.ndarray, np.generic)):
        return value
    # Converted here rather than by Tensor(value), which reads a numpy integer as a size.
    loaded = Tensor._wrap(np.array(value, dtype=np.float32))
    if key != "step" and loaded.shape != param.shape:
        raise ValueError(
            f"loaded state dict entry state[{index}][{key!r}] has shape {list(loaded.shape)}, "
            f"but the parameter has shape {list(param.shape)}"
        )
    return loaded if key == "step" else loaded.to(param.device)
