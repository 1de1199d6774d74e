"""pyconvnet bench: the FMA peak probe on every ISA; the suites' plumbing on tiny cases (CLI and
JSON record on LeNet-5 at batch 2, layer discovery and the layer suite, the memory subprocess);
argument errors; the error without torch, and torch staying out of ``import pyconvnet``; the GPU
suite's batches, synchronised timing and its errors on a machine without a GPU (it runs in .ci/gpu);
the sharing suite (--neighbour): both columns reported, its busy-loop neighbours always cleaned up.
Timing itself is never asserted here: it lives in the benchmark."""

import json
import math
import os
import subprocess
import sys
import time

import pytest

import pyconvnet
from pyconvnet import _C, backend, cli, nn
from pyconvnet.bench import gpu, layers, models, profile, sharing, suite
from pyconvnet.bench.timing import compare


def test_fma_peak_probe(isa):
    flops, checksum = _C.fma_peak(1000)
    assert flops > 0 and flops % 2000 == 0  # 2 flops per lane, chain and iteration on each thread
    assert math.isfinite(checksum) and checksum > 0
    gflops = backend.fma_peak_gflops(repeats=1, seconds=0.01)
    assert math.isfinite(gflops) and 0 < gflops < 1e6


def test_fma_peak_rejects_bad_arguments():
    with pytest.raises(ValueError, match="iterations must be >= 1"):
        _C.fma_peak(0)
    with pytest.raises(ValueError, match="repeats"):
        backend.fma_peak_gflops(repeats=0)
    with pytest.raises(ValueError, match="seconds"):
        backend.fma_peak_gflops(seconds=0)


def test_cli_writes_tables_and_json(tmp_path, capsys, monkeypatch):
    pytest.importorskip("torch")
    path = tmp_path / "out" / "bench.json"
    monkeypatch.setenv("OUT", str(tmp_path / "collected"))  # the GPU check script's results folder
    argv = ["bench", "--quick", "--models", "lenet5", "--batch", "2", "--repeats", "1", "--json", str(path)]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "FMA peak" in printed and "lenet5" in printed and f"wrote {path}" in printed
    assert (tmp_path / "collected" / "bench.json").read_text() == path.read_text()
    record = json.loads(path.read_text())
    machine = record["machine"]
    assert machine["isa"] == backend.isa() and machine["threads"] >= 1 and machine["fma_peak_gflops"] > 0
    assert {"cpu", "torch", "pyconvnet", "numpy", "git_commit", "date"} <= set(machine)
    assert record["settings"]["repeats"] == 1 and "layers" not in record and "profile" not in record
    (row,) = record["models"]
    assert row["name"] == "lenet5" and row["batch"] == 2 and row["gflop_per_step"] > 0
    for side in ("pyconvnet", "torch"):
        assert row[f"{side}_ms"] > 0 and row[f"{side}_gflops"] > 0 and row[f"{side}_images_per_s"] > 0
        assert row[f"{side}_memory_mib"] >= 0  # freed import-time memory may hold a tiny model


def test_the_profile_tallies_every_kernel_call_once_and_restores_the_module():
    original = _C.relu_forward
    x = pyconvnet.randn(3, 4)
    with profile.kernel_tally(time.perf_counter) as tally:
        assert _C.relu_forward is not original
        nn.functional.relu(x)
        nn.functional.relu(x)
        with pytest.raises(ValueError):  # a failing call is counted too, and its error passes through
            _C.relu_backward(x.numpy(), x.numpy()[:2])
    assert _C.relu_forward is original
    assert tally["relu_forward"][1] == 2 and tally["relu_forward"][0] >= 0
    assert tally["relu_backward"][1] == 1 and "sgemm" not in tally


def test_the_suite_leaves_the_callers_thread_counts_as_they_were(tmp_path):
    torch = pytest.importorskip("torch")
    before = backend.get_num_threads(), torch.get_num_threads()
    backend.set_num_threads(1)
    torch.set_num_threads(1)
    try:
        suite.run(["lenet5"], quick=True, threads=2, repeats=1, batch=2, json_path=tmp_path / "bench.json")
        assert (backend.get_num_threads(), torch.get_num_threads()) == (1, 1)
    finally:
        backend.set_num_threads(before[0])
        torch.set_num_threads(before[1])


def test_cli_profile_adds_the_split_to_the_tables_and_json(tmp_path, capsys):
    pytest.importorskip("torch")
    path = tmp_path / "bench.json"
    argv = ["bench", "--quick", "--profile", "--models", "lenet5", "--batch", "2", "--repeats", "1", "--json", str(path)]
    assert cli.main(argv) == 0
    assert "Where pyconvnet's step goes" in capsys.readouterr().out
    (row,) = json.loads(path.read_text())["profile"]
    assert row["model"] == "lenet5" and row["batch"] == 2 and row["kernel_ms"] > 0


def test_profile_splits_a_step_into_kernels_and_the_rest():
    case = models.MODEL_CASES["lenet5"].with_batch(2)
    (row,) = profile.run_profile_suite([case], threads=1, steps=2, warmup=1)
    assert row["model"] == "lenet5" and row["clock"] == "process CPU time"
    kernels = row["kernels"]
    assert kernels["conv2d_forward"]["calls"] == 2 and kernels["sgd_update_many"]["calls"] == 1  # 2 convs; 10 tensors in one call
    assert list(kernels) == sorted(kernels, key=lambda name: -kernels[name]["ms"])
    assert row["kernel_ms"] == pytest.approx(sum(entry["ms"] for entry in kernels.values()))
    assert row["outside_ms"] == pytest.approx(row["tallied_step_ms"] - row["kernel_ms"])
    assert row["kernel_calls"] == sum(entry["calls"] for entry in kernels.values())
    assert row["system_ms"] >= 0 and row["minor_faults"] >= 0
    text = profile.profile_table([row])
    assert text.startswith("lenet5 (batch 2, 1 thread(s), process CPU time)") and "conv2d_forward" in text


def test_layer_suite_times_every_kind_of_layer():
    pytest.importorskip("torch")
    tiny = models.ModelCase("tiny", "conv-bn-pool", 2, (3, 9, 9), 4,
                            lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.MaxPool2d(2)), None)
    reported = []
    rows = layers.run_layer_suite([tiny], peak_gflops=100.0, gemm_cases=[("tiny gemm", 8, 12, 16)], repeats=1,
                                  warmup=0, report=reported.append)
    assert rows == reported
    assert [(r["kind"], r["op"]) for r in rows] == [
        ("conv", "fwd"), ("conv", "bwd-data"), ("conv", "bwd-weight"), ("max_pool", "fwd+bwd"),
        ("batch_norm", "fwd+bwd"), ("sgemm", "tiny gemm")]
    conv, gemm = rows[0], rows[-1]
    assert conv["shape"] == "2x3x9x9 -> 4 k3x3 s1 p0" and conv["models"] == "tiny" and conv["baseline"] == "torch"
    assert conv["plan"] == gemm["plan"] == "heuristic" and rows[3]["plan"] is None  # the suite: selection off
    assert conv["gflop"] == pytest.approx(2 * 2 * 4 * 7 * 7 * 3 * 3 * 3 / 1e9)
    assert gemm["baseline"] == "numpy" and gemm["gflop"] == pytest.approx(2 * 8 * 12 * 16 / 1e9)
    assert all(r["pyconvnet_ms"] > 0 and r["baseline_ms"] > 0 and r["ratio"] > 0 for r in rows)
    assert rows[3]["pyconvnet_gflops"] is None  # no FLOP count for pooling and normalisation


def test_memory_is_measured_in_a_subprocess():
    # (the CLI test runs the torch side)
    (case,) = models.select_cases(["resnet20"], batch=2)
    peak_mib = models.measure_memory(case, "pyconvnet", threads=1, steps=2)
    assert isinstance(peak_mib, float) and peak_mib > 3 * 269_722 * 4 / 2**20  # weights, grads, momentum


def test_layers_are_found_by_walking_the_models():
    found = layers.collect_layers(models.select_cases(["lenet5", "resnet20"], batch=3))
    convs = [shape for shape in found if isinstance(shape, layers.ConvShape)]
    assert layers.ConvShape((3, 1, 32, 32), 6, (5, 5), (1, 1), (0, 0), (1, 1), 1) in convs
    assert layers.ConvShape((3, 16, 32, 32), 32, (3, 3), (2, 2), (1, 1), (1, 1), 1) in convs  # resnet20 stage 2
    assert found[layers.ConvShape((3, 16, 32, 32), 16, (3, 3), (1, 1), (1, 1), (1, 1), 1)] == ["resnet20"] * 6
    assert layers.PoolShape((3, 6, 28, 28), (2, 2), (2, 2), (0, 0), (1, 1), False) in found
    assert layers.NormShape((3, 64, 8, 8), 1e-5) in found


def test_bad_arguments_name_themselves(capsys):
    with pytest.raises(ValueError, match="unknown case"):
        models.select_cases(["resnet19"])
    with pytest.raises(ValueError, match="batch"):
        models.select_cases(["lenet5"], batch=0)
    with pytest.raises(ValueError, match="repeats"):
        compare(lambda: None, lambda: None, repeats=0)
    with pytest.raises(SystemExit):  # argparse: "--batch: expected a positive integer, got '-1'"
        cli.main(["bench", "--models", "lenet5", "--batch", "-1"])
    assert "--batch: expected a positive integer" in capsys.readouterr().err


def test_default_json_path_is_dated_and_names_the_processor():
    import datetime

    path = suite.default_json_path("AMD EPYC 9654 96-Core Processor", datetime.datetime(2026, 11, 25, 9, 5))
    assert path.as_posix() == "bench/results/2026-11-25-0905-amd-epyc-9654-96-core-processor.json"
    path = suite.default_json_path("NVIDIA H200", datetime.datetime(2026, 12, 4, 15, 2))
    assert path.as_posix() == "bench/results/2026-12-04-1502-nvidia-h200.json"


def test_the_gpu_suite_runs_issue_14s_batches():
    batches = {case.name: case.batch for case in gpu.select_cases()}
    assert batches == {"lenet5": 128, "resnet20": 128, "vgg11-cifar": 64, "resnet18": 64, "alexnet": 16, "googlenet": 16}
    assert [(case.name, case.batch) for case in gpu.select_cases(["resnet18", "lenet5"], batch=8)] == [
        ("lenet5", 8), ("resnet18", 8)]


def test_samples_against_numpy_wait_for_openblas_to_stop_spinning(monkeypatch):
    """OpenBLAS's threads spin for ~0.13 s after a call on a 2.1 GHz VM, so each sample of the numpy
    rows starts after a longer pause than the torch rows' (libgomp only spins for a few ms)."""
    pytest.importorskip("torch")
    from pyconvnet.bench import timing

    pauses = []
    monkeypatch.setattr(timing.time, "sleep", pauses.append)
    layers.run_layer_suite([], peak_gflops=100.0, gemm_cases=[("tiny gemm", 8, 12, 16)], repeats=2, warmup=0,
                           report=lambda row: None)
    assert pauses and set(pauses) == {timing.OPENBLAS_SETTLE_SECONDS}
    assert timing.OPENBLAS_SETTLE_SECONDS >= 2 ** 28 / 1e9 > timing.SETTLE_SECONDS
    pauses.clear()
    compare(lambda: None, lambda: None, repeats=2, warmup=0)
    assert pauses and set(pauses) == {timing.SETTLE_SECONDS}


def test_synchronised_timing_drains_each_queue_around_every_sample():
    """For a GPU each side's wait runs before its sample's clock starts and before it stops."""
    events = []
    timing = compare(lambda: events.append("ours"), lambda: events.append("theirs"), repeats=2, warmup=1,
                     min_seconds=0, synchronize=(lambda: events.append("wait ours"), lambda: events.append("wait theirs")))
    sample = lambda side: [side, f"wait {side}", side, f"wait {side}"]  # noqa: E731 (the untimed call, the timed one)
    assert events == ["ours", "theirs", *sample("ours"), *(sample("ours") + sample("theirs")) * 2]
    assert timing.ours_ms > 0 and timing.theirs_ms > 0


@pytest.mark.skipif(pyconvnet.cuda.is_available(), reason="this machine has a usable GPU")
def test_the_gpu_suite_without_a_gpu_is_a_one_line_error(capsys, tmp_path):
    path = tmp_path / "bench.json"
    assert cli.main(["bench", "--device", "cuda", "--quick", "--json", str(path)]) == 1
    reason = pyconvnet.cuda.unavailable_reason()
    assert capsys.readouterr().err == f"pyconvnet bench: error: device 'cuda': CUDA is not available: {reason}\n"
    assert not path.exists()


@pytest.mark.parametrize("argv, message", [
    (["--device", "cuda", "--layers"], "--layers and --profile time the CPU kernels"),
    (["--device", "cuda", "--profile"], "--layers and --profile time the CPU kernels"),
    (["--device", "tpu"], "device must be auto, cpu, cuda or cuda:N, got 'tpu'"),
    (["--neighbour", "1", "--layers"], "--neighbour times CPU training steps"),
    (["--rounds", "2"], "--rounds counts the rounds of --neighbour"),
])
def test_bad_device_and_mode_arguments_are_one_line_errors(capsys, argv, message):
    assert cli.main(["bench", "--models", "lenet5", *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pyconvnet bench: error: ") and message in err and err.count("\n") == 1


def test_without_torch_the_error_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    assert cli.main(["bench", "--models", "lenet5"]) == 1
    assert "pip install torch" in capsys.readouterr().err


def test_importing_the_package_and_its_cli_does_not_import_torch():
    code = ("import sys, pyconvnet, pyconvnet.cli, pyconvnet.bench.suite; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def _children():
    """Pids of this process's children that have not exited (zombies count as exited)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == os.getpid() and fields[0] != "Z":
                pids.append(int(entry))
    return pids


def _running(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads process states from /proc")
def test_cli_sharing_mode_reports_quiet_and_loaded_and_leaves_no_process(tmp_path, capsys):
    pytest.importorskip("torch")
    before, threads = set(_children()), backend.get_num_threads()
    path = tmp_path / "sharing.json"
    argv = ["bench", "--neighbour", "1", "--quick", "--models", "lenet5", "--batch", "2", "--repeats", "1",
            "--rounds", "1", "--json", str(path)]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "beside 1 busy-loop process" in printed and "pcn quiet" in printed and "torch loaded" in printed
    record = json.loads(path.read_text())
    assert record["settings"]["neighbours"] == 1 and record["settings"]["rounds"] == 1 and "models" not in record
    (row,) = record["sharing"]
    assert row["name"] == "lenet5" and row["batch"] == 2 and row["neighbours"] == 1
    for side in ("pyconvnet", "torch"):
        for column in ("quiet_ms", "loaded_ms", "one_thread_ms", "slowdown"):
            assert row[f"{side}_{column}"] > 0
    assert row["pyconvnet_loaded_fixed_ms"] > 0 and row["pyconvnet_fixed_slowdown"] > 0
    assert 1 <= row["pyconvnet_threads_loaded"] <= row["threads"] and "pcn fixed x" in printed
    assert set(_children()) == before
    assert backend.get_num_threads() == threads  # the one-thread rounds, and the suite, put the count back
    assert backend.adaptive_threads() is False  # as conftest set it


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads process states from /proc")
def test_neighbours_spin_inside_the_block_and_are_gone_after_it_even_on_errors():
    with sharing.busy_neighbours(2) as processes:
        assert len(processes) == 2 and all(_running(p.pid) for p in processes)
    assert all(p.returncode is not None for p in processes) and not any(_running(p.pid) for p in processes)
    with pytest.raises(KeyboardInterrupt):
        with sharing.busy_neighbours(1) as processes:
            raise KeyboardInterrupt
    assert not _running(processes[0].pid)
    with pytest.raises(ValueError, match="neighbours must be a non-negative int"):
        with sharing.busy_neighbours(-1):
            pass


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads process states from /proc")
def test_the_neighbours_of_a_killed_bench_exit_by_themselves():
    """A bench killed by SIGKILL cannot clean up: its neighbours notice and exit by themselves."""
    code = ("import os, sys\nfrom pyconvnet.bench.sharing import busy_neighbours\n"
            "with busy_neighbours(1) as (p,):\n    print(p.pid, flush=True)\n    os._exit(0)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    pid = int(result.stdout)
    deadline = time.monotonic() + 30  # it checks its parent every ~100,000 loop turns
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(pid)

