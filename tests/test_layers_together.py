"""The layers added for ported PyTorch scripts working together: a small encoder-decoder with
GroupNorm, GELU, SiLU, Hardswish, Dropout2d (eval), Upsample, ConvTranspose2d and LayerNorm, trained
for a few SGD steps with BCEWithLogitsLoss and clip_grad_norm_, against torch holding the same weights."""

import numpy as np
import pytest

import pyconvnet as pcn
from support import assert_close


def _model(nn):
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.GroupNorm(4, 8),
        nn.GELU(),
        nn.Dropout2d(0.3),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.SiLU(),
        nn.Upsample(scale_factor=2, mode="bilinear"),
        nn.Conv2d(8, 8, 3, stride=2, padding=1),
        nn.Hardswish(),
        nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1),
        nn.LayerNorm([4, 8, 8]),
        nn.ReLU6(),
        nn.Conv2d(4, 1, 1),
    )


def test_training_steps_match_torch():
    torch = pytest.importorskip("torch")
    ours, theirs = _model(pcn.nn), _model(torch.nn)
    ours.load_state_dict({k: pcn.tensor(v.detach().numpy()) for k, v in theirs.state_dict().items()})
    ours.train()
    theirs.train()
    ours[3].eval()  # dropout masks differ between the libraries: keep that layer the identity
    theirs[3].eval()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 8, 8)).astype(np.float32)
    target = (rng.random((4, 1, 8, 8)) > 0.5).astype(np.float32)
    pos_weight = np.array([2.0], np.float32)
    ours_opt = pcn.optim.SGD(ours.parameters(), lr=0.1, momentum=0.9)
    theirs_opt = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9)
    ours_loss_fn = pcn.nn.BCEWithLogitsLoss(pos_weight=pcn.tensor(pos_weight))
    theirs_loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight))
    for step in range(3):
        ours_opt.zero_grad()
        theirs_opt.zero_grad()
        loss = ours_loss_fn(ours(pcn.tensor(x)), pcn.tensor(target))
        expected = theirs_loss_fn(theirs(torch.tensor(x)), torch.tensor(target))
        loss.backward()
        expected.backward()
        norm = pcn.nn.utils.clip_grad_norm_(ours.parameters(), 0.5)
        expected_norm = torch.nn.utils.clip_grad_norm_(theirs.parameters(), 0.5)
        assert_close(loss.detach().numpy(), expected.detach().numpy(), rtol=1e-4, what=f"loss at step {step}")
        assert_close(norm.numpy(), expected_norm.numpy(), rtol=1e-3, what=f"gradient norm at step {step}")
        ours_opt.step()
        theirs_opt.step()
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
        assert_close(p.detach().numpy(), q.detach().numpy(), rtol=1e-3, what=name)
