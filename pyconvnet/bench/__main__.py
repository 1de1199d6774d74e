"""``python -m pyconvnet.bench CASE SIDE --batch B --threads T --steps S``: the peak-memory probe that
pyconvnet.bench.models.measure_memory runs in a fresh process; prints {"peak_mib": ...}."""

import argparse
import json

from .. import backend
from .models import MODEL_CASES, measure_memory_here


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m pyconvnet.bench", description=__doc__)
    parser.add_argument("case", choices=list(MODEL_CASES))
    parser.add_argument("side", choices=["pyconvnet", "torch"])
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--steps", type=int, required=True)
    args = parser.parse_args(argv)
    backend.set_num_threads(args.threads)
    if args.side == "torch":
        from .timing import require_torch

        require_torch().set_num_threads(args.threads)
    peak_mib = measure_memory_here(MODEL_CASES[args.case].with_batch(args.batch), args.side, args.steps)
    print(json.dumps({"peak_mib": peak_mib}))


if __name__ == "__main__":
    main()
