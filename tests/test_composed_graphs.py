"""Gradients of composed graphs — residual add, channel concat, a weight shared by two layers —
through every op family at once, against the same graph built in PyTorch in float64."""

import numpy as np
import pytest

import pyconvnet as pcn
import pyconvnet.nn.functional as F
from support import assert_close, random_array


def _forward(lib, fn, x, params, labels):
    """One graph written once for both libraries: ``lib`` is torch or pyconvnet, ``fn`` its
    functional module."""
    conv_w, conv2_w, bn_w, bn_b, fc_w, fc_b = params
    stem = fn.relu(fn.conv2d(x, conv_w, None, 1, 1))
    mean, var = lib.zeros(8, dtype=x.dtype), lib.ones(8, dtype=x.dtype)
    branch = fn.batch_norm(fn.conv2d(stem, conv2_w, None, 1, 1), mean, var, bn_w, bn_b, training=True)
    residual = fn.relu(branch + stem)                    # residual add
    shared = fn.conv2d(residual, conv2_w, None, 1, 1)    # conv2_w used a second time
    joined = lib.cat([residual, fn.max_pool2d(shared, 3, 1, 1)], 1)  # inception-style concat
    pooled = fn.adaptive_avg_pool2d(joined, 1).flatten(1)
    logits = fn.linear(pooled, fc_w, fc_b)
    return fn.cross_entropy(logits, labels, label_smoothing=0.1)


@pytest.mark.parametrize("batch", [1, 4])
def test_composed_graph_gradients_match_torch(isa, batch):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    x = random_array(rng, batch, 3, 9, 9)
    params = [random_array(rng, 8, 3, 3, 3) * 0.3, random_array(rng, 8, 8, 3, 3) * 0.2, random_array(rng, 8) + 1,
              random_array(rng, 8), random_array(rng, 5, 16) * 0.3, random_array(rng, 5)]
    labels = np.arange(batch) % 5
    ours = [pcn.tensor(p, requires_grad=True) for p in params]
    ox = pcn.tensor(x, requires_grad=True)
    loss = _forward(pcn, F, ox, ours, pcn.tensor(labels))
    loss.backward()
    theirs = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in params]
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    torch_loss = _forward(torch, torch.nn.functional, tx, theirs, torch.tensor(labels))
    torch_loss.backward()
    assert_close(loss.item(), torch_loss.item(), what="loss")
    assert_close(ox.grad.numpy(), tx.grad.numpy(), what="grad x")
    for name, a, b in zip(["conv", "conv2 (shared)", "bn weight", "bn bias", "fc weight", "fc bias"], ours, theirs):
        assert_close(a.grad.numpy(), b.grad.numpy(), what=f"grad {name}")
