"""``Module``: the base class of every layer and model (torch.nn.Module).

A Module registers what it is assigned: a ``Parameter`` goes to ``_parameters``, a Module to
``_modules`` and, once declared with ``register_buffer``, a Tensor to ``_buffers``. Those
three dicts drive naming (``named_parameters``, ``state_dict`` keys such as
``features.0.weight``), mode switches and checkpoint loading, with torch's semantics.
"""

from collections import OrderedDict, namedtuple

import numpy as np

from ...autograd import RemovableHandle, no_grad
from ... import devices
from ...tensor import Tensor, _parse_to_args, _resolve_dtype, _to_device
from ..parameter import Parameter

__all__ = ["Module", "RemovableHandle"]


class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What ``load_state_dict`` returns (torch's ``_IncompatibleKeys``)."""

    __slots__ = ()

    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__


def _check_member_name(module, name, kind, registry):
    """The checks torch makes before ``register_*``/``add_module`` stores ``name``."""
    if not isinstance(name, str):
        raise TypeError(f"{kind} name should be a string. Got {type(name).__name__}")
    if name == "":
        raise KeyError(f'{kind} name can\'t be empty string ""')
    if "." in name:
        raise KeyError(f'{kind} name can\'t contain ".", got: {name}')
    if hasattr(module, name) and name not in registry:
        raise KeyError(f"attribute '{name}' already exists")


def _add_indent(text, spaces):
    """Indent every line of ``text`` but the first (nested reprs)."""
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    return lines[0] + "\n" + "\n".join(" " * spaces + line for line in lines[1:])


def _name_failing_layer(module, error, args):
    """Prefix ``error``'s message with the layer that raised it and the input shape it got, in
    place, so the exception keeps its type and attributes (a user's ValueError subclass,
    ``json.JSONDecodeError``). ``error.module`` records the layer and stops enclosing modules
    from naming it again."""
    label = type(module).__name__ if module._modules else repr(module)
    shape = getattr(args[0], "shape", None) if args else None
    got = f" got input of shape {tuple(shape)}" if shape is not None else ""
    _prefix_message(error, f"{label}{got}: ")
    error.module = module


def _prefix_message(error, prefix):
    """Put ``prefix`` before ``error``'s message (its first argument, when that is a string)."""
    if error.args and isinstance(error.args[0], str):
        error.args = (prefix + error.args[0],) + error.args[1:]


def _as_array(value, key):
    """A state_dict value (Tensor or numpy array) as a numpy array."""
    if isinstance(value, Tensor):
        return value._array
    if isinstance(value, (np.ndarray, np.generic)):
        return np.asarray(value)
    raise TypeError(
        f"load_state_dict: value for '{key}' must be a Tensor or numpy array, got {type(value).__name__}"
    )


class Module:
    """Base class for layers and models: subclass it, assign layers and Parameters in
    ``__init__`` (after ``super().__init__()``) and define ``forward``."""

    training: bool

    def __init__(self):
        # object.__setattr__ skips our __setattr__, which needs these dicts to exist.
        set_plain = object.__setattr__
        set_plain(self, "training", True)
        set_plain(self, "_parameters", OrderedDict())
        set_plain(self, "_buffers", OrderedDict())
        set_plain(self, "_non_persistent_buffers_set", set())
        set_plain(self, "_modules", OrderedDict())
        set_plain(self, "_forward_hooks", OrderedDict())
        set_plain(self, "_forward_pre_hooks", OrderedDict())

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" function')

    def __call__(self, *args, **kwargs):
        try:
            if not (self._forward_pre_hooks or self._forward_hooks):
                return self.forward(*args, **kwargs)
            return self._call_with_hooks(args, kwargs)
        except ValueError as error:
            if not hasattr(error, "module"):  # else already named by the innermost module
                _name_failing_layer(self, error, args)
            raise

    def _call_with_hooks(self, args, kwargs):
        for hook in tuple(self._forward_pre_hooks.values()):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        output = self.forward(*args, **kwargs)
        for hook in tuple(self._forward_hooks.values()):
            result = hook(self, args, output)
            if result is not None:
                output = result
        return output

    # ------------------------------------------------------------------ hooks
    def _has_forward_hooks(self):
        """Whether a hook watches this module's calls. A fused kernel that covers it (batch norm
        + ReLU, add + ReLU) must then call it as usual, so that its hooks fire as they would in
        torch and see its own input and output."""
        return bool(self._forward_pre_hooks or self._forward_hooks)

    def register_forward_pre_hook(self, hook):
        """``hook(module, args)`` runs before ``forward``; a non-None result replaces ``args``
        (a non-tuple result becomes a 1-tuple)."""
        handle = RemovableHandle(self._forward_pre_hooks)
        self._forward_pre_hooks[handle.id] = hook
        return handle

    def register_forward_hook(self, hook):
        """``hook(module, args, output)`` runs after ``forward``; a non-None result replaces
        ``output``."""
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    # ------------------------------------------------------------------ registration
    def register_parameter(self, name, param):
        """Add ``param`` (a Parameter, or None for an absent one such as ``bias=False``)."""
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign parameter before Module.__init__() call")
        _check_member_name(self, name, "parameter", self._parameters)
        if param is not None:
            if not isinstance(param, Parameter):
                raise TypeError(
                    f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                    f"(pyconvnet.nn.Parameter or None required)"
                )
            if param.grad_fn is not None:
                raise ValueError(
                    f"Cannot assign non-leaf Tensor to parameter '{name}'. Model parameters must be "
                    f"created explicitly; compute a value from them in forward() instead."
                )
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        """Add a Tensor that is state but not a parameter (BatchNorm's running statistics).

        Persistent buffers are part of ``state_dict``; ``tensor`` may be None (absent).
        """
        if "_buffers" not in self.__dict__:
            raise AttributeError("cannot assign buffer before Module.__init__() call")
        _check_member_name(self, name, "buffer", self._buffers)
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(
                f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' (Tensor or None required)"
            )
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def add_module(self, name, module):
        """Add a child module (or None) under ``name``, as attribute assignment does."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        if "_modules" not in self.__dict__:
            raise AttributeError("cannot assign module before Module.__init__() call")
        _check_member_name(self, name, "module", self._modules)
        self._modules[name] = module

    register_module = add_module

    def __setattr__(self, name, value):
        params = self.__dict__.get("_parameters")
        if isinstance(value, Parameter):
            if params is None:
                raise AttributeError("cannot assign parameters before Module.__init__() call")
            self._forget(name)
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                    f"(pyconvnet.nn.Parameter or None expected)"
                )
            params[name] = None
        elif isinstance(value, Module):
            if params is None:
                raise AttributeError("cannot assign module before Module.__init__() call")
            self._forget(name)
            self._modules[name] = value
        elif params is not None and name in self._modules:
            if value is not None:
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as child module '{name}' (Module or None expected)"
                )
            self._modules[name] = None
        elif params is not None and name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign '{type(value).__name__}' as buffer '{name}' (Tensor or None expected)")
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name):
        """Drop ``name`` from every registry and the instance dict (before re-registering it)."""
        self.__dict__.pop(name, None)
        self._parameters.pop(name, None)
        self._buffers.pop(name, None)
        self._non_persistent_buffers_set.discard(name)
        self._modules.pop(name, None)

    def __getattr__(self, name):
        # Only called when normal lookup fails: parameters, buffers and children live in dicts.
        members = self.__dict__
        for registry in ("_parameters", "_buffers", "_modules"):
            store = members.get(registry)
            if store is not None and name in store:
                return store[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        if name in self._parameters:
            del self._parameters[name]
        elif name in self._buffers:
            del self._buffers[name]
            self._non_persistent_buffers_set.discard(name)
        elif name in self._modules:
            del self._modules[name]
        else:
            object.__delattr__(self, name)

    def __dir__(self):
        members = list(super().__dir__()) + list(self._parameters) + list(self._buffers) + list(self._modules)
        return sorted(key for key in set(members) if not key[0].isdigit())

    # ------------------------------------------------------------------ traversal
    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        """(name, module) for this module and every descendant, depth first; a module reached
        twice is listed once unless ``remove_duplicate`` is False."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if self in memo:
                return
            memo.add(self)
        yield prefix, self
        for name, module in self._modules.items():
            if module is not None:
                child_prefix = prefix + "." + name if prefix else name
                yield from module.named_modules(memo, child_prefix, remove_duplicate)

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        """(name, module) for each direct child (each module object once)."""
        seen = set()
        for name, module in self._modules.items():
            if module is not None and module not in seen:
                seen.add(module)
                yield name, module

    def children(self):
        for _, module in self.named_children():
            yield module

    def _named_members(self, registry, prefix, recurse, remove_duplicate):
        modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        seen = set()
        for module_prefix, module in modules:
            for name, value in getattr(module, registry).items():
                if value is None or (remove_duplicate and value in seen):
                    continue
                if remove_duplicate:
                    seen.add(value)
                yield (module_prefix + "." + name if module_prefix else name), value

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """(dotted name, Parameter) pairs; a Parameter shared by several modules comes once."""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse=True):
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse=True):
        for _, buffer in self.named_buffers(recurse=recurse):
            yield buffer

    def get_submodule(self, target):
        """The module at dotted path ``target`` ('' is this module)."""
        if target == "":
            return self
        module = self
        walked = type(self).__name__
        for item in target.split("."):
            if not hasattr(module, item):
                raise AttributeError(f"{walked} has no attribute `{item}`")
            module = getattr(module, item)
            if not isinstance(module, Module):
                raise AttributeError(f"`{item}` is not an nn.Module")
            walked = type(module).__name__
        return module

    def get_parameter(self, target):
        """The Parameter at dotted path ``target`` (e.g. ``'features.0.weight'``)."""
        return self._get_member(target, "_parameters", "parameter")

    def get_buffer(self, target):
        """The buffer at dotted path ``target`` (e.g. ``'bn1.running_mean'``)."""
        return self._get_member(target, "_buffers", "buffer")

    def _get_member(self, target, registry, kind):
        module_path, _, name = target.rpartition(".")
        module = self.get_submodule(module_path)
        members = getattr(module, registry)
        if name not in members:
            raise AttributeError(f"{type(module).__name__} has no {kind} `{name}`")
        return members[name]

    # ------------------------------------------------------------------ modes and gradients
    def train(self, mode=True):
        """Set training mode on this module and every descendant; returns self."""
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        for module in self.modules():
            module.training = mode
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        """Drop (or, with ``set_to_none=False``, zero) every parameter's ``.grad``."""
        for param in self.parameters():
            if param._grad is None:
                continue
            if set_to_none:
                param._grad = None
            else:
                param._grad._array.fill(0)

    def apply(self, fn):
        """Call ``fn(module)`` on every child (recursively), then on self; returns self."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    def to(self, *args, **kwargs):
        """Moves every parameter and buffer (and gradient) to the device in place and returns self:
        the Parameter and buffer objects stay the same, so an optimizer built before still holds them.
        Modules are float32 only."""
        device, dtype, kwargs = _parse_to_args(args, kwargs)
        if kwargs:
            raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
        if dtype is not None and _resolve_dtype(dtype) != np.float32:
            raise TypeError(f"Module.to: only float32 modules are supported, got dtype {np.dtype(dtype)}")
        if device is not None:
            for module in self.modules():
                for tensor in [*module._parameters.values(), *module._buffers.values()]:
                    if tensor is not None:
                        tensor._array = _to_device(tensor._array, device)
                        if tensor._grad is not None:
                            tensor._grad._array = _to_device(tensor._grad._array, device)
        return self

    def cpu(self):
        return self.to(devices.CPU)

    def cuda(self, device=None):
        return self.to(devices.device("cuda") if device is None else devices.device(device))

    # ------------------------------------------------------------------ state dict
    def state_dict(self, *, destination=None, prefix="", keep_vars=False):
        """Parameters and persistent buffers by dotted name, as Tensors sharing storage
        (detached unless ``keep_vars``), this module's own first, then each child's."""
        if destination is None:
            destination = OrderedDict()
        for name, param in self._parameters.items():
            if param is not None:
                destination[prefix + name] = param if keep_vars else param.detach()
        for name, buffer in self._buffers.items():
            if buffer is not None and name not in self._non_persistent_buffers_set:
                destination[prefix + name] = buffer if keep_vars else buffer.detach()
        for name, module in self._modules.items():
            if module is not None:
                module.state_dict(destination=destination, prefix=prefix + name + ".", keep_vars=keep_vars)
        return destination

    def load_state_dict(self, state_dict, strict=True):
        """Copy parameters and buffers from ``state_dict`` (name -> Tensor or numpy array).

        Every key is checked before anything is copied: a shape mismatch always raises, and
        with ``strict`` so do missing and unexpected keys; on error nothing is loaded and the
        RuntimeError lists every problem. Returns ``(missing_keys, unexpected_keys)``.
        """
        if not hasattr(state_dict, "keys") or not hasattr(state_dict, "__getitem__"):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict).__name__}.")
        own = self.state_dict(keep_vars=True)
        missing = [key for key in own if key not in state_dict]
        unexpected = [key for key in state_dict.keys() if key not in own]
        errors = []
        if strict:
            if unexpected:
                errors.append("Unexpected key(s) in state_dict: " + ", ".join(f'"{key}"' for key in unexpected) + ". ")
            if missing:
                errors.append("Missing key(s) in state_dict: " + ", ".join(f'"{key}"' for key in missing) + ". ")
        copies = []
        for key, target in own.items():
            if key not in state_dict:
                continue
            source = _as_array(state_dict[key], key)
            if source.shape != target._array.shape:
                errors.append(
                    f"size mismatch for {key}: copying a param with shape {list(source.shape)} from checkpoint, "
                    f"the shape in current model is {list(target._array.shape)}."
                )
            else:
                copies.append((target, source))
        if errors:
            raise RuntimeError(
                f"Error(s) in loading state_dict for {type(self).__name__}:\n\t" + "\n\t".join(errors)
            )
        with no_grad():
            for target, source in copies:
                np.copyto(target._array, _to_device(source, target.device), casting="unsafe")
        return _IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------------ repr
    def extra_repr(self):
        """This module's settings for ``repr``, e.g. ``'in_features=4, out_features=2, bias=True'``."""
        return ""

    def _get_name(self):
        return type(self).__name__

    def __repr__(self):
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({name}): " + _add_indent(repr(module), 2) for name, module in self._modules.items()]
        lines = extra_lines + child_lines
        if not lines:
            body = ""
        elif len(extra_lines) == 1 and not child_lines:
            body = extra_lines[0]
        else:
            body = "\n  " + "\n  ".join(lines) + "\n"
        return f"{self._get_name()}({body})"
