"""nn.SyncBatchNorm: convert_sync_batchnorm, plain batch norm without a process group, torch's
BatchNorm parity in a world of one (the synchronised path), and on 2 MPI ranks under DDP the same
weights and running statistics as one rank with the whole batch (see mpi_support)."""

import numpy as np
import pytest

import pyconvnet as pcn
from pyconvnet import nn
from mpi_support import needs_mpi, run_python, run_ranks


def test_convert_sync_batchnorm_replaces_every_batch_norm_keeping_its_state():
    inner = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, eps=1e-3, momentum=None), nn.ReLU())
    model = nn.Sequential(inner, nn.Flatten(), nn.Linear(4, 5), nn.BatchNorm1d(5, affine=False),
                          nn.BatchNorm1d(5, bias=False, track_running_stats=False))
    model.eval()
    old = [inner[1], model[3], model[4]]
    old[0].running_mean.fill_(0.5)
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert converted is model
    new = [inner[1], model[3], model[4]]
    for before, after in zip(old, new):
        assert type(after) is nn.SyncBatchNorm and not after.training
        for name in ("num_features", "eps", "momentum", "affine", "track_running_stats"):
            assert getattr(after, name) == getattr(before, name), name
        for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            assert getattr(after, name) is getattr(before, name), name
    assert new[2].bias is None and new[2].weight is not None
    assert list(model.state_dict()) == list(nn.Sequential(inner, nn.Flatten(), nn.Linear(4, 5), nn.BatchNorm1d(
        5, affine=False), nn.BatchNorm1d(5, bias=False, track_running_stats=False)).state_dict())
    layer = nn.BatchNorm2d(3)
    assert type(nn.SyncBatchNorm.convert_sync_batchnorm(layer)) is nn.SyncBatchNorm
    with pytest.raises(ValueError, match="process_group must be None"):
        nn.SyncBatchNorm(3, process_group="world")


def test_without_a_process_group_it_is_batch_norm():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 5, 5)).astype(np.float32)
    plain, synced = nn.BatchNorm2d(3), nn.SyncBatchNorm(3)
    for layer in (plain, synced):
        layer(pcn.tensor(x))
    np.testing.assert_array_equal(synced.running_var.numpy(), plain.running_var.numpy())
    with pytest.raises(ValueError, match="at least 2D|expected 2D"):
        synced(pcn.ones(3))


# In a world of one (no mpiexec) the synchronised path runs: it must equal torch's BatchNorm.
WORLD_OF_ONE = """
import numpy as np
import torch
import pyconvnet as pcn
from pyconvnet import distributed as dist, nn

dist.init_process_group()
rng = np.random.default_rng(1)
cases = [((6, 3, 5, 4), 0.1, True, False), ((6, 3, 5, 4), None, False, False), ((9, 4), 0.3, True, False),
         ((5, 2, 7), 0.1, True, True), ((4, 3, 3, 3), 0.1, True, True)]
for shape, momentum, affine, relu in cases:
    ours = nn.SyncBatchNorm(shape[1], momentum=momentum, affine=affine)
    theirs = {2: torch.nn.BatchNorm1d, 3: torch.nn.BatchNorm1d, 4: torch.nn.BatchNorm2d}[len(shape)](
        shape[1], momentum=momentum, affine=affine)
    if affine:
        w, b = rng.standard_normal(shape[1]).astype(np.float32), rng.standard_normal(shape[1]).astype(np.float32)
        ours.weight.data.copy_(pcn.tensor(w)); ours.bias.data.copy_(pcn.tensor(b))
        with torch.no_grad():
            theirs.weight.copy_(torch.tensor(w)); theirs.bias.copy_(torch.tensor(b))
    for step in range(3):
        x = (rng.standard_normal(shape) * 3 + 2).astype(np.float32)
        gy = rng.standard_normal(shape).astype(np.float32)
        xo, xt = pcn.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        yo = ours.forward_relu(xo) if relu else ours(xo)
        yt = torch.relu(theirs(xt)) if relu else theirs(xt)
        (yo * pcn.tensor(gy)).sum().backward()
        (yt * torch.tensor(gy)).sum().backward()
        np.testing.assert_allclose(yo.detach().numpy(), yt.detach().numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), rtol=1e-4, atol=1e-5)
        if affine:
            for p, q in ((ours.weight, theirs.weight), (ours.bias, theirs.bias)):
                np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-4, atol=1e-4)
                p.grad = None; q.grad = None
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        np.testing.assert_allclose(getattr(ours, name).numpy(), getattr(theirs, name).numpy(), rtol=1e-5, atol=1e-6)
    ours.eval(); theirs.eval()
    x = rng.standard_normal(shape).astype(np.float32)
    np.testing.assert_allclose(ours(pcn.tensor(x)).detach().numpy(), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-5,
                               atol=1e-5)
try:
    nn.SyncBatchNorm(2)(pcn.ones(1, 2))
except ValueError as error:
    print(error)
print("ok")
"""


@needs_mpi
def test_in_a_world_of_one_it_matches_torch_batch_norm():
    pytest.importorskip("torch")
    result = run_python(WORLD_OF_ONE)
    assert result.returncode == 0, result.stderr
    assert "Expected more than 1 value per channel when training" in result.stdout
    assert result.stdout.rstrip().endswith("ok")


# A conv net with batch norm (one fused with its ReLU, one plain, one 1d), converted and wrapped in
# DDP, trained by SGD with momentum; each of N ranks takes BATCH / N samples of the global batch.
TRAIN = """
import sys
import numpy as np
import pyconvnet as pcn
from pyconvnet import distributed as dist, nn

dist.init_process_group()
rank, world = dist.get_rank(), dist.get_world_size()


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1, self.relu = nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU()
        self.conv2, self.bn2 = nn.Conv2d(4, 6, 3), nn.BatchNorm2d(6, momentum=None)
        self.fc1, self.bn3, self.fc2 = nn.Linear(6 * 6 * 6, 8), nn.BatchNorm1d(8), nn.Linear(8, 10)

    def forward(self, x):
        x = self.bn1.forward_relu(self.conv1(x), self.relu)
        x = pcn.relu(self.bn2(self.conv2(x)))
        return self.fc2(pcn.relu(self.bn3(self.fc1(x.flatten(1)))))


pcn.manual_seed(1)
model = nn.SyncBatchNorm.convert_sync_batchnorm(Net())
ddp = nn.parallel.DistributedDataParallel(model)
optimizer = pcn.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
loss_fn = nn.CrossEntropyLoss()
rng = np.random.default_rng(0)
BATCH, STEPS = 8, 5
share = BATCH // world
for step in range(STEPS):
    images = (rng.standard_normal((BATCH, 1, 10, 10)) * 2 + 1).astype(np.float32)
    labels = rng.integers(0, 10, BATCH)
    mine = slice(rank * share, (rank + 1) * share)
    optimizer.zero_grad()
    loss_fn(ddp(pcn.tensor(images[mine])), pcn.tensor(labels[mine])).backward()
    optimizer.step()
np.savez(f"{sys.argv[1]}-rank{rank}.npz", **{name: t.detach().numpy() for name, t in model.state_dict().items()})
"""


@needs_mpi
def test_two_ranks_with_half_batches_train_like_one_rank_with_the_whole(tmp_path):
    run_ranks(tmp_path, TRAIN, ranks=1, args=("one",))
    run_ranks(tmp_path, TRAIN, ranks=2, args=("two",))
    loaded = {}
    for name in ("one-rank0", "two-rank0", "two-rank1"):
        with np.load(tmp_path / f"{name}.npz") as saved:
            loaded[name] = dict(saved)
    one, two_0, two_1 = loaded.values()
    assert any("running_var" in name for name in one)
    for name in one:
        np.testing.assert_array_equal(two_0[name], two_1[name], err_msg=f"{name}: ranks disagree")
        np.testing.assert_allclose(two_0[name], one[name], rtol=1e-4, atol=1e-5, err_msg=name)
