"""``torch.backends.cudnn``: the flags scripts assign; cuDNN is never used by pyconvnet's CPU kernels,
which are deterministic for a given thread count whatever ``deterministic`` and ``benchmark`` say."""

enabled = True
benchmark = False
deterministic = False
allow_tf32 = True


def is_available():
    return False


def version():
    return None
