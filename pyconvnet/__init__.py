"""pyconvnet: fast CPU training of classic convolutional networks behind a PyTorch-like API.

``import pyconvnet as torch`` is meant to run ported PyTorch CNN scripts unchanged; the
public names below mirror torch's.
"""

try:
    from . import _C
except ImportError:
    import importlib.util

    # A checkout's pyconvnet/ holds no compiled extension: Python found the source tree (the working
    # directory comes first on sys.path) instead of an installed package.
    if importlib.util.find_spec(__name__ + "._C") is not None:
        raise  # the extension is there but does not load: its own error says why
    raise ImportError(
        f"pyconvnet at {__path__[0]} is not built: it has no compiled extension pyconvnet._C, which is "
        "what a source checkout looks like. Install the package with `pip install .` and run Python "
        "outside the source tree (inside it, the sources shadow the installed package), or, to "
        "develop, build it in place with `pip install --no-build-isolation -e .`."
    ) from None
from . import backend
from .backend import (
    are_deterministic_algorithms_enabled,
    get_num_threads,
    set_num_threads,
    use_deterministic_algorithms,
)
from .autograd import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from .checkpoint import load, load_state_dict_file, save
from .devices import device
from .random import Generator, initial_seed, manual_seed
from .tensor import Size, Tensor, bool_, float32, int64
from .creation import *  # noqa: F401,F403  tensor, zeros, arange, randn, ...
from .functions import *  # noqa: F401,F403  torch.max, torch.stack, torch.where, ...
from . import accelerator, amp, backends, cuda  # noqa: E402
from .amp import autocast, bfloat16, get_autocast_dtype, is_autocast_enabled  # noqa: E402
# After Tensor: these build on it.
from . import distributed, models, nn, optim  # noqa: E402 (distributed imports mpi4py only when used)
from . import utils, vision  # noqa: E402 (torch.utils / torchvision module paths)
from .ops.elementwise import cat  # noqa: E402
from .summary import summary  # noqa: E402

# torch's dtype aliases (they shadow the builtins only inside this namespace, as in torch).
float = float32
long = int64
bool = bool_

__version__ = _C.build_info["version"]  # pyproject.toml's, recorded in the extension at build time
