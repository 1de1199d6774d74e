"""data.DistributedSampler: disjoint shards that cover the dataset (padded or dropped as torch),
torch's order without shuffling, and the same reshuffle on every rank each epoch. No MPI needed."""

import pytest

import pyconvnet as pcn
from pyconvnet import data


class _Sized:
    def __init__(self, count):
        self.count = count

    def __len__(self):
        return self.count


@pytest.mark.parametrize("count", [0, 1, 5, 7, 10, 11, 13])
@pytest.mark.parametrize("replicas", [1, 2, 3, 4])
@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("shuffle", [False, True])
def test_distributed_sampler_shards(count, replicas, drop_last, shuffle):
    dataset = _Sized(count)
    shards = [list(data.DistributedSampler(dataset, replicas, rank, shuffle=shuffle, seed=4, drop_last=drop_last))
              for rank in range(replicas)]
    lengths = {len(shard) for shard in shards}
    assert len(lengths) == 1 and lengths == {len(data.DistributedSampler(dataset, replicas, 0, drop_last=drop_last))}
    every = [index for shard in shards for index in shard]
    if drop_last:  # disjoint; only the remainder (fewer than `replicas` samples) left out
        assert len(set(every)) == len(every) and count - len(every) < replicas
    else:  # complete; padded with as few repeats as divide the work evenly
        assert set(every) == set(range(count)) and len(every) - count < replicas


@pytest.mark.parametrize("count, replicas, drop_last", [(11, 3, False), (11, 3, True), (10, 4, False), (2, 3, False),
                                                        (9, 2, True), (6, 3, False)])
def test_distributed_sampler_matches_torch_without_shuffling(count, replicas, drop_last):
    torch = pytest.importorskip("torch")
    dataset = list(range(count))
    for rank in range(replicas):
        ours = data.DistributedSampler(dataset, replicas, rank, shuffle=False, drop_last=drop_last)
        theirs = torch.utils.data.DistributedSampler(dataset, replicas, rank, shuffle=False, drop_last=drop_last)
        assert list(ours) == list(theirs) and len(ours) == len(theirs)


def test_distributed_sampler_epochs_reshuffle_the_same_way_on_every_rank():
    dataset = _Sized(12)
    first = [data.DistributedSampler(dataset, 2, rank, seed=9) for rank in range(2)]
    second = [data.DistributedSampler(dataset, 2, rank, seed=9) for rank in range(2)]
    orders = []
    for epoch in range(2):
        for sampler in first + second:
            sampler.set_epoch(epoch)
        assert [list(s) for s in first] == [list(s) for s in second]
        assert sorted(list(first[0]) + list(first[1])) == list(range(12))
        orders.append(list(first[0]))
    assert orders[0] != orders[1]
    assert data.DistributedSampler is pcn.utils.data.DistributedSampler


def test_distributed_sampler_arguments():
    with pytest.raises(ValueError, match=r"invalid rank 2, rank should be in the interval \[0, 1\]"):
        data.DistributedSampler(_Sized(4), num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="num_replicas must be >= 1"):
        data.DistributedSampler(_Sized(4), num_replicas=0, rank=0)
    with pytest.raises(TypeError, match="shuffle must be a bool"):
        data.DistributedSampler(_Sized(4), num_replicas=2, rank=0, shuffle=1)
    with pytest.raises(RuntimeError, match="init_process_group"):
        data.DistributedSampler(_Sized(4))  # the group's size and rank, and there is no group
