"""The ``pyconvnet`` command line (also ``python -m pyconvnet``)."""

import argparse
import sys


def _info(args):
    from . import backend

    facts = backend.info()
    lines = [
        ("pyconvnet", facts["version"]),
        ("isa", f"{facts['isa']} ({facts['isa_reason']})"),
        ("available isas", ", ".join(facts["available_isas"])),
        ("threads", str(facts["threads"])),
        ("compiler", facts["compiler"]),
        ("build flags", facts["build_flags"].strip()),
        ("openmp", str(facts["openmp"])),
        ("cuda", "built" if facts["cuda"] else "not built"),
    ]
    lines += [(f"flags[{name}]", flags) for name, flags in facts["isa_flags"].items()]
    width = max(len(key) for key, _ in lines)
    for key, value in lines:
        print(f"{key:<{width}}  {value}")
    return 0


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


def build_parser():
    parser = argparse.ArgumentParser(prog="pyconvnet", description="Fast CPU training of classic CNNs.")
    commands = parser.add_subparsers(dest="command", required=True)
    info = commands.add_parser("info", help="version, chosen ISA and why, threads, build flags")
    info.set_defaults(handler=_info)
    table = commands.add_parser("summary", help="layer table of a model: shapes, parameters, mult-adds, receptive field")
    table.add_argument("model", help="a name from pyconvnet.models.list_models(), e.g. resnet18")
    table.add_argument("--input", type=_input_shape, default=(3, 224, 224),
                       help="one sample's shape as CxHxW (default 3x224x224)")
    table.add_argument("--num-classes", type=int, default=None, help="classifier outputs (default: the model's)")
    table.add_argument("--cifar", action="store_true", help="the model's small-input variant")
    table.set_defaults(handler=_summary)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
