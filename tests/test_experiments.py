"""``pyconvnet experiment``: every experiment end to end at the tests' tiny size on the real
Fashion-MNIST (outputs, determinism for a seed), and each report's claim logic on synthetic
numbers that show the claim and that do not."""

import json
import re
import pathlib

import numpy as np
import pytest

import pyconvnet
from pyconvnet import backend, cli, experiments, viz
from pyconvnet.experiments import degradation, kernels, mlp_vs_cnn, timeline

FIGURES = {"degradation": "degradation.png", "mlp-vs-cnn": "mlp_vs_cnn.png", "kernels": "kernels.png",
           "timeline": "timeline.png"}


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = backend.get_num_threads()
    yield
    backend.set_num_threads(threads)


def _run(capsys, out, name, *extra):
    status = cli.main(["experiment", name, "--size", "tiny", "--threads", "1", "--out", str(out), *extra])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _numbers(out):
    document = json.loads((out / "results.json").read_text())
    del document["timing"]  # wall-clock seconds: the one part a seed does not fix
    return document


@pytest.mark.parametrize("name", sorted(experiments.EXPERIMENTS))
def test_each_experiment_writes_its_outputs_and_repeats_exactly_for_a_seed(capsys, tmp_path, name, real_fashion_mnist):
    status, out, err = _run(capsys, tmp_path / "first", name)
    assert status == 0, err
    for filename in ("results.json", "report.md", FIGURES[name]):
        assert (tmp_path / "first" / filename).stat().st_size > 0, filename
    document = _numbers(tmp_path / "first")
    assert (document["experiment"], document["size"], document["seed"], document["threads"]) == (name, "tiny", 0, 1)
    assert "results.json" in out and "report.md" in out
    assert _run(capsys, tmp_path / "second", name)[0] == 0
    assert _numbers(tmp_path / "second") == document
    if name != "timeline":  # its numbers are counts and recorded accuracies: no seed in them
        assert _run(capsys, tmp_path / "other-seed", name, "--seed", "1")[0] == 0
        assert _numbers(tmp_path / "other-seed")["results"] != document["results"]


def test_degradation_results_hold_per_epoch_curves_and_an_estimate(tmp_path, real_fashion_mnist):
    path = experiments.run("degradation", out=str(tmp_path), size="tiny", threads=1)
    document = json.loads(pathlib.Path(path).read_text())
    assert set(document["results"]["curves"]) == set(degradation.MODELS)
    for records in document["results"]["curves"].values():
        assert [record["epoch"] for record in records] == [1]
        assert all(0 <= record["train_error"] <= 1 and 0 <= record["test_error"] <= 1 for record in records)
    assert document["settings"]["lr"] == 0.1 and document["settings"]["limit_train"] == 64
    assert document["timing"]["full_size_estimate_seconds"] > document["timing"]["total_seconds"]
    report = (tmp_path / "report.md").read_text()
    assert "**estimated**" in report and "![degradation](degradation.png)" in report


def test_without_matplotlib_the_figures_are_skipped_with_a_note(capsys, tmp_path, monkeypatch, real_fashion_mnist):
    monkeypatch.setattr(viz, "available", lambda: False)
    status, out, err = _run(capsys, tmp_path, "kernels")
    assert status == 0, err
    assert not (tmp_path / "kernels.png").exists()
    assert "Figures skipped: matplotlib is not installed" in (tmp_path / "report.md").read_text()
    assert "figures skipped" in out


def test_kernels_from_a_checkpoint_match_the_run_that_wrote_it(capsys, tmp_path, real_fashion_mnist):
    assert _run(capsys, tmp_path / "trained", "kernels")[0] == 0
    checkpoint = tmp_path / "trained" / "runs" / "lenet5" / "last.safetensors"
    status, _, err = _run(capsys, tmp_path / "loaded", "kernels", "--checkpoint", str(checkpoint))
    assert status == 0, err
    trained, loaded = _numbers(tmp_path / "trained"), _numbers(tmp_path / "loaded")
    assert loaded["results"] == trained["results"]
    assert loaded["settings"]["source"] == "checkpoint"


def test_bad_requests_are_refused(capsys, tmp_path):
    status, _, err = _run(capsys, tmp_path, "degradation", "--checkpoint", str(tmp_path / "x.safetensors"))
    assert status == 1 and "for the kernels experiment only" in err
    status, _, err = _run(capsys, tmp_path, "kernels", "--runs", str(tmp_path))
    assert status == 1 and "for the timeline experiment only" in err
    with pytest.raises(ValueError, match="unknown experiment 'alexnet'"):
        experiments.run("alexnet")
    with pytest.raises(ValueError, match="size must be one of"):
        experiments.run("kernels", size="huge")
    with pytest.raises(SystemExit):
        cli.main(["experiment", "nonsense"])
    capsys.readouterr()


# ----------------------------------------------------------------------------- the claims' logic


def _errors(plain20, plain56, resnet20, resnet56):
    return {"plain20": plain20, "plain56": plain56, "resnet20": resnet20, "resnet56": resnet56}


def test_degradation_claim_holds_when_depth_hurts_plain_and_helps_residual():
    errors = _errors(0.08, 0.12, 0.07, 0.05)
    assessment = degradation.assess(errors)
    assert assessment["shown"]
    assert assessment["plain"]["verdict"] == assessment["residual"]["verdict"] == "holds"
    assert assessment["plain"]["gap"] == pytest.approx(0.04)
    text = degradation.describe(assessment, errors)
    assert "As expected, plain56 trains worse than plain20: plain56 ends at 12.00%" in text
    assert "As expected, resnet56 trains better than resnet20" in text
    assert "The degradation problem shows" in text


def test_degradation_claim_is_not_claimed_when_the_numbers_disagree():
    errors = _errors(0.10, 0.07, 0.07, 0.09)  # deeper plain better, deeper residual worse
    assessment = degradation.assess(errors)
    assert not assessment["shown"]
    assert assessment["plain"]["verdict"] == assessment["residual"]["verdict"] == "reversed"
    text = degradation.describe(assessment, errors)
    assert "Not shown: plain56 trains better than plain20, the opposite of the paper" in text
    assert "Not shown: resnet56 trains worse than resnet20" in text
    assert "does not fully show at this size" in text


def test_degradation_gaps_within_the_margin_are_too_close_to_call():
    errors = _errors(0.100, 0.103, 0.07, 0.05)
    assessment = degradation.assess(errors)
    assert assessment["plain"]["verdict"] == "too close" and assessment["residual"]["verdict"] == "holds"
    assert not assessment["shown"]
    assert "this size does not separate them" in degradation.describe(assessment, errors)


def test_full_size_estimate_scales_training_by_images_per_second_and_evaluation_by_test_images():
    config = type("Config", (), {"limit_train": 1000, "limit_test": 500})()
    # 1000 images at 100/s = 10 s training; 2 s of evaluation over 500 test images
    metrics = [{"images_per_s": 100.0, "seconds": 12.0}]
    expected_per_epoch = 60_000 / 100.0 + 2.0 * 10_000 / 500
    assert degradation._full_size_estimate(config, metrics, 30) == pytest.approx(30 * expected_per_epoch)


def _rows(lenet, small, large):
    """Accuracy at shifts 0, 2, 4 px for each network."""
    shifts = (0, *mlp_vs_cnn.SHIFTS)
    return {name: {"params": params, "accuracy": dict(zip(shifts, accuracies))}
            for name, params, accuracies in (("lenet5", 61_706, lenet), ("mlp-78", 62_020, small),
                                             ("mlp-1024-1024", 1_863_690, large))}


def test_mlp_vs_cnn_claims_hold_for_a_translation_robust_cnn():
    rows = _rows((0.90, 0.85, 0.70), (0.86, 0.60, 0.30), (0.898, 0.65, 0.35))
    verdicts = mlp_vs_cnn.assess(rows)
    assert verdicts["mlp-78"]["accuracy"] == "holds" and verdicts["mlp-78"]["translation"] == "holds"
    assert verdicts["mlp-1024-1024"]["accuracy"] == "too close"  # 0.2 points apart
    assert verdicts["mlp-1024-1024"]["translation"] == "holds"
    text = mlp_vs_cnn.describe(verdicts, rows)
    assert "LeNet-5 is more accurate than mlp-78" in text and "LeNet-5 loses less accuracy under a shift" in text


def test_mlp_vs_cnn_claims_are_reported_as_not_shown_when_reversed():
    rows = _rows((0.80, 0.50, 0.20), (0.85, 0.70, 0.60), (0.803, 0.80, 0.79))
    verdicts = mlp_vs_cnn.assess(rows)
    assert verdicts["mlp-78"]["accuracy"] == "reversed" and verdicts["mlp-78"]["translation"] == "reversed"
    assert verdicts["mlp-1024-1024"]["accuracy"] == "too close"
    text = mlp_vs_cnn.describe(verdicts, rows)
    assert "mlp-78 is more accurate than LeNet-5" in text and "(the claim does not show)" in text


def test_mlp_vs_cnn_says_nothing_about_translation_for_a_network_near_chance():
    rows = _rows((0.11, 0.11, 0.10), (0.55, 0.50, 0.36), (0.53, 0.48, 0.38))
    verdicts = mlp_vs_cnn.assess(rows)
    assert verdicts["mlp-78"]["accuracy"] == "reversed" and verdicts["mlp-78"]["translation"] == "untrained"
    assert "the shift comparison says nothing" in mlp_vs_cnn.describe(verdicts, rows)


def test_the_small_mlp_matches_lenet5s_parameter_count():
    networks = mlp_vs_cnn.build_networks()
    counts = {name: sum(p.numel() for p in model.parameters()) for name, model in networks.items()}
    small = next(name for name in counts if name not in ("lenet5", "mlp-1024-1024"))
    assert abs(counts[small] - counts["lenet5"]) / counts["lenet5"] < 0.01, counts
    assert counts["mlp-1024-1024"] > 20 * counts["lenet5"]


def test_shift_images_moves_content_and_fills_the_border():
    images = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    right = mlp_vs_cnn.shift_images(images, 0, 1, -1.0)
    assert np.array_equal(right[0, 0, :, 0], [-1] * 4) and np.array_equal(right[0, 0, :, 1:], images[0, 0, :, :3])
    up = mlp_vs_cnn.shift_images(images, -2, 0, 0.5)
    assert np.array_equal(up[0, 0, :2], images[0, 0, 2:]) and np.all(up[0, 0, 2:] == 0.5)


def test_kernels_nearest_finds_an_embedded_detector_and_its_polarity():
    rng = np.random.default_rng(0)
    learned = rng.standard_normal((6, 5, 5)).astype(np.float32) * 0.01
    learned[3, 1:4, 2:5] = kernels.HAND_KERNELS["sobel_x"]
    learned[5, 0:3, 0:3] = -kernels.HAND_KERNELS["laplacian"]
    matches = kernels.nearest(learned)
    assert matches["sobel_x"]["kernel"] == 3 and matches["sobel_x"]["offset"] == [1, 2]
    assert matches["sobel_x"]["correlation"] == pytest.approx(1.0, abs=1e-3)
    assert matches["laplacian"]["kernel"] == 5 and matches["laplacian"]["correlation"] == pytest.approx(-1.0, abs=1e-3)
    chance = kernels.chance_level(learned.shape, draws=50)
    assert all(0.5 < level < 1 for level in chance.values()), chance  # the best of 54 windows: high by chance
    text = kernels.describe(matches, chance)
    assert "- sobel_x: nearest learned kernel #3, correlation +1.00 (random kernels reach" in text
    assert "sobel_x: nearest learned kernel #3, correlation +1.00 (random kernels reach " \
           f"{chance['sobel_x']:.2f} in 95% of draws): it resembles the hand-made one, beyond chance." in text
    assert "it resembles the hand-made one with the opposite polarity, beyond chance" in text


def test_window_correlations_equal_numpys_corrcoef():
    rng = np.random.default_rng(1)
    learned = rng.standard_normal((2, 5, 5))
    hand = kernels.HAND_KERNELS["laplacian"]
    correlations = kernels.window_correlations(hand, learned)
    assert correlations.shape == (2, 3, 3)
    expected = np.corrcoef(hand.ravel(), learned[1, 2:5, 0:3].ravel())[0, 1]
    assert correlations[1, 2, 0] == pytest.approx(expected)


def test_kernels_report_says_when_nothing_beats_random_kernels():
    learned = np.random.default_rng(2).standard_normal((6, 5, 5))  # random kernels: at chance
    matches = kernels.nearest(learned)
    chance = {name: 1.0 for name in kernels.HAND_KERNELS}
    text = kernels.describe(matches, chance)
    assert text.count("no more than random kernels do") == 4
    assert "None of the learned kernels resembles a hand-made one more than random kernels do" in text


def _recorded_run(folder, model, accuracies, epochs, limit_train=None):
    """A run directory as ``pyconvnet train`` leaves it, reduced to what timeline reads."""
    folder.mkdir(parents=True)
    config = {"model": model, "dataset": "fashion-mnist", "epochs": epochs, "limit_train": limit_train,
              "limit_test": None}
    pyconvnet.save({"config": config}, str(folder / "last.safetensors"))
    (folder / "metrics.jsonl").write_text("".join(json.dumps({"epoch": i + 1, "test_acc": accuracy}) + "\n"
                                                  for i, accuracy in enumerate(accuracies)))


def test_timeline_reads_accuracy_only_from_complete_recipe_runs(tmp_path):
    _recorded_run(tmp_path / "lenet5-a", "lenet5", [0.80, 0.91, 0.90], 3)
    _recorded_run(tmp_path / "lenet5-b", "lenet5", [0.85, 0.89], 2)
    _recorded_run(tmp_path / "nested" / "resnet20-a", "resnet20", [0.70, 0.93], 2)
    _recorded_run(tmp_path / "resnet56-limited", "resnet56", [0.99], 1, limit_train=64)
    _recorded_run(tmp_path / "vgg11-unfinished", "vgg11", [0.60], 30)
    found = timeline.recorded_accuracies(str(tmp_path))
    assert found == {"lenet5": (0.91, str(tmp_path / "lenet5-a")),
                     "resnet20": (0.93, str(tmp_path / "nested" / "resnet20-a"))}
    assert timeline.recorded_accuracies(str(tmp_path / "missing")) == {}


def test_timeline_lists_every_model_with_its_natural_input():
    assert {timeline.natural_input(name) for name in pyconvnet.models.list_models()} == {
        (1, 32, 32), (3, 32, 32), (3, 224, 224)}
    assert timeline.natural_input("plain56") == (3, 32, 32) and timeline.natural_input("vgg16") == (3, 224, 224)
    assert [timeline.year(name) for name in ("lenet5", "alexnet", "vgg19_bn", "googlenet", "resnet152")] == [
        1998, 2012, 2014, 2014, 2015]


def test_on_a_terminal_a_progress_bar_counts_the_steps(capsys, tmp_path, monkeypatch, real_fashion_mnist):
    import sys

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    status, out, err = _run(capsys, tmp_path, "mlp-vs-cnn")
    assert status == 0, err
    # three networks, 256 images in batches of 32, one epoch: 24 steps
    assert re.search(r"mlp-vs-cnn \(steps\): 100%.*24/24", out), out
    assert "lenet5: epoch 1/1" in out
