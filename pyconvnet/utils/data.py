"""``torch.utils.data`` under its torch module path: the names are pyconvnet.data's own objects."""

from ..data import (BatchSampler, ChainDataset, ConcatDataset, DataLoader, Dataset, DistributedSampler,
                    IterableDataset, RandomSampler, Sampler, SequentialSampler, StackDataset, Subset,
                    SubsetRandomSampler, TensorDataset, WeightedRandomSampler, WorkerInfo, default_collate,
                    default_convert, get_worker_info, random_split)

__all__ = ["BatchSampler", "ChainDataset", "ConcatDataset", "DataLoader", "Dataset", "DistributedSampler",
           "IterableDataset", "RandomSampler", "Sampler", "SequentialSampler", "StackDataset", "Subset",
           "SubsetRandomSampler", "TensorDataset", "WeightedRandomSampler", "WorkerInfo", "default_collate",
           "default_convert", "get_worker_info", "random_split"]
