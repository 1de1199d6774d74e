"""Stateless network ops with ``torch.nn.functional``'s names, argument order and defaults.

Each family lives in ``pyconvnet.ops``; this module is the public face that gathers them.
"""

from ..ops.conv import *  # noqa: F401,F403  conv2d, conv_transpose2d, linear, pad
from ..ops.pooling import *  # noqa: F401,F403  max_pool2d, avg_pool2d, adaptive_*_pool2d, interpolate
from ..ops.elementwise import *  # noqa: F401,F403  cat, add_relu
from ..ops.fused import *  # noqa: F401,F403  conv2d_relu_max_pool2d, linear_relu
from ..ops.loss import *  # noqa: F401,F403  softmax, log_softmax and the losses
from ..ops.normalization import *  # noqa: F401,F403  batch_norm, batch_norm_relu, layer_norm, group_norm, local_response_norm
from ..ops.indexing import one_hot  # noqa: F401
from ..ops.activation import *  # noqa: F401,F403  relu, leaky_relu, sigmoid, tanh, gelu, silu, relu6, hardswish, ..., dropout, dropout2d
