"""Side-by-side benchmarks of pyconvnet against PyTorch and numpy (``pyconvnet bench``; see
DESIGN.md, "Benchmark protocol"). They need torch, which pyconvnet itself never imports.

- ``models``: one training step of each classic network, with each side's peak memory;
- ``layers``: every convolution, max-pool and batch-norm layer of those networks, and sgemm;
- ``suite.run``: both, with the machine's measured FMA peak, printed and written as JSON;
- ``torch_models``: the torch.nn mirrors of pyconvnet.models (imports torch).
"""
