"""pyconvnet.summary and the ``pyconvnet summary`` command: per-layer output shapes, parameters,
multiply-adds and receptive fields, the totals, and the printed table."""

import subprocess
import sys

import numpy as np
import pytest

import pyconvnet as pcn
from pyconvnet import models, nn
from pyconvnet.cli import main


def test_lenet5_rows_and_totals():
    model = models.lenet5()
    model.train()
    result = pcn.summary(model, (1, 28, 28))
    assert model.training and all(m.training for m in model.modules())  # training flags restored
    rows = {row.name: row for row in result.layers}
    assert rows["features.0"].output_shape == (1, 6, 28, 28)
    assert rows["features.0"].mult_adds == 28 * 28 * 6 * 25
    assert rows["features.3"].mult_adds == 10 * 10 * 16 * 6 * 25
    assert rows["classifier.0"].mult_adds == 400 * 120
    assert (rows["features.0"].receptive_field, rows["features.0"].jump) == ((5, 5), (1, 1))
    assert (rows["features.2"].receptive_field, rows["features.2"].jump) == ((6, 6), (2, 2))
    assert (rows["features.3"].receptive_field, rows["features.3"].jump) == ((14, 14), (2, 2))
    assert (rows["features.5"].receptive_field, rows["features.5"].jump) == ((16, 16), (4, 4))
    assert rows["classifier.4"].receptive_field is None
    assert result.total_params == result.trainable_params == 61_706
    assert sum(row.params for row in result.layers) == 61_706
    assert result.total_mult_adds == 117_600 + 240_000 + 48_000 + 10_080 + 840
    assert result.activation_bytes == 4 * sum(int(np.prod(row.output_shape)) for row in result.layers)


def test_classic_lenet5_counts_partial_connections():
    result = pcn.summary(models.lenet5(classic=True), (1, 32, 32))
    rows = {row.name: row for row in result.layers}
    assert rows["c3"].params == 1_516 and rows["c3"].mult_adds == 10 * 10 * 60 * 25
    assert result.trainable_params == 60_000
    assert (rows["s4"].receptive_field, rows["s4"].jump) == ((16, 16), (4, 4))


def test_resnet18_at_224():
    model = models.resnet18()
    result = pcn.summary(model, (3, 224, 224))
    assert result.total_params == 11_689_512
    # Independent count: each convolution's kernel volume times its output positions, plus fc.
    stages = [(64, 56, 2), (128, 28, 2), (256, 14, 2), (512, 7, 2)]
    expected = 64 * 3 * 49 * 112 * 112 + 512 * 1000
    in_planes = 64
    for planes, size, blocks in stages:
        expected += size * size * (in_planes * planes * 9 + planes * planes * 9)
        if in_planes != planes:
            expected += size * size * in_planes * planes  # the 1x1 downsample
        expected += (blocks - 1) * size * size * 2 * planes * planes * 9
        in_planes = planes
    assert result.total_mult_adds == expected
    assert abs(result.total_mult_adds / 1.82e9 - 1) < 0.01  # torchvision quotes 1.81-1.82 GMACs
    rows = {row.name: row for row in result.layers}
    assert rows["layer4.1.bn2"].receptive_field == (435, 435)  # resnet18's published field
    assert rows["layer4.1.bn2"].jump == (32, 32)
    assert rows["fc"].output_shape == (1, 1000)


def test_branches_merge_to_the_largest_field():
    result = pcn.summary(models.googlenet(num_classes=10, cifar=True), (3, 32, 32))
    rows = {row.name: row for row in result.layers}
    # 3a's input has field 5 (two 3x3 stem convs); its branches add 0 (1x1) or 2 (3x3) pixels.
    assert rows["inception3a.branch1.conv"].receptive_field == (5, 5)
    assert rows["inception3a.branch2.1.conv"].receptive_field == (7, 7)
    assert rows["inception3b.branch1.conv"].receptive_field == (7, 7)  # the concatenation's union


def test_table_text():
    text = str(pcn.summary(models.resnet20(), (3, 32, 32)))
    assert "Layer (type)" in text and "Mult-adds" in text and "RF" in text
    assert "conv1 (Conv2d)" in text and "[1, 16, 32, 32]" in text
    assert "layer2.0.downsample (ShortcutA)" in text
    assert "Total params: 269,722" in text and "Trainable params: 269,722" in text
    assert "Total mult-adds: 40.55 M" in text
    single = repr(pcn.summary(nn.Linear(4, 2), (4,)))  # a bare layer is its own only row
    assert "(model) (Linear)" in single and "Total params: 10" in single and "Total mult-adds: 8" in single


def test_bad_arguments():
    with pytest.raises(TypeError, match="must be a pyconvnet.nn.Module"):
        pcn.summary("resnet18", (3, 32, 32))
    with pytest.raises(ValueError, match="input_shape must be"):
        pcn.summary(models.resnet20(), (3, 0, 32))
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 3, H, W\)"):
        pcn.summary(models.resnet20(), (1, 32, 32))


def test_cli_prints_the_table(capsys):
    assert main(["summary", "lenet5", "--input", "1x28x28"]) == 0
    out = capsys.readouterr().out
    assert "features.0 (Conv2d)" in out and "Total params: 61,706" in out
    assert main(["summary", "resnet18", "--input", "3x32x32", "--num-classes", "10", "--cifar"]) == 0
    assert "Total params: 11,173,962" in capsys.readouterr().out
    assert main(["summary", "resnet19", "--input", "3x32x32"]) == 2
    assert "unknown model 'resnet19'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["summary", "lenet5", "--input", "1by28"])


def test_cli_subprocess():
    out = subprocess.run([sys.executable, "-m", "pyconvnet", "summary", "resnet20", "--input", "3x32x32"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert "Total params: 269,722" in out
