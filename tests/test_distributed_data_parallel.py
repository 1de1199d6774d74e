"""nn.parallel.DistributedDataParallel on 2 MPI ranks (see mpi_support): the same training as one
rank with the whole batch, no_sync accumulation, and the error for ranks holding different models."""

import numpy as np
import pytest

import pyconvnet as pcn
from mpi_support import needs_mpi, run_python, run_ranks


def test_needs_an_initialised_group():
    with pytest.raises(RuntimeError, match="init_process_group"):
        pcn.nn.parallel.DistributedDataParallel(pcn.nn.Linear(2, 2))


@needs_mpi
def test_frozen_and_shared_parameters_and_a_backward_that_raised_in_a_world_of_one():
    result = run_python("""
        import pyconvnet as pcn
        from pyconvnet import distributed as dist, nn
        dist.init_process_group()
        model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
        model[0].weight.requires_grad_(False)
        ddp = nn.parallel.DistributedDataParallel(model)
        assert [len(bucket.parameters) for bucket in ddp._buckets] == [3]  # the frozen weight has none
        ddp(pcn.ones(5, 3)).sum().backward()
        assert model[0].weight.grad is None and model[0].bias.grad is not None
        def fail(grad):
            raise ValueError("hook failed")
        handle = model[0].bias.register_hook(fail)  # the first layer's gradient comes last
        try:
            ddp(pcn.ones(5, 3)).sum().backward()
        except ValueError:
            pass
        handle.remove()
        try:
            ddp(pcn.ones(5, 3))
        except RuntimeError as error:
            print(error)

        shared = nn.Linear(3, 3)  # used twice: its gradient is complete only after the second use
        twice = nn.parallel.DistributedDataParallel(nn.Sequential(shared, nn.Tanh(), shared), bucket_cap_mb=1e-5)
        x = pcn.tensor([[0.5, -1.0, 2.0]])
        twice(x).sum().backward()
        expected = [p.grad.numpy().copy() for p in shared.parameters()]
        shared.zero_grad()
        shared(pcn.tanh(shared(x))).sum().backward()
        for p, grad in zip(shared.parameters(), expected):
            assert (p.grad.numpy() == grad).all()
    """)
    assert result.returncode == 0, result.stderr
    assert "the previous backward pass ended before its gradient reduction finished" in result.stdout


# A small conv net without batch norm, trained by SGD with momentum: with N ranks each takes
# BATCH / N samples of the same global batch. Rank 1 starts from other weights: DDP's broadcast
# must replace them with rank 0's. argv: output prefix, bucket_cap_mb.
TRAIN = """
import sys
import numpy as np
import pyconvnet as pcn
from pyconvnet import distributed as dist, nn

dist.init_process_group()
rank, world = dist.get_rank(), dist.get_world_size()
pcn.manual_seed(1 + rank)
model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3), nn.ReLU(), nn.Flatten(),
                      nn.Linear(6 * 2 * 2, 10))
ddp = nn.parallel.DistributedDataParallel(model, bucket_cap_mb=float(sys.argv[2]))
assert ddp.module is model
optimizer = pcn.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
# The first layer's gradient comes last: by then the later layers' buckets are already reducing.
launched_before_first_layer = []
model[0].weight.register_hook(lambda grad: launched_before_first_layer.append(ddp._next_launch))
loss_fn = nn.CrossEntropyLoss()
rng = np.random.default_rng(0)
BATCH, STEPS = 8, 5
share = BATCH // world
for step in range(STEPS):
    images = rng.standard_normal((BATCH, 1, 10, 10)).astype(np.float32)
    labels = rng.integers(0, 10, BATCH)
    mine = slice(rank * share, (rank + 1) * share)
    optimizer.zero_grad()
    loss = loss_fn(ddp(pcn.tensor(images[mine])), pcn.tensor(labels[mine]))
    loss.backward()
    optimizer.step()
assert len(launched_before_first_layer) == STEPS
assert len(ddp._buckets) == 1 or min(launched_before_first_layer) == len(ddp._buckets) - 1, launched_before_first_layer
np.savez(f"{sys.argv[1]}-rank{rank}.npz", **{name: p.detach().numpy() for name, p in model.named_parameters()})
"""


def _weights(path):
    with np.load(path) as saved:
        return dict(saved)


@needs_mpi
@pytest.mark.parametrize("bucket_cap_mb", [25, 0.0005])  # one bucket; about one parameter a bucket
def test_two_ranks_with_half_batches_train_like_one_rank_with_the_whole(tmp_path, bucket_cap_mb):
    run_ranks(tmp_path, TRAIN, ranks=1, args=("one", bucket_cap_mb))
    run_ranks(tmp_path, TRAIN, ranks=2, args=("two", bucket_cap_mb))
    one, two_0, two_1 = (_weights(tmp_path / name) for name in ("one-rank0.npz", "two-rank0.npz", "two-rank1.npz"))
    for name in one:
        np.testing.assert_array_equal(two_0[name], two_1[name], err_msg=f"{name}: ranks disagree")
        np.testing.assert_allclose(two_0[name], one[name], rtol=1e-5, atol=1e-6, err_msg=name)


NO_SYNC = """
import numpy as np
import pyconvnet as pcn
from pyconvnet import distributed as dist, nn

dist.init_process_group()
rank, world = dist.get_rank(), dist.get_world_size()


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 5))
        self.unused = nn.Linear(2, 2)  # never called: its grads stay None

    def forward(self, x):
        return self.body(x)


pcn.manual_seed(rank)
model = Net()
ddp = nn.parallel.DistributedDataParallel(model, bucket_cap_mb=0.001)
plain = Net()
plain.load_state_dict(model.state_dict())  # rank 0's weights after DDP's broadcast
loss_fn = nn.CrossEntropyLoss()
rng = np.random.default_rng(3)
images = rng.standard_normal((world, 2, 4, 1, 6, 6)).astype(np.float32)  # rank, micro-batch, sample
labels = rng.integers(0, 5, (world, 2, 4))

with ddp.no_sync():
    loss_fn(ddp(pcn.tensor(images[rank, 0])), pcn.tensor(labels[rank, 0])).backward()
local = [p.grad.numpy().copy() for p in model.body.parameters()]
loss_fn(ddp(pcn.tensor(images[rank, 1])), pcn.tensor(labels[rank, 1])).backward()



def plain_grads(r, micro):
    plain.zero_grad()
    loss_fn(plain(pcn.tensor(images[r, micro])), pcn.tensor(labels[r, micro])).backward()
    return [p.grad.numpy().copy() for p in plain.body.parameters()]


every = [[plain_grads(r, micro) for micro in range(2)] for r in range(world)]
for g, e in zip(local, every[rank][0]):  # inside no_sync the gradient stayed this rank's own
    np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)
# After the synchronised backward: every rank's two micro-batch gradients, summed, averaged over the ranks.
for index, p in enumerate(model.body.parameters()):
    expected = sum(every[r][micro][index] for r in range(world) for micro in range(2)) / world
    np.testing.assert_allclose(p.grad.numpy(), expected, rtol=1e-5, atol=1e-6)
assert model.unused.weight.grad is None and model.unused.bias.grad is None
print("no_sync ok on rank", rank)
"""


@needs_mpi
def test_no_sync_accumulates_locally_then_averages_the_sum(tmp_path):
    result = run_ranks(tmp_path, NO_SYNC)
    assert result.stdout.count("no_sync ok") == 2


MISMATCH = """
from pyconvnet import distributed as dist, nn

dist.init_process_group()
rank = dist.get_rank()
model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2 if rank == 0 else 5))
try:
    nn.parallel.DistributedDataParallel(model)
except RuntimeError as error:
    print(f"rank {rank}: {error}")
else:
    raise SystemExit(f"rank {rank}: no error")
"""


@needs_mpi
def test_different_models_are_the_same_error_on_every_rank(tmp_path):
    result = run_ranks(tmp_path, MISMATCH)
    message = ("the ranks hold different models: rank 0 has parameter '2.weight' of shape [2, 3] (float32) "
               "where rank 1 has parameter '2.weight' of shape [5, 3] (float32)")
    assert f"rank 0: DistributedDataParallel: {message}" in result.stdout
    assert f"rank 1: DistributedDataParallel: {message}" in result.stdout


BATCH_NORM = """
import numpy as np
import pyconvnet as pcn
from pyconvnet import distributed as dist, nn

dist.init_process_group()
rank = dist.get_rank()
pcn.manual_seed(rank)
model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
ddp = nn.parallel.DistributedDataParallel(model)
optimizer = pcn.optim.SGD(ddp.parameters(), lr=0.1)
rng = np.random.default_rng(rank)  # each rank its own data: per-rank batch statistics differ
at_forward = []  # the buffers as the wrapped module's forward starts (after DDP's broadcast)
model.register_forward_pre_hook(lambda module, args: at_forward.append([b.numpy().copy() for b in module.buffers()]))
for step in range(3):
    optimizer.zero_grad()
    nn.functional.cross_entropy(ddp(pcn.tensor(rng.standard_normal((4, 1, 6, 6)).astype(np.float32))),
                                pcn.tensor(rng.integers(0, 3, 4))).backward()
    optimizer.step()
    for buffer in at_forward[-1]:
        gathered = [pcn.tensor(np.zeros_like(buffer)), pcn.tensor(np.zeros_like(buffer))]
        dist.all_gather(gathered, pcn.tensor(buffer))
        np.testing.assert_array_equal(gathered[0].numpy(), gathered[1].numpy())
after = [b.numpy() for b in model.buffers()]
assert not np.array_equal(after[0], at_forward[-1][0])  # the last forward's own statistics, per rank
for p in model.parameters():
    gathered = [pcn.zeros(*p.shape), pcn.zeros(*p.shape)]
    dist.all_gather(gathered, p.detach().clone())
    np.testing.assert_array_equal(gathered[0].numpy(), gathered[1].numpy())
print("batch norm ok on rank", rank)
"""


@needs_mpi
def test_batch_norm_buffers_follow_rank_0_and_the_ranks_stay_identical(tmp_path):
    result = run_ranks(tmp_path, BATCH_NORM)
    assert result.stdout.count("batch norm ok") == 2
