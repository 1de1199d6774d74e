"""The GPU module's runtime: import and queries without a GPU (these run wherever the module is built),
and on a GPU the caching allocator, host<->device copies, views and their bounds, and the transfer
counters (marked ``cuda``: skipped, with the reason, where no GPU is usable)."""

import numpy as np
import pytest

_C_cuda = pytest.importorskip("pyconvnet._C_cuda", reason="the GPU module is not built (no nvcc at build time)")


def test_module_imports_and_answers_without_a_gpu():
    reason = _C_cuda.unavailable_reason()
    count = _C_cuda.device_count()
    assert isinstance(reason, str) and count >= 0
    assert (count == 0) == bool(reason)
    assert _C_cuda.built_architectures()
    assert _C_cuda.runtime_version() >= 12000


def test_no_device_index_is_a_value_error_naming_it():
    count = _C_cuda.device_count()
    with pytest.raises(ValueError, match=rf"CUDA device index {count} is out of range"):
        _C_cuda.empty([2], "float32", count)
    with pytest.raises(ValueError, match="CUDA device index -1"):
        _C_cuda.from_numpy(np.zeros(2, np.float32), -1)


def test_import_pyconvnet_does_not_load_the_gpu_module():
    import subprocess
    import sys

    code = "import sys, pyconvnet; print('pyconvnet._C_cuda' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


@pytest.mark.cuda
@pytest.mark.sanitize_subset
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.bool_, np.uint8])
@pytest.mark.parametrize("shape", [(), (0,), (1,), (3, 5), (2, 3, 4, 1000)])
def test_round_trip_keeps_values_shape_and_dtype(dtype, shape):
    rng = np.random.default_rng(0)
    host = np.asarray(rng.standard_normal(shape) * 100).astype(dtype)  # 0-d stays an array
    device_array = _C_cuda.from_numpy(host, 0)
    assert device_array.shape == shape and device_array.dtype == np.dtype(dtype).name
    assert device_array.numel == host.size and device_array.nbytes == host.nbytes
    back = _C_cuda.to_numpy(device_array)
    assert back.dtype == host.dtype and back.shape == host.shape
    np.testing.assert_array_equal(back, host)


@pytest.mark.cuda
def test_non_contiguous_and_foreign_dtypes():
    host = np.arange(12, dtype=np.float32).reshape(3, 4).T  # a transposed view: made contiguous on the way
    np.testing.assert_array_equal(_C_cuda.to_numpy(_C_cuda.from_numpy(host, 0)), host)
    with pytest.raises(TypeError, match="float32, int64, bool or uint8, got float64"):
        _C_cuda.from_numpy(np.zeros(3), 0)


@pytest.mark.cuda
@pytest.mark.sanitize_subset
def test_views_share_storage_and_are_bounds_checked():
    base = _C_cuda.from_numpy(np.arange(24, dtype=np.float32), 0)
    row = base.view([2, 4], 8)
    assert row.shares_storage(base) and row.shape == (2, 4)
    np.testing.assert_array_equal(_C_cuda.to_numpy(row), np.arange(8, 16, dtype=np.float32).reshape(2, 4))
    as_ints = base.view([12], 0, "int64")
    assert as_ints.dtype == "int64"
    with pytest.raises(ValueError, match="reaches past the storage"):
        base.view([4096], 0)
    with pytest.raises(ValueError, match="negative offset"):
        base.view([1], -1)
    target = _C_cuda.empty([2, 4], "float32", 0)
    _C_cuda.copy_(target, row)
    np.testing.assert_array_equal(_C_cuda.to_numpy(target), _C_cuda.to_numpy(row))
    with pytest.raises(ValueError, match="differ in dtype or element count"):
        _C_cuda.copy_(target, base)


@pytest.mark.cuda
def test_caching_allocator_reuses_blocks_and_counts_bytes():
    _C_cuda.synchronize(0)
    _C_cuda.empty_cache()
    before = _C_cuda.memory_allocated(0)
    _C_cuda.reset_peak_memory_stats(0)
    arrays = [_C_cuda.empty([1 << 18], "float32", 0) for _ in range(8)]  # 1 MiB each
    assert _C_cuda.memory_allocated(0) - before >= 8 << 20
    mallocs = _C_cuda.driver_allocations(0)
    del arrays
    assert _C_cuda.memory_allocated(0) == before
    assert _C_cuda.max_memory_allocated(0) - before >= 8 << 20
    again = [_C_cuda.empty([1 << 18], "float32", 0) for _ in range(8)]
    assert _C_cuda.driver_allocations(0) == mallocs  # every block came from the cache
    del again
    reserved = _C_cuda.memory_reserved(0)
    _C_cuda.empty_cache()
    assert _C_cuda.memory_reserved(0) < reserved


@pytest.mark.cuda
def test_allocator_under_fragmentation_stays_bounded():
    """2,000 requests of random sizes with about 50 alive at a time, freed in random order: the cache
    must serve them from what it holds, so the bytes reserved from the driver stay within a small
    multiple of the most bytes ever alive (an allocator that never reused a block would reserve ~1 GB)."""
    _C_cuda.synchronize(0)
    _C_cuda.empty_cache()
    before = _C_cuda.memory_allocated(0)
    rng = np.random.default_rng(1)
    live, most_live = [], 0
    for _ in range(2000):
        live.append(_C_cuda.empty([int(rng.integers(1, 1 << 20))], "uint8", 0))
        if len(live) > 50:
            live.pop(int(rng.integers(0, len(live))))
        most_live = max(most_live, sum(a.nbytes for a in live))
    assert _C_cuda.memory_allocated(0) - before >= sum(a.nbytes for a in live)
    assert _C_cuda.memory_reserved(0) <= before + 4 * most_live + (16 << 20)
    del live
    assert _C_cuda.memory_allocated(0) == before


@pytest.mark.cuda
def test_out_of_memory_is_a_memory_error_and_the_device_still_works():
    free, total = _C_cuda.device_memory(0)
    with pytest.raises(MemoryError, match="CUDA out of memory: tried to allocate"):
        _C_cuda.empty([2 * total], "uint8", 0)
    np.testing.assert_array_equal(_C_cuda.to_numpy(_C_cuda.from_numpy(np.ones(4, np.float32), 0)), np.ones(4))


@pytest.mark.cuda
def test_transfer_counters_count_each_copy():
    _C_cuda.reset_transfer_counts()
    device_array = _C_cuda.from_numpy(np.zeros(10, np.float32), 0)
    _C_cuda.to_numpy(device_array)
    _C_cuda.to_numpy(device_array)
    assert _C_cuda.transfer_counts() == (1, 2)


@pytest.mark.cuda
def test_device_queries():
    assert _C_cuda.device_count() >= 1
    assert _C_cuda.device_name(0)
    major, minor = _C_cuda.device_capability(0)
    assert major >= 7
    free, total = _C_cuda.device_memory(0)
    assert 0 < free <= total
    _C_cuda.synchronize(0)
