"""The ring all-reduce cost model behind ``pyconvnet bench --distributed``: its arithmetic on
hand-worked numbers (no timing)."""

import math

import pytest

from pyconvnet.bench import distributed as bd


def test_ring_allreduce_terms():
    # 8 machines, 100 MB over 10 Gb/s: 2 * 7/8 * 8e8 bits / 1e10 b/s = 0.14 s; 4 buckets x 14 steps x 20 us.
    bandwidth, latency = bd.ring_allreduce_seconds(100e6, 8, 10, 20e-6, buckets=4)
    assert math.isclose(bandwidth, 0.14)
    assert math.isclose(latency, 4 * 14 * 20e-6)
    assert bd.ring_allreduce_seconds(100e6, 1, 10, 20e-6) == (0.0, 0.0)


def test_scaling_efficiency_with_overlap_capped_by_backward():
    nbytes = 10 * 2**20  # one bucket
    bandwidth, latency = bd.ring_allreduce_seconds(nbytes, 32, 25, 1e-5)
    communication = bandwidth + latency
    # No overlap: everything is exposed.
    efficiency, limit = bd.scaling_efficiency(1.0, nbytes, 32, 25, 1e-5, overlap=0.0)
    assert math.isclose(efficiency, 1.0 / (1.0 + communication)) and limit == "bandwidth"
    # Half hidden.
    efficiency, _ = bd.scaling_efficiency(1.0, nbytes, 32, 25, 1e-5, overlap=0.5)
    assert math.isclose(efficiency, 1.0 / (1.0 + communication / 2))
    # Full overlap but a short step: at most the backward share (2/3 of it) is hidden.
    compute = communication / 3
    efficiency, _ = bd.scaling_efficiency(compute, nbytes, 32, 25, 1e-5, overlap=1.0)
    assert math.isclose(efficiency, compute / (compute + communication - 2 / 3 * compute))
    # A long step hides all of it.
    assert bd.scaling_efficiency(100.0, nbytes, 32, 25, 1e-5, overlap=1.0) == (1.0, "compute")


def test_latency_limits_small_gradients_on_many_machines():
    # 60 kB (LeNet-5) in one bucket over 128 machines at 100 Gb/s: 254 steps x 20 us >> 9.6 us of wire time.
    efficiency, limit = bd.scaling_efficiency(0.004, 61706 * 4, 128, 100, 20e-6, overlap=0.0)
    assert limit == "latency"
    assert efficiency == pytest.approx(0.004 / (0.004 + 2 * 127 / 128 * 61706 * 4 * 8 / 1e11 + 254 * 20e-6))


def test_projections_use_the_measured_inputs():
    measured = {"ranks": {"allreduce_s": {str(bd.KIB): 2e-5}, "steps": {"a": {"overlap": 0.2}, "b": {"overlap": 0.4}}},
                "single": {"bench": {"m": {"step_s": 0.5, "gradient_bytes": 4e7, "title": "M", "batch": 16}}}}
    rows, overlap, latency = bd.projections(measured)
    assert overlap == 0.2 and math.isclose(latency, bd.WIRE_LATENCY_S + 1e-5)
    assert len(rows) == len(bd.MACHINES) * len(bd.LINKS_GBPS)
    name, machines, link, efficiency, _ = rows[0]
    assert (name, machines, link) == ("m", 8, 10)
    assert efficiency == bd.scaling_efficiency(0.5, 4e7, 8, 10, latency, 0.2)[0]


def test_the_cli_flag():
    from pyconvnet import cli

    assert cli.build_parser().parse_args(["bench", "--distributed"]).distributed
    assert not cli.build_parser().parse_args(["bench"]).distributed
