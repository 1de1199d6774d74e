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


def build_parser():
    parser = argparse.ArgumentParser(prog="pyconvnet", description="Fast CPU training of classic CNNs.")
    commands = parser.add_subparsers(dest="command", required=True)
    info = commands.add_parser("info", help="version, chosen ISA and why, threads, build flags")
    info.set_defaults(handler=_info)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
