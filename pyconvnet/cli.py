"""The ``pyconvnet`` command line (also ``python -m pyconvnet``)."""

import argparse
import json
import os
import re
import subprocess
import sys

_INTERRUPTED = 130  # the shell's status for a run stopped by SIGINT


def _info(args):
    from . import backend

    facts = backend.info()
    lines = [
        ("pyconvnet", facts["version"]),
        ("isa", f"{facts['isa']} ({facts['isa_reason']})"),
        ("available isas", ", ".join(facts["available_isas"])),
        ("threads", f"{facts['threads']}, " + ("fewer while other processes keep CPUs busy (adaptive)"
                                              if facts["adaptive_threads"] else "fixed")),
        ("winograd", "on" if facts["winograd"] else "off (PYCONVNET_WINOGRAD=0 or set_winograd(False))"),
        ("kernel plans", _plans_line(facts["plans"])),
        ("compiler", facts["compiler"]),
        ("build flags", facts["build_flags"].strip()),
        ("openmp", str(facts["openmp"])),
        ("openmp waiting", facts["openmp_wait"]),
        ("cuda", _cuda_line(facts["cuda"])),
    ]
    lines += [(f"flags[{name}]", flags) for name, flags in facts["isa_flags"].items()]
    width = max(len(key) for key, _ in lines)
    for key, value in lines:
        print(f"{key:<{width}}  {value}")
    return 0


def _plans_line(facts):
    """'12 plans in PATH (measured selection on)', or why the file is not there yet."""
    state = "measured selection on" if facts["autotune"] else "off: fixed heuristics (PYCONVNET_AUTOTUNE=0)"
    if not facts["exists"]:
        return f"no cache yet ({facts['path']}; {state})"
    return f"{facts['entries']} plan{'' if facts['entries'] == 1 else 's'} in {facts['path']} ({state})"


def _cuda_line(facts):
    """'built for sm_75/80/90 (+PTX 90), 1 device: NVIDIA H200', or why no GPU is used."""
    if not facts["built"]:
        return facts["reason"]  # which says that the GPU module was not built
    built = f"built for {_architectures(facts['architectures'])}"
    if facts["reason"]:
        return f"{built}; unavailable: {facts['reason']}"
    count = len(facts["devices"])
    return f"{built}, {count} device{'' if count == 1 else 's'}: {', '.join(facts['devices'])}"


def _architectures(text):
    """CMake's CUDA architectures as GPU generations: '75-real 80-real 90' -> 'sm_75/80/90 (+PTX 90)'
    (N-real is machine code only, N-virtual PTX only, a bare N both); other forms are shown as given."""
    entries = text.split()
    if not entries or not all(re.fullmatch(r"\d+(-real|-virtual)?", entry) for entry in entries):
        return text
    machine = [entry.split("-")[0] for entry in entries if not entry.endswith("-virtual")]
    ptx = [entry.split("-")[0] for entry in entries if not entry.endswith("-real")]
    named = f"sm_{'/'.join(machine)}" if machine else "no machine code"
    return named + (f" (+PTX {'/'.join(ptx)})" if ptx else "")


def _train(args):
    from . import train

    settings = {name: getattr(args, name) for name in (
        "model", "dataset", "epochs", "batch_size", "lr", "optimizer", "scheduler", "weight_decay", "momentum",
        "label_smoothing", "augment", "seed", "limit_train", "limit_test", "lr_scaling", "warmup_epochs",
        "weights", "num_classes", "freeze_backbone", "image_size", "val_split", "amp")}
    try:
        settings.update(_data_settings(args))
        accuracy = train.train(settings, out_dir=args.out, resume=args.resume, data_dir=args.data_dir,
                               threads=args.threads, device=args.device)
    except (train.TrainingStopped, ImportError, ValueError, FileExistsError, FileNotFoundError) as error:
        print(f"pyconvnet train: error: {error}", file=sys.stderr)
        train.end_distributed_job(1)
        return 1
    return 0 if accuracy is not None else _INTERRUPTED


def _data_settings(args):
    """The settings ``--data imagefolder:DIR`` stands for (none without it)."""
    if args.data is None:
        return {}
    if args.dataset is not None:
        raise ValueError("give either --dataset or --data, not both")
    return {"dataset": "imagefolder", "folder": args.data}


def _image_folder(text):
    """argparse's ``type`` for --data: 'imagefolder:DIR' -> DIR as an absolute path."""
    kind, _, folder = text.partition(":")
    if kind != "imagefolder" or not folder:
        raise argparse.ArgumentTypeError(f"expected imagefolder:DIR, got {text!r}")
    return os.path.abspath(os.path.expanduser(folder))


def _class_count(text):
    """argparse's ``type`` for --num-classes: 'auto' -> None (not given), else a positive int."""
    return None if text == "auto" else _positive_int(text)


def _predict(args):
    from . import backend, predict

    if args.threads is not None:
        backend.set_num_threads(args.threads)
    try:
        classifier = predict.Classifier(args.checkpoint)
        paths = predict.image_paths(args.images)
        ranked = classifier.predict(paths, args.top_k)
    except (ImportError, ValueError, FileNotFoundError) as error:
        print(f"pyconvnet predict: error: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([{"path": path, "top": [{"class": name, "probability": p} for name, p in top]}
                          for path, top in zip(paths, ranked)], indent=2))
        return 0
    for path, top in zip(paths, ranked):
        print(path)
        width = max(len(name) for name, _ in top)
        for name, probability in top:
            print(f"  {name:<{width}}  {probability:.4f}")
    return 0


def _add_predict_parser(commands):
    parser = commands.add_parser(
        "predict", help="classify images with a saved checkpoint: top-k classes and probabilities",
        description="Classify each IMAGE (a directory: every image file in it, walked) with the model saved in "
                    "CKPT, preprocessed as the run's validation images were, and print the most likely classes "
                    "by name with their probabilities.")
    parser.add_argument("checkpoint", metavar="CKPT")
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument("--top-k", type=_positive_int, default=5, metavar="K",
                        help="classes shown per image (default 5)")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON list of {path, top: [{class, probability}]} instead")
    parser.add_argument("--threads", type=_positive_int)
    parser.set_defaults(handler=_predict)


def _eval(args):
    from . import train

    try:
        loss, accuracy = train.evaluate_checkpoint(args.checkpoint, args.data_dir, args.limit_test, args.threads)
    except (ValueError, FileNotFoundError) as error:
        print(f"pyconvnet eval: error: {error}", file=sys.stderr)
        return 1
    print(f"test loss: {loss:.4f}")
    print(f"test accuracy: {accuracy:.4f}")
    return 0


def _plot(args):
    from . import backend, viz

    if args.threads is not None:
        backend.set_num_threads(args.threads)
    try:
        paths = viz.plot_run(args.run_dir, data_dir=args.data_dir, limit_test=args.limit_test)
    except (ImportError, ValueError, FileNotFoundError) as error:
        print(f"pyconvnet plot: error: {error}", file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    return 0


def _export(args):
    from . import onnx, train
    from ._runs import checkpoint_eval_settings

    try:
        model, state = train.load_model(args.checkpoint)
        preprocess = checkpoint_eval_settings(state)
        onnx.export(model, args.input or (preprocess["channels"], preprocess["crop_size"], preprocess["crop_size"]),
                    args.onnx)
    except (ImportError, TypeError, ValueError, FileNotFoundError) as error:
        print(f"pyconvnet export: error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {args.onnx}")
    return 0


def _add_train_parser(commands):
    parser = commands.add_parser(
        "train", help="train a model (LeNet-5 on Fashion-MNIST by default)",
        description="Train one of pyconvnet.models on a dataset. Settings left out come from the model's "
                    "recipe; the run directory gets metrics.jsonl, last.safetensors and best.safetensors. "
                    "Under `mpiexec -n N` (the mpi extra) the N ranks train data-parallel; rank 0 writes.")
    # Defaults are None so that the recipe, or the resumed checkpoint, decides what is not given.
    parser.add_argument("--model", default=None, help="a name from pyconvnet.models.list_models() (default lenet5)")
    parser.add_argument("--dataset", default=None, choices=["fashion-mnist", "mnist", "cifar10"],
                        help="default fashion-mnist")
    parser.add_argument("--data", type=_image_folder, metavar="imagefolder:DIR",
                        help="train on a folder of images instead: DIR/<class>/<image> (a --val-split share is held "
                             "out for validation) or DIR/train/<class>/... with DIR/val/<class>/...")
    parser.add_argument("--weights", metavar="FILE",
                        help="fine-tune these weights (a torchvision .pth or a .safetensors file): all but the "
                             "classifier head is loaded; the head is sized for the data's classes")
    parser.add_argument("--num-classes", type=_class_count, metavar="auto|N",
                        help="the classifier's outputs: auto (default), the data's class count, which N must match")
    parser.add_argument("--freeze-backbone", action="store_true", default=None,
                        help="train the classifier head only")
    parser.add_argument("--image-size", type=_positive_int, metavar="N",
                        help="side of the square crops an image folder's images are trained on (default 224)")
    parser.add_argument("--val-split", type=float, metavar="SHARE",
                        help="share of each class held out when the image folder has no val/ (default 0.1)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int, help="the global batch, split evenly over MPI ranks")
    parser.add_argument("--lr", type=float, help="learning rate (the peak one for onecycle)")
    parser.add_argument("--lr-scaling", choices=["none", "linear"],
                        help="linear: multiply the rate by the batch size / the recipe's batch size (Goyal et al.; "
                             "default none)")
    parser.add_argument("--warmup-epochs", type=int, metavar="N",
                        help="ramp the rate linearly per step over the first N epochs (default 0)")
    parser.add_argument("--optimizer", choices=["sgd", "adam", "adamw"])
    parser.add_argument("--scheduler", choices=["none", "step", "multistep", "cosine", "onecycle"],
                        help="stepped every batch: step = /10 at each third of the run, multistep = /10 at 50%% "
                             "and 75%%, cosine to 0, onecycle")
    parser.add_argument("--weight-decay", type=float)
    parser.add_argument("--momentum", type=float, help="SGD momentum")
    parser.add_argument("--label-smoothing", type=float)
    parser.add_argument("--augment", action=argparse.BooleanOptionalAction,
                        help="random crop (padded) and, where mirror images are plausible, horizontal flip")
    parser.add_argument("--seed", type=int, help="default 0")
    parser.add_argument("--amp", choices=["none", "bf16"],
                        help="bf16: convolution and linear layers of the training steps compute in bfloat16 "
                             "(float32 sums, weights and optimiser state; CPU only; default none)")
    parser.add_argument("--threads", type=int, help="kernel threads (default: OpenMP's; under mpiexec, a rank's "
                                                    "share of the machine's cores)")
    parser.add_argument("--device", default="auto", metavar="{auto,cpu,cuda,cuda:N}",
                        help="where the model trains (default auto: cuda when pyconvnet.cuda.is_available(), else "
                             "cpu; the CPU under mpiexec); a resumed run may change it")
    parser.add_argument("--data-dir", help="where the dataset is (default: $PYCONVNET_DATA, the cache, "
                                           "/usr/share/datasets)")
    parser.add_argument("--out", metavar="DIR", help="run directory (default runs/MODEL-DATASET-TIMESTAMP; with "
                                                     "--resume, the checkpoint's directory)")
    parser.add_argument("--resume", metavar="PATH", help="continue the run saved in this checkpoint")
    parser.add_argument("--limit-train", type=int, metavar="N", help="train on the first N images only")
    parser.add_argument("--limit-test", type=int, metavar="N", help="evaluate on the first N test images only")
    parser.set_defaults(handler=_train)


def _add_eval_parser(commands):
    parser = commands.add_parser("eval", help="test loss and accuracy of a saved checkpoint",
                                 description="Rebuild the model saved in CKPT and evaluate it on its dataset's test split.")
    parser.add_argument("checkpoint", metavar="CKPT")
    parser.add_argument("--data-dir")
    parser.add_argument("--limit-test", type=int, metavar="N")
    parser.add_argument("--threads", type=int)
    parser.set_defaults(handler=_eval)


def _add_plot_parser(commands):
    parser = commands.add_parser(
        "plot", help="pictures of a training run: curves, first-layer kernels, feature maps, confusion matrix",
        description="Write curves.png, kernels.png, feature_maps.png and confusion.png into RUN_DIR (a directory "
                    "written by pyconvnet train), from its metrics.jsonl and best checkpoint. Needs matplotlib: "
                    "pip install 'pyconvnet[viz]'.")
    parser.add_argument("run_dir", metavar="RUN_DIR")
    parser.add_argument("--data-dir")
    parser.add_argument("--limit-test", type=int, metavar="N", help="default: the run's own --limit-test")
    parser.add_argument("--threads", type=int)
    parser.set_defaults(handler=_plot)


def _add_export_parser(commands):
    parser = commands.add_parser("export", help="write a saved checkpoint's model as an ONNX file",
                                 description="Rebuild the model saved in CKPT and write it as ONNX (opset 17, dynamic "
                                             "batch; input 'input', output 'logits'). Needs the onnx extra.")
    parser.add_argument("checkpoint", metavar="CKPT")
    parser.add_argument("--onnx", required=True, metavar="OUT", help="the .onnx file to write")
    parser.add_argument("--input", type=_input_shape, default=None,
                        help="one sample's shape as CxHxW (default: the checkpoint dataset's image shape)")
    parser.set_defaults(handler=_export)


def _positive_int(text):
    """argparse's ``type`` for counts: ``text`` as an int >= 1 (``check_int``'s rule)."""
    from .ops._args import check_int

    try:
        return check_int(int(text), "value", "argument")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None


def _input_shape(text):
    """'3x224x224' -> (3, 224, 224)."""
    try:
        shape = tuple(int(part) for part in text.lower().split("x"))
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected sizes joined by 'x' such as 3x224x224, got {text!r}")
    return shape


def _summary(args):
    from . import models
    from .summary import summary

    options = {"in_channels": args.input[0]}
    if args.num_classes is not None:
        options["num_classes"] = args.num_classes
    if args.cifar:
        options["cifar"] = True
    try:
        model = models.get_model(args.model, **options)
        print(summary(model, args.input))
    except (TypeError, ValueError) as error:
        print(f"pyconvnet summary: error: {error}", file=sys.stderr)
        return 2
    return 0


def _bench(args):
    from .bench import suite
    from .bench.timing import thread_environment

    # numpy's BLAS read its thread count when `import pyconvnet` loaded numpy, before these
    # arguments were parsed: run the command again in a process whose environment says --threads.
    wanted = thread_environment(args.threads) if args.threads is not None else {}
    if any(os.environ.get(name) != value for name, value in wanted.items()):
        return subprocess.run([sys.executable, "-m", "pyconvnet", *args.argv], env={**os.environ, **wanted},
                              check=False).returncode
    try:
        if args.distributed:
            from .bench import distributed

            distributed.run(threads=args.threads or 2, json_path=args.json)
            return 0
        suite.run(args.models, layers=args.layers, quick=args.quick, threads=args.threads, repeats=args.repeats,
                  batch=args.batch, json_path=args.json, device=args.device, profile=args.profile,
                  neighbours=args.neighbour, rounds=args.rounds)
    except (ImportError, ValueError) as error:
        print(f"pyconvnet bench: error: {error}", file=sys.stderr)
        return 1
    return 0


def _add_bench_parser(commands):
    from .bench.models import MODEL_CASES

    parser = commands.add_parser(
        "bench", help="time training steps (and layers) against PyTorch on this machine's CPU or GPU",
        description="Time one training step of each classic network in pyconvnet and in PyTorch (same weights, "
                    "batch, SGD with momentum, threads), alternating; report ms, images/s, GFLOP/s, share of the "
                    "measured FMA peak and each side's peak memory. Writes the results as JSON. Needs torch.")
    parser.add_argument("--models", nargs="+", choices=list(MODEL_CASES), metavar="NAME",
                        help=f"cases to run (default all: {' '.join(MODEL_CASES)})")
    parser.add_argument("--layers", action="store_true",
                        help="also time every conv, max-pool and batch-norm layer of those models, and sgemm")
    parser.add_argument("--profile", action="store_true",
                        help="also split each pyconvnet step into time inside the kernels (per kernel) and outside "
                             "them (Python, autograd, dispatch), with its system time and page faults")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and warm-ups: a smoke run (with --device "
                                                             "cuda: 5 repeats, 1 warm-up, about a minute on an H200)")
    parser.add_argument("--device", default="cpu", metavar="{cpu,cuda,cuda:N}",
                        help="cuda: the training-step suite on that GPU against PyTorch's CUDA build, TF32 as "
                             "PyTorch's defaults, at batches LeNet-5 128, ResNet-20 128, ResNet-18 64 and the "
                             "suite's for the others; each side's peak allocator memory (default cpu)")
    parser.add_argument("--distributed", action="store_true",
                        help="instead: all-reduce and data-parallel steps under mpiexec -n 2 (the mpi extra), and "
                             "the projected scaling to clusters (pyconvnet.bench.distributed)")
    parser.add_argument("--neighbour", type=_positive_int, metavar="N",
                        help="instead: time each training step quiet, beside N busy-loop processes and on one "
                             "thread, in alternating rounds, and report the slowdown (pyconvnet.bench.sharing)")
    parser.add_argument("--rounds", type=_positive_int, help="alternating rounds of --neighbour (default 5, --quick 2)")
    parser.add_argument("--threads", type=_positive_int, help="threads for both libraries (default: all cores)")
    parser.add_argument("--repeats", type=_positive_int, help="timed repeats per measurement (default 7, --quick 3)")
    parser.add_argument("--batch", type=_positive_int, help="override every model's batch size")
    parser.add_argument("--json", metavar="PATH",
                        help="where to write the results (default bench/results/DATE-TIME-CPU.json)")
    parser.set_defaults(handler=_bench)


def _experiment(args):
    from . import experiments, train

    size = args.size or ("quick" if args.quick else "full")
    try:
        experiments.run(args.name, out=args.out, seed=args.seed, size=size, threads=args.threads,
                        data_dir=args.data_dir, checkpoint=args.checkpoint, runs=args.runs)
    except (train.TrainingStopped, ValueError, FileExistsError, FileNotFoundError) as error:
        print(f"pyconvnet experiment: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as error:
        print(f"pyconvnet experiment: interrupted: {error}", file=sys.stderr)
        return _INTERRUPTED
    return 0


def _add_experiment_parser(commands):
    from .experiments import EXPERIMENTS, SIZES

    parser = commands.add_parser(
        "experiment", help="rerun a classic claim about CNNs: degradation, mlp-vs-cnn, timeline, kernels",
        description="Run one experiment on Fashion-MNIST and write its figures, results.json and report.md into "
                    "--out. degradation: plain vs residual nets of 20 and 56 layers (He et al. 2016, Fig. 1); "
                    "mlp-vs-cnn: LeNet-5 vs fully connected nets, parameters, accuracy, shifted images; kernels: "
                    "Sobel/Laplacian/Gaussian beside LeNet-5's learned first-layer kernels; timeline: every "
                    "zoo model's parameters, mult-adds, training speed here and recorded accuracy.")
    parser.add_argument("name", choices=list(EXPERIMENTS))
    parser.add_argument("--out", metavar="DIR", help="output directory (default runs/experiment-NAME-TIMESTAMP)")
    parser.add_argument("--seed", type=int, default=0, help="default 0")
    parser.add_argument("--size", choices=SIZES,
                        help="full (default: the recipe; hours for degradation), medium (an hour at most), quick "
                             "(minutes) or tiny (seconds: the tests' size, which shows nothing)")
    parser.add_argument("--quick", action="store_true", help="the same as --size quick")
    parser.add_argument("--threads", type=_positive_int, help="kernel threads (default: OpenMP's)")
    parser.add_argument("--data-dir", help="where Fashion-MNIST is (default: as pyconvnet train)")
    parser.add_argument("--checkpoint", metavar="CKPT", help="kernels: a trained LeNet-5 checkpoint instead of training one")
    parser.add_argument("--runs", metavar="DIR", help="timeline: where recorded training runs are (default runs)")
    parser.set_defaults(handler=_experiment)


def build_parser():
    parser = argparse.ArgumentParser(prog="pyconvnet", description="Fast CPU training of classic CNNs.")
    commands = parser.add_subparsers(dest="command", required=True)
    info = commands.add_parser("info", help="version, chosen ISA and why, threads, build flags")
    info.set_defaults(handler=_info)
    _add_train_parser(commands)
    _add_eval_parser(commands)
    _add_plot_parser(commands)
    _add_export_parser(commands)
    _add_predict_parser(commands)
    _add_bench_parser(commands)
    _add_experiment_parser(commands)
    table = commands.add_parser("summary", help="layer table of a model: shapes, parameters, mult-adds, receptive field")
    table.add_argument("model", help="a name from pyconvnet.models.list_models(), e.g. resnet18")
    table.add_argument("--input", type=_input_shape, default=(3, 224, 224),
                       help="one sample's shape as CxHxW (default 3x224x224)")
    table.add_argument("--num-classes", type=int, default=None, help="classifier outputs (default: the model's)")
    table.add_argument("--cifar", action="store_true", help="the model's small-input variant")
    table.set_defaults(handler=_summary)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # for a command that must run itself again in a fresh process
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
