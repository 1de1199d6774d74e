"""Data-parallel scaling, measured on this machine and projected to clusters (``pyconvnet bench
--distributed``; issue 15, part 8). Needs the ``mpi`` extra; torch is not used.

Measured: under ``mpiexec -n 2`` (one thread a rank) the time of an all-reduce against message
size, and for LeNet-5 and ResNet-20 at the trainer's global batch the DDP step (2 ranks x half the
batch, gradient buckets reduced while backward runs) against the same step with the whole
reduction done after backward; in one process with 2 threads the same models' step on the whole
batch, and every bench model's step at its bench batch (the compute time of one machine).

Projected: a ring all-reduce of G gradient bytes in B buckets over N machines on links of
bandwidth W costs ``2 (N-1)/N x G / W + B x 2 (N-1) x latency``; the share of it that backward
hides is the (smallest) measured overlap fraction, at most the backward pass (taken as 2/3 of the step).
Scaling efficiency = compute / (compute + the exposed communication).
"""

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from .. import backend, manual_seed, optim, tensor
from ..nn import functional
from .models import MODEL_CASES, random_batch

KIB = 1024
MESSAGE_SIZES = [KIB * 4**k for k in range(9)]  # 1 KiB .. 64 MiB
TRAINER_BATCH = 128  # the recipes' global batch (pyconvnet.train)
STEP_MODELS = ("lenet5", "resnet20")
MACHINES = (8, 32, 128)
LINKS_GBPS = (10, 25, 100)
# One message step of the ring on the wire (an MPI over TCP Ethernet hop); assumed, not measured.
WIRE_LATENCY_S = 20e-6
BACKWARD_SHARE = 2 / 3  # of a training step: what communication can hide behind at most
BUCKET_BYTES = 25 * 2**20  # DistributedDataParallel's default bucket_cap_mb


# ----------------------------------------------------------------------------- the cost model
def ring_allreduce_seconds(nbytes, machines, link_gbps, latency_s, buckets=1):
    """(bandwidth term, latency term) in seconds of ring all-reducing ``nbytes`` in ``buckets``
    messages over ``machines`` on links of ``link_gbps`` gigabits per second."""
    if machines < 2:
        return 0.0, 0.0
    bandwidth = 2 * (machines - 1) / machines * nbytes * 8 / (link_gbps * 1e9)
    return bandwidth, buckets * 2 * (machines - 1) * latency_s


def scaling_efficiency(compute_s, nbytes, machines, link_gbps, latency_s, overlap):
    """(efficiency, the term that limits it) of a data-parallel step: compute / (compute + the
    communication backward does not hide). The limit is "bandwidth" or "latency", whichever of the
    all-reduce's terms is larger, or "compute" when nothing stays exposed."""
    buckets = max(1, math.ceil(nbytes / BUCKET_BYTES))
    bandwidth, latency = ring_allreduce_seconds(nbytes, machines, link_gbps, latency_s, buckets)
    communication = bandwidth + latency
    hidden = min(overlap * communication, BACKWARD_SHARE * compute_s)
    exposed = communication - hidden
    limit = "compute" if exposed <= 0 else ("bandwidth" if bandwidth >= latency else "latency")
    return compute_s / (compute_s + exposed), limit


# ----------------------------------------------------------------------------- measurements
def _median_seconds(call, repeats, warmup=1, sync=None):
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(repeats):
        if sync is not None:
            sync()
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _trainer_case(name, batch):
    case = MODEL_CASES[name].with_batch(batch)
    manual_seed(0)
    model = case.build()
    images, labels = random_batch(case)
    return model, images, labels


def _sgd_step(model, forward, x, y, after_backward=None):
    optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()

    def step():
        optimizer.zero_grad()
        functional.cross_entropy(forward(x), y).backward()
        if after_backward is not None:
            after_backward()
        optimizer.step()

    return step


def _measure_ranks(path, steps):
    """The part run on every rank under mpiexec; rank 0 writes what it measured to ``path``."""
    from .. import distributed as dist
    from ..nn.parallel import DistributedDataParallel

    dist.init_process_group()
    backend.set_num_threads(1)
    rank, world = dist.get_rank(), dist.get_world_size()
    result = {"ranks": world, "threads_per_rank": 1, "allreduce_s": {}, "steps": {}}
    for size in MESSAGE_SIZES:
        buffer = tensor(np.ones(size // 4, dtype=np.float32))
        repeats = 20 if size <= 2**20 else 5
        result["allreduce_s"][str(size)] = _median_seconds(lambda: dist.all_reduce(buffer), repeats, sync=dist.barrier)
    for name in STEP_MODELS:
        model, images, labels = _trainer_case(name, TRAINER_BATCH)
        share = slice(rank * TRAINER_BATCH // world, (rank + 1) * TRAINER_BATCH // world)
        x, y = tensor(images[share]), tensor(labels[share])
        ddp = DistributedDataParallel(model)
        ddp_s = _median_seconds(_sgd_step(model, ddp, x, y), steps, sync=dist.barrier)
        params = [p for p in model.parameters() if p.requires_grad]
        flat = tensor(np.zeros(sum(p.numel() for p in params), dtype=np.float32))

        def reduce_after_backward():
            offsets = np.cumsum([0] + [p.numel() for p in params])
            for p, start, end in zip(params, offsets, offsets[1:]):
                flat.numpy()[start:end] = p.grad.numpy().reshape(-1)
            dist.all_reduce(flat, op=dist.ReduceOp.AVG)
            for p, start, end in zip(params, offsets, offsets[1:]):
                p.grad.numpy()[...] = flat.numpy()[start:end].reshape(p.grad.shape)

        after_s = _median_seconds(_sgd_step(model, model, x, y, reduce_after_backward), steps, sync=dist.barrier)
        allreduce_s = _median_seconds(lambda: dist.all_reduce(flat), steps * 2, sync=dist.barrier)
        result["steps"][name] = {"batch_per_rank": TRAINER_BATCH // world, "gradient_bytes": flat.numel() * 4,
                                 "ddp_s": ddp_s, "reduce_after_backward_s": after_s, "allreduce_s": allreduce_s,
                                 "overlap": min(1.0, max(0.0, (after_s - ddp_s) / allreduce_s))}
    if rank == 0:
        with open(path, "w") as file:
            json.dump(result, file)
    dist.destroy_process_group()


def _measure_single(threads, steps):
    """One process: the trainer-batch steps of STEP_MODELS and every bench model's step."""
    backend.set_num_threads(threads)
    backend.set_adaptive_threads(False)  # the baseline runs on `threads`, whatever else the machine does
    result = {"threads": threads, "trainer_batch_s": {}, "bench": {}}
    for name in STEP_MODELS:
        model, images, labels = _trainer_case(name, TRAINER_BATCH)
        result["trainer_batch_s"][name] = _median_seconds(_sgd_step(model, model, tensor(images), tensor(labels)),
                                                          steps)
    for name, case in MODEL_CASES.items():
        model, images, labels = _trainer_case(name, case.batch)
        nbytes = sum(p.numel() for p in model.parameters() if p.requires_grad) * 4
        step_s = _median_seconds(_sgd_step(model, model, tensor(images), tensor(labels)), steps)
        result["bench"][name] = {"title": case.title, "batch": case.batch, "step_s": step_s, "gradient_bytes": nbytes}
    return result


# ----------------------------------------------------------------------------- report
def projections(measured):
    """Rows (model, machines, link, efficiency, limit) from the measured inputs: each bench model's
    one-machine step, the smallest measured overlap (on a shared machine the difference of two step
    times is noisy: the conservative one), and the latency a ring step adds (the wire's plus
    half the measured 1 KiB all-reduce of 2 ranks: its software overhead per message step)."""
    overlap = min(step["overlap"] for step in measured["ranks"]["steps"].values())
    latency = WIRE_LATENCY_S + measured["ranks"]["allreduce_s"][str(KIB)] / 2
    rows = []
    for name, bench in measured["single"]["bench"].items():
        for machines in MACHINES:
            for link in LINKS_GBPS:
                efficiency, limit = scaling_efficiency(bench["step_s"], bench["gradient_bytes"], machines, link,
                                                       latency, overlap)
                rows.append((name, machines, link, efficiency, limit))
    return rows, overlap, latency


def report(measured):
    """The measured inputs and the projection as markdown tables (bench/NOTES.md's section)."""
    ranks, single = measured["ranks"], measured["single"]
    lines = ["All-reduce, 2 ranks x 1 thread on this machine (shared with other agents while measured):", "",
             "| message | time (ms) | GB/s (algorithm) |", "|---|---|---|"]
    for size, seconds in ranks["allreduce_s"].items():
        size = int(size)
        label = f"{size // KIB} KiB" if size < 2**20 else f"{size // 2**20} MiB"
        lines.append(f"| {label} | {seconds * 1e3:.3f} | {size / seconds / 1e9:.2f} |")
    lines += ["", f"Steps at the trainer's global batch {TRAINER_BATCH} (shared machine):", "",
              "| model | 1 rank x 2 threads (ms) | 2 ranks x 1 thread, DDP (ms) | 2 ranks, reduce after backward (ms) "
              "| all-reduce of the gradients (ms) | overlap |", "|---|---|---|---|---|---|"]
    for name, step in ranks["steps"].items():
        lines.append(f"| {name} | {single['trainer_batch_s'][name] * 1e3:.1f} | {step['ddp_s'] * 1e3:.1f} | "
                     f"{step['reduce_after_backward_s'] * 1e3:.1f} | {step['allreduce_s'] * 1e3:.2f} | "
                     f"{step['overlap']:.2f} |")
    rows, overlap, latency = projections(measured)
    lines += ["", f"Projected scaling efficiency (one machine's step: measured here, {single['threads']} threads, "
                  f"shared machine; overlap {overlap:.2f}; latency per ring step {latency * 1e6:.0f} us):", "",
              "| model (batch per machine) | gradient MB | step (ms) | " + " | ".join(
                  f"{n} x {g} Gb/s" for n in MACHINES for g in LINKS_GBPS) + " |",
              "|---|---|---|" + "---|" * (len(MACHINES) * len(LINKS_GBPS))]
    for name, bench in single["bench"].items():
        cells = [f"{eff * 100:.0f} %{'' if limit == 'compute' else ' ' + limit[0]}"
                 for model, _, _, eff, limit in rows if model == name]
        lines.append(f"| {bench['title']} ({bench['batch']}) | {bench['gradient_bytes'] / 1e6:.1f} | "
                     f"{bench['step_s'] * 1e3:.0f} | " + " | ".join(cells) + " |")
    lines += ["", "b: the bandwidth term limits; l: the latency term; no letter: backward hides it all."]
    return "\n".join(lines)


def run(steps=3, threads=2, json_path=None):
    """Measure (mpiexec -n 2, then one process) and print the report; returns the measured dict."""
    # The mpich wheel puts mpiexec beside the interpreter.
    mpiexec = shutil.which("mpiexec", path=f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}")
    if mpiexec is None:
        raise ImportError("pyconvnet bench --distributed needs mpiexec and mpi4py: pip install 'pyconvnet[mpi]'")
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "ranks.json")
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        subprocess.run([mpiexec, "-n", "2", sys.executable, "-m", "pyconvnet.bench.distributed", "--ranks-part", path,
                        "--steps", str(steps)], env=env, check=True)
        with open(path) as file:
            measured = {"ranks": json.load(file)}
    measured["single"] = _measure_single(threads, steps)
    print(report(measured))
    if json_path is not None:
        with open(json_path, "w") as file:
            json.dump(measured, file, indent=1)
    return measured


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m pyconvnet.bench.distributed", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("--ranks-part", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.ranks_part:
        _measure_ranks(args.ranks_part, args.steps)
    else:
        run(args.steps, args.threads, args.json)


if __name__ == "__main__":
    main()
