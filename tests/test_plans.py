"""Measured kernel selection (pyconvnet.plans): every algorithm of every ISA against the float64
reference, the plan cache (round trip, keys, corrupt and foreign files), the switches (autotune
off, a forced algorithm, deterministic mode) and the choice itself (a slowed candidate loses; the
plan is the measured minimum)."""

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import pyconvnet as pcn
import pyconvnet.nn.functional as F
from pyconvnet import _C, backend, plans
from references import conv2d_reference
from support import assert_close, random_array
from test_conv import CONV_CASES, WINOGRAD_CASES

SIMD_ISAS = [isa for isa in backend.available_isas() if isa != "reference"]
TUNED_ISAS = [isa for isa in SIMD_ISAS if isa != "generic"]  # the ones measured selection compares
# WINOGRAD_CASES as full conv cases: (n, c, h, w, o, kernel, stride, padding, dilation, groups)
ALL_CASES = CONV_CASES + [(n, c, h, w, o, (3, 3), (1, 1), (p, p), (1, 1), 1) for n, c, h, w, o, p in WINOGRAD_CASES]


def _case_id(case):
    return "x".join(map(str, case[:5])) + f"-k{case[5][0]}s{case[6][0]}p{case[7][0]}g{case[9]}"


@pytest.mark.parametrize("case", ALL_CASES, ids=_case_id)
@pytest.mark.parametrize("isa_name", SIMD_ISAS)
def test_every_algorithm_matches_the_float64_reference(isa_name, case):
    n, c, h, w, o, kernel, stride, padding, dilation, groups = case
    rng = np.random.default_rng(1)
    x, weight = random_array(rng, n, c, h, w), random_array(rng, o, c // groups, *kernel)
    geometry = (stride, padding, dilation, groups)
    out_hw = [(size + 2 * padding[i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i, size in
              enumerate((h, w))]
    gy = random_array(rng, n, o, *out_hw)
    ref_y, ref_dx, ref_dw, _ = conv2d_reference(x, weight, np.zeros(o, np.float32), gy, *geometry)
    passes = {"forward": (x, weight, None, ref_y), "backward_data": (gy, weight, list(x.shape), ref_dx),
              "backward_weight": (gy, x, list(weight.shape), ref_dw)}
    for pass_, (a, b, extra, expected) in passes.items():
        names, heuristic = _C.conv2d_algorithms(pass_, x.shape, weight.shape, *geometry, isa=isa_name)
        assert "gemm" in names and heuristic in names
        for name in names:
            out = getattr(_C, "conv2d_" + pass_)(a, b, extra, *geometry, algorithm=name, isa=isa_name)
            assert_close(out, expected, what=f"{pass_} by {name} on {isa_name}")


def test_winograd_is_a_candidate_where_the_heuristic_declines_it():
    """On a 2x2 map the tiles waste most outputs, so the heuristic takes the dense product; Winograd
    can still compute it, and measured selection may time it."""
    names, heuristic = _C.conv2d_algorithms("forward", (2, 32, 2, 2), (32, 32, 3, 3), (1, 1), (1, 1), (1, 1), 1)
    assert heuristic == "dense" and set(names) == {"gemm", "window", "winograd", "direct", "dense"}
    names, heuristic = _C.conv2d_algorithms("forward", (2, 8, 5, 5), (12, 8, 1, 1), (1, 1), (0, 0), (1, 1), 1)
    assert heuristic == "pointwise" and set(names) == {"gemm", "pointwise"}


@pytest.mark.parametrize("input_shape, kernel, stride, padding, dilation, groups, offered", [
    ((4, 8, 2, 2), (3, 3), 1, 1, 1, 1, True),  # VGG's 2x2 maps: every input meets every output
    ((4, 8, 1, 1), (3, 3), 1, 1, 1, 1, True),  # one position: the centre tap
    ((4, 8, 1, 1), (1, 1), 1, 0, 1, 1, True),
    ((4, 8, 3, 2), (3, 3), (2, 1), (0, 1), 1, 1, True),  # strided, rectangular
    ((4, 8, 3, 3), (3, 3), 1, 1, 1, 1, False),  # opposite corners do not meet
    ((4, 8, 2, 2), (2, 2), 1, 2, 2, 1, False),  # dilated: the outer outputs miss input row 0
    ((4, 8, 2, 2), (3, 3), 1, 1, 1, 2, False),  # grouped
])
def test_dense_is_offered_where_every_input_position_meets_every_output(input_shape, kernel, stride, padding,
                                                                         dilation, groups, offered):
    """Note [dense convolution]: the whole map as one matrix product, only where its matrix holds
    no entry that is zero by construction, and then the heuristic's choice."""
    out_channels = 6 if groups == 1 else 8
    geometry = tuple(pair if isinstance(pair, tuple) else (pair, pair) for pair in (stride, padding, dilation))
    weight_shape = (out_channels, input_shape[1] // groups, *kernel)
    for pass_ in plans.PASSES:
        names, heuristic = _C.conv2d_algorithms(pass_, input_shape, weight_shape, *geometry, groups)
        assert ("dense" in names) == offered and (heuristic == "dense") == offered


def test_direct_is_a_candidate_where_the_window_path_would_pack():
    """More than 16 out channels: the window path packs a GEMM (forward) or forms the weight
    gradient as one (small maps); `direct` offers its register tiles and dot products instead.
    With 16 or fewer it would run the same kernels as `window`, so it is not offered."""
    geometry = ((2, 2), (1, 1), (1, 1), 1)
    candidates = {pass_: _C.conv2d_algorithms(pass_, (4, 16, 16, 16), (32, 16, 3, 3), *geometry)[0]
                  for pass_ in plans.PASSES}
    assert "direct" in candidates["forward"] and "direct" in candidates["backward_weight"]
    assert "direct" not in candidates["backward_data"]  # stride 2: no window path
    for pass_ in plans.PASSES:
        assert "direct" not in _C.conv2d_algorithms(pass_, (4, 16, 16, 16), (16, 16, 3, 3), *geometry)[0]


def test_a_forced_algorithm_that_cannot_compute_the_pass_is_a_value_error():
    x, w = np.ones((1, 2, 5, 5), np.float32), np.ones((3, 2, 5, 5), np.float32)
    with pytest.raises(ValueError, match="algorithm 'winograd' cannot compute.*candidates: gemm, window"):
        _C.conv2d_forward(x, w, None, (1, 1), (0, 0), (1, 1), 1, algorithm="winograd")
    with pytest.raises(ValueError, match="algorithm must be one of"):
        _C.conv2d_forward(x, w, None, (1, 1), (0, 0), (1, 1), 1, algorithm="fft")
    with pytest.raises(ValueError, match="set_conv_algorithm"):
        backend.set_conv_algorithm("fft")
    with pytest.raises(TypeError):
        backend.set_autotune(1)


@pytest.fixture
def forced(request):
    previous = backend.conv_algorithm()
    yield backend.set_conv_algorithm
    backend.set_conv_algorithm(previous)


@pytest.mark.parametrize("algorithm", plans.ALGORITHMS)
def test_set_conv_algorithm_runs_it_through_autograd_where_it_applies(forced, algorithm):
    rng = np.random.default_rng(2)
    x, weight = random_array(rng, 3, 16, 12, 12), random_array(rng, 16, 16, 3, 3)
    geometry = ((1, 1), (1, 1), (1, 1), 1)
    forced(algorithm)
    xt, wt = pcn.tensor(x, requires_grad=True), pcn.tensor(weight, requires_grad=True)
    y = F.conv2d(xt, wt, None, 1, 1)
    gy = random_array(rng, *y.shape)
    (y * pcn.tensor(gy)).sum().backward()
    names, heuristic = _C.conv2d_algorithms("forward", x.shape, weight.shape, *geometry)
    ran = algorithm if algorithm in names else "auto"
    assert np.array_equal(y.detach().numpy(), _C.conv2d_forward(x, weight, None, *geometry, algorithm=ran))
    ref_y, ref_dx, ref_dw, _ = conv2d_reference(x, weight, np.zeros(16, np.float32), gy, *geometry)
    assert_close(y.detach().numpy(), ref_y, what="output")
    assert_close(xt.grad.numpy(), ref_dx, what="grad_input")
    assert_close(wt.grad.numpy(), ref_dw, what="grad_weight")


@pytest.fixture
def tuning(tmp_path, monkeypatch):
    """Selection on, over every SIMD ISA, with a scratch cache folder and a small budget. Under
    PYCONVNET_ISA=generic the calls run on the best SIMD ISA meanwhile: generic alone is never tuned."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    previous_isa = backend.isa()
    if previous_isa in ("reference", "generic") and TUNED_ISAS:
        _C.set_isa(TUNED_ISAS[-1])
    monkeypatch.setattr(plans, "_isa_forced", False)
    monkeypatch.setattr(plans, "_test_delay", {})
    previous_budget, threads = plans._budget_s, backend.get_num_threads()
    backend.set_autotune(True, budget_s=0.05)
    yield tmp_path
    backend.set_autotune(False, budget_s=previous_budget)
    backend.set_num_threads(threads)
    _C.set_isa(previous_isa)
    plans._file["path"] = None  # the next test reads its own folder


def _conv_step(shape=(2, 16, 10, 10), out_channels=16, kernel=3, padding=1, seed=3):
    rng = np.random.default_rng(seed)
    x = pcn.tensor(random_array(rng, *shape), requires_grad=True)
    w = pcn.tensor(random_array(rng, out_channels, shape[1], kernel, kernel), requires_grad=True)
    y = F.conv2d(x, w, None, 1, padding)
    y.sum().backward()
    return x, w, y


def _file_plans(folder):
    with open(plans.cache_path()) as f:
        data = json.load(f)
    assert os.path.dirname(os.path.dirname(plans.cache_path())) == str(folder)
    return data


def test_the_plan_cache_round_trips_through_its_file(tuning, monkeypatch):
    _, _, y = _conv_step()
    data = _file_plans(tuning)
    assert data["format"] == plans.FORMAT and data["cpu"] == plans.cpu_model()
    assert sorted(key.split("|")[3] for key in data["plans"]) == sorted(plans.PASSES)
    assert backend.plan_cache_info()["entries"] == 3
    plans._file["path"] = None  # as a new process: the plans come from the file
    plans._plans.clear()

    def no_timing(*args):
        raise AssertionError("a shape with a plan in the cache was timed again")

    monkeypatch.setattr(plans, "_select", no_timing)
    _, _, again = _conv_step()
    assert np.array_equal(again.detach().numpy(), y.detach().numpy())
    plan = plans.plan_of("forward", (2, 16, 10, 10), (16, 16, 3, 3), (1, 1), (1, 1), (1, 1), 1)
    assert plan == next(p for k, p in data["plans"].items() if "|forward|" in k)
    assert not [name for name in os.listdir(os.path.dirname(plans.cache_path())) if name.endswith(".tmp")]


def test_a_new_thread_count_is_a_new_plan(tuning):
    backend.set_num_threads(1)
    _conv_step()
    backend.set_num_threads(2)
    _conv_step()
    keys = [key for key in _file_plans(tuning)["plans"] if "|forward|" in key]
    assert sorted(key.split("|")[1] for key in keys) == ["threads=1", "threads=2"]


@pytest.mark.parametrize("content", ["{not json", json.dumps({"format": "something else"}),
                                     json.dumps({"format": plans.FORMAT, "version": plans.VERSION,
                                                 "cpu": "Another CPU", "plans": {}})],
                         ids=["corrupt", "foreign-format", "foreign-cpu"])
def test_a_corrupt_or_foreign_cache_is_ignored_with_a_warning(tuning, content):
    path = plans.cache_path()
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as f:
        f.write(content)
    with pytest.warns(RuntimeWarning, match="ignoring the kernel plan cache"):
        _conv_step()
    assert len(_file_plans(tuning)["plans"]) == 3  # rewritten whole, with this run's plans


def test_plans_of_another_build_of_the_kernels_are_timed_again_without_a_warning(tuning, monkeypatch):
    _conv_step()
    path = plans.cache_path()
    with open(path) as f:
        data = json.load(f)
    assert data["build"] == plans.build_id()
    data["build"] = "0.0.1:123:456"  # as a file from before an upgrade or a rebuild
    for plan in data["plans"].values():
        plan["algorithm"] = "gemm"
    with open(path, "w") as f:
        json.dump(data, f)
    plans._file["path"] = None  # as a new process
    plans._plans.clear()
    timed = []
    select = plans._select
    monkeypatch.setattr(plans, "_select", lambda *args: timed.append(1) or select(*args))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _conv_step()
    assert len(timed) == 3  # every pass measured again
    data = _file_plans(tuning)
    assert data["build"] == plans.build_id() and len(data["plans"]) == 3


def test_a_plan_whose_algorithm_cannot_compute_the_shape_is_timed_again(tuning):
    _conv_step(shape=(2, 3, 10, 10), out_channels=4, kernel=5, padding=2)
    path = plans.cache_path()
    with open(path) as f:
        data = json.load(f)
    for plan in data["plans"].values():
        plan["algorithm"] = "winograd"  # not for a 5x5 kernel
    with open(path, "w") as f:
        json.dump(data, f)
    plans._file["path"] = None
    _, _, y = _conv_step(shape=(2, 3, 10, 10), out_channels=4, kernel=5, padding=2)
    assert all(plan["algorithm"] != "winograd" for plan in _file_plans(tuning)["plans"].values())


def test_an_unwritable_cache_folder_costs_a_warning_only(tuning, monkeypatch):
    blocker = tuning / "blocked"
    blocker.write_text("a file where the folder would go")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    with pytest.warns(RuntimeWarning, match="could not write the kernel plan cache"):
        _conv_step()


def test_autotune_off_runs_the_heuristic_and_writes_nothing(tuning):
    backend.set_autotune(False)
    _, w, y = _conv_step(shape=(2, 32, 2, 2), out_channels=32)
    assert not os.path.exists(plans.cache_path())
    x = np.asarray(_conv_step(shape=(2, 32, 2, 2), out_channels=32)[0].detach().numpy())
    geometry = ((1, 1), (1, 1), (1, 1), 1)
    _, heuristic = _C.conv2d_algorithms("forward", x.shape, w.shape, *geometry)
    assert np.array_equal(y.detach().numpy(),
                          _C.conv2d_forward(x, w.detach().numpy(), None, *geometry, algorithm=heuristic))


@pytest.mark.parametrize("threads", [1, 2])  # timed in CPU time / wall time
def test_a_slower_heuristic_choice_loses_to_the_fastest_candidate(tuning, threads):
    """The heuristic's candidate is slowed to 50 ms (a test hook spinning inside its timed region):
    selection must take another; in every pass the plan is the measured minimum, or the heuristic's
    choice when nothing beat it by the margin."""
    backend.set_num_threads(threads)
    shape, weight_shape, geometry = (2, 16, 10, 10), (16, 16, 3, 3), ((1, 1), (1, 1), (1, 1), 1)
    _, heuristic = _C.conv2d_algorithms("forward", shape, weight_shape, *geometry)
    plans._test_delay[(backend.isa(), heuristic)] = 0.05
    x, w, y = _conv_step(shape)
    plan = plans.plan_of("forward", shape, weight_shape, *geometry)
    assert plan["heuristic"] == f"{backend.isa()}/{heuristic}"
    assert (plan["isa"], plan["algorithm"]) != (backend.isa(), heuristic)
    assert len(plan["ms"]) >= 2 * len(TUNED_ISAS) - 2  # several algorithms on each tuned ISA were timed
    for pass_ in plans.PASSES:  # the measured minimum, unless the heuristic's choice is within the margin
        timed = plans.plan_of(pass_, shape, weight_shape, *geometry)
        chosen, fastest = f"{timed['isa']}/{timed['algorithm']}", min(timed["ms"], key=timed["ms"].get)
        if chosen == timed["heuristic"]:
            assert timed["ms"][fastest] >= (1 - plans._margin) * timed["ms"][chosen]
        else:  # the minimum (the plan keeps times rounded to 0.1 us: two candidates may tie)
            assert timed["ms"][chosen] == timed["ms"][fastest]
    # The tuning call returned the chosen candidate's own result.
    chosen = _C.conv2d_forward(x.detach().numpy(), w.detach().numpy(), None, *geometry, algorithm=plan["algorithm"],
                               isa=plan["isa"])
    assert np.array_equal(y.detach().numpy(), chosen)


def test_a_selection_during_which_the_thread_count_moved_is_not_kept(tuning, monkeypatch):
    """Adaptive threading may lower the count while candidates are timed: such a selection returns
    its result but keeps no plan, and the next call with the shape measures again."""
    state = {"threads": 2}

    def forward_then_fewer_threads(*args, **kwargs):
        state["threads"] = 1  # as if other processes got busy during the first candidate
        return _C.conv2d_forward(*args, **kwargs)

    class ThreadsMoving:  # _C, with the count in use read from `state`
        def __getattr__(self, name):
            return forward_then_fewer_threads if name == "conv2d_forward" else getattr(_C, name)

        @staticmethod
        def threads_in_use():
            return state["threads"]

    shape, weight_shape, geometry = (2, 16, 10, 10), (16, 16, 3, 3), ((1, 1), (1, 1), (1, 1), 1)
    x = random_array(np.random.default_rng(0), *shape)
    w = random_array(np.random.default_rng(1), *weight_shape)
    monkeypatch.setattr(plans, "_C", ThreadsMoving())
    moved = plans.conv2d("forward", x, w, None, *geometry)
    for threads in (1, 2):
        state["threads"] = threads
        assert plans.plan_of("forward", shape, weight_shape, *geometry) is None
    monkeypatch.setattr(plans, "_C", _C)
    # The two calls may run different algorithms (Winograd or not): the test's tolerance on the scale.
    assert_close(moved, plans.conv2d("forward", x, w, None, *geometry), what="output")
    assert plans.plan_of("forward", shape, weight_shape, *geometry) is not None  # measured again, kept


def test_deterministic_mode_times_nothing_and_reuses_plans(tuning):
    shape, weight_shape, geometry = (2, 16, 10, 10), (16, 16, 3, 3), ((1, 1), (1, 1), (1, 1), 1)
    _, heuristic = _C.conv2d_algorithms("forward", shape, weight_shape, *geometry)
    plans._test_delay[(backend.isa(), heuristic)] = 0.05
    _, _, tuned = _conv_step(shape)  # a plan other than the heuristic's
    backend.use_deterministic_algorithms(True)
    try:
        _, _, reused = _conv_step(shape)
        assert np.array_equal(reused.detach().numpy(), tuned.detach().numpy())
        x, w, fresh = _conv_step((2, 16, 12, 12))  # no plan: the heuristic, and none recorded
        assert plans.plan_of("forward", (2, 16, 12, 12), weight_shape, *geometry) is None
        assert np.array_equal(fresh.detach().numpy(),
                              _C.conv2d_forward(x.detach().numpy(), w.detach().numpy(), None, *geometry))
    finally:
        backend.use_deterministic_algorithms(False)


def test_bfloat16_operands_have_plans_of_their_own(tuning):
    """Under autocast the passes are timed again on the bfloat16 operands (the avx512bf16 GEMMs
    multiply bfloat16 panels there): a slowed heuristic loses as in float32, the plans are kept
    under their own keys, and the call returns the chosen candidate's bfloat16 result."""
    shape, weight_shape, geometry = (2, 16, 10, 10), (16, 16, 3, 3), ((1, 1), (1, 1), (1, 1), 1)
    _, heuristic = _C.conv2d_algorithms("forward", shape, weight_shape, *geometry)
    plans._test_delay[(backend.isa(), heuristic)] = 0.05
    rng = np.random.default_rng(4)
    x, w = _C.round_bf16(random_array(rng, *shape)), _C.round_bf16(random_array(rng, *weight_shape))
    y = plans.conv2d("forward", x, w, None, *geometry, bf16=True)
    plan = plans.plan_of("forward", shape, weight_shape, *geometry, bf16=True)
    assert (plan["isa"], plan["algorithm"]) != (backend.isa(), heuristic)
    assert plans.plan_of("forward", shape, weight_shape, *geometry) is None  # float32 has none yet
    assert np.array_equal(y, _C.conv2d_forward(x, w, None, *geometry, algorithm=plan["algorithm"],
                                               isa=plan["isa"], bf16=True))
    assert [key.endswith("|bf16") for key in _file_plans(tuning)["plans"]] == [True]
    with pcn.autocast("cpu", dtype=pcn.bfloat16):  # the layer's passes through autograd
        _conv_step(shape)
    assert all(plans.plan_of(pass_, shape, weight_shape, *geometry, bf16=True) for pass_ in plans.PASSES)
    a, b = _C.round_bf16(random_array(rng, 8, 16)), _C.round_bf16(random_array(rng, 16, 12))
    np.testing.assert_allclose(plans.sgemm(a, b, bf16=True), a.astype(np.float64) @ b, rtol=1e-5, atol=1e-5)
    assert (plans.sgemm_plan_of(8, 12, 16, bf16=True) is None) == (len(plans._simd_isas()) < 2)
    assert plans.sgemm_plan_of(8, 12, 16) is None


def test_a_set_isa_limits_the_timing_to_that_isa(tuning):
    backend.set_isa(backend.isa())  # as a user choosing one by hand
    _conv_step()
    plan = plans.plan_of("forward", (2, 16, 10, 10), (16, 16, 3, 3), (1, 1), (1, 1), (1, 1), 1)
    assert {key.split("/")[0] for key in plan["ms"]} == {backend.isa()}
    assert f"|{backend.isa()}|" in f"|{next(iter(_file_plans(tuning)['plans'])).split('|')[0]}|"


def test_info_and_the_layer_suite_report_the_plans(tuning):
    pytest.importorskip("torch")
    from pyconvnet import nn
    from pyconvnet.bench import layers, models

    tiny = models.ModelCase("tiny", "conv", 2, (3, 9, 9), 4, lambda: nn.Sequential(nn.Conv2d(3, 4, 3)), None)
    rows = layers.run_layer_suite([tiny], peak_gflops=100.0, gemm_cases=[("tiny gemm", 8, 12, 16)], repeats=1,
                                  warmup=0, report=lambda row: None)
    assert [row["op"] for row in rows] == ["fwd", "bwd-data", "bwd-weight", "tiny gemm"]
    for row, pass_ in zip(rows, plans.PASSES):
        plan = plans.plan_of(pass_, (2, 3, 9, 9), (4, 3, 3, 3), (1, 1), (0, 0), (1, 1), 1)
        assert row["plan"] == f"{plan['isa']}/{plan['algorithm']}"
    gemm_plan = plans.sgemm_plan_of(8, 12, 16)  # None where one SIMD ISA is all there is
    assert rows[-1]["plan"] == ("heuristic" if gemm_plan is None else f"{gemm_plan['isa']}/gemm")
    facts = backend.info()["plans"]  # the three passes, the forward of finding the layers (batch 1), sgemm
    assert facts["path"] == plans.cache_path() and facts["autotune"]
    assert facts["entries"] == 4 + (gemm_plan is not None)


TRAINING = """
import hashlib
import numpy as np
import pyconvnet as pcn
from pyconvnet import nn, optim

pcn.manual_seed(0)
model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.Flatten(),
                      nn.Linear(16 * 12 * 12, 4))
optimizer = optim.SGD(model.parameters(), lr=0.1)
rng = np.random.default_rng(0)
for _ in range(3):
    x, y = pcn.tensor(rng.standard_normal((8, 3, 12, 12), dtype=np.float32)), pcn.tensor(rng.integers(0, 4, 8))
    optimizer.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
print(hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest())
"""


def test_runs_with_the_same_seed_threads_and_cache_give_the_same_bits(tmp_path):
    """The first run times the shapes and fills the cache; the second reads it: the same weights."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "PYCONVNET_AUTOTUNE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("PYCONVNET_ISA", None)
    runs = [subprocess.run([sys.executable, "-c", TRAINING], capture_output=True, text=True, env=env, timeout=300)
            for _ in range(2)]
    assert all(run.returncode == 0 for run in runs), [run.stderr for run in runs]
    assert runs[0].stdout == runs[1].stdout
    (cache,) = os.listdir(tmp_path / "pyconvnet")
    with open(tmp_path / "pyconvnet" / cache) as f:
        kinds = [key.split("|")[2] for key in json.load(f)["plans"]]
    assert kinds.count("sgemm") == 3  # the linear layer's three products
    assert len(kinds) == 3 + 5  # and both convolutions' forward and weight gradient, the second's dx



@pytest.mark.skipif(len(TUNED_ISAS) < 2, reason="SGEMM has one implementation per ISA: needs two SIMD ISAs")
def test_sgemm_takes_the_faster_isa_and_bias_is_added_once(tuning):
    """linear's products get a plan per size; the bias (out= with beta=1) is not added once per
    timed candidate."""
    plans._test_delay[(backend.isa(), "gemm")] = 0.05
    rng = np.random.default_rng(5)
    x, weight, bias = random_array(rng, 6, 40), random_array(rng, 24, 40), random_array(rng, 24)
    y = F.linear(pcn.tensor(x), pcn.tensor(weight), pcn.tensor(bias)).numpy()
    assert_close(y, x.astype(np.float64) @ weight.T.astype(np.float64) + bias, what="linear")
    keys = [key for key in _file_plans(tuning)["plans"] if "|sgemm|" in key]
    assert keys == [f"{'+'.join(TUNED_ISAS)}|threads={backend.get_num_threads()}|sgemm|m=6|n=24|k=40|trans_a=False|"
                    "trans_b=True"]
    plan = _file_plans(tuning)["plans"][keys[0]]
    assert plan["isa"] != backend.isa() and plan["heuristic"] == f"{backend.isa()}/gemm"
    again = F.linear(pcn.tensor(x), pcn.tensor(weight), pcn.tensor(bias)).numpy()
    assert np.array_equal(again, y)


@pytest.mark.parametrize("kernel", [5, 3])  # the heuristic's choice: sparse, dense
def test_the_pooled_backward_takes_the_faster_route_and_keeps_it(tuning, kernel):
    """conv2d -> ReLU -> max-pool's backward: sparse (on each SIMD ISA) or dense; the heuristic's
    candidate slowed to 50 ms loses, the plan is kept in the file, and the gradients are the chosen
    route's (and torch's)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    x, weight = random_array(rng, 4, 3, 16, 16), random_array(rng, 8, 3, kernel, kernel)
    heuristic = "dense" if kernel == 3 else "sparse"
    plans._test_delay[(backend.isa(), heuristic)] = 0.05
    xt, wt = pcn.tensor(x, requires_grad=True), pcn.tensor(weight, requires_grad=True)
    out = F.conv2d_relu_max_pool2d(xt, wt, None, 1, 1, kernel_size=2)
    out.sum().backward()
    (key, plan), = [(k, p) for k, p in _file_plans(tuning)["plans"].items() if "|pooled_backward|" in k]
    pooled = "x".join(map(str, out.shape))
    assert f"|w=8x3x{kernel}x{kernel}|" in key and f"|pooled={pooled}|" in key and "|input_grad=True|bias_grad=False" in key
    assert plan["heuristic"] == f"{backend.isa()}/{heuristic}"
    assert (plan["isa"], plan["algorithm"]) != (backend.isa(), heuristic)
    assert f"{backend.isa()}/dense" in plan["ms"] and all(f"{isa}/sparse" in plan["ms"] for isa in plans._isas())
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, weight)]
    torch.nn.functional.max_pool2d(torch.relu(torch.nn.functional.conv2d(*theirs, None, 1, 1)), 2).sum().backward()
    np.testing.assert_allclose(wt.grad.numpy(), theirs[1].grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(xt.grad.numpy(), theirs[0].grad.numpy(), rtol=1e-4, atol=1e-4)
