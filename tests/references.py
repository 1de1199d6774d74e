"""Float64 numpy references for the kernel tests: conv2d, pooling, batch norm and LRN, each
returning the output and the gradients of ``sum(y * gy)``, straight from the definitions.

One copy of each, shared by the parity tests (test_conv, test_pooling, test_normalization) and
the property-based sweep (test_fuzz_kernels).
"""

import numpy as np


# ------------------------------------------------------------------ convolution
def _windows(xp, kernel, stride, dilation, out_size):
    """Slices of the padded input that tap (r, s) reads for every output position."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_size
    for r in range(kh):
        for s in range(kw):
            yield r, s, (slice(None), slice(None), slice(r * dh, r * dh + sh * (oh - 1) + 1, sh),
                         slice(s * dw, s * dw + sw * (ow - 1) + 1, sw))


def conv2d_reference(x, w, b, gy, stride, padding, dilation, groups):
    """Output and the gradients of sum(y * gy) with respect to x, w, b, all in float64."""
    x, w, gy = (a.astype(np.float64) for a in (x, w, gy))
    (ph, pw) = padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    n, c, h, wd = xp.shape
    o, cg, kh, kw = w.shape
    og = o // groups
    oh = (h - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    cols = np.zeros((n, c, kh, kw, oh, ow))
    for r, s, window in _windows(xp, (kh, kw), stride, dilation, (oh, ow)):
        cols[:, :, r, s] = xp[window]
    y = np.zeros((n, o, oh, ow))
    dcols = np.zeros_like(cols)
    dw = np.zeros_like(w)
    for g in range(groups):
        ci, co = slice(g * cg, (g + 1) * cg), slice(g * og, (g + 1) * og)
        y[:, co] = np.einsum("ncrsyx,ocrs->noyx", cols[:, ci], w[co])
        dcols[:, ci] = np.einsum("noyx,ocrs->ncrsyx", gy[:, co], w[co])
        dw[co] = np.einsum("noyx,ncrsyx->ocrs", gy[:, co], cols[:, ci])
    dxp = np.zeros_like(xp)
    for r, s, window in _windows(xp, (kh, kw), stride, dilation, (oh, ow)):
        dxp[window] += dcols[:, :, r, s]
    dx = dxp[:, :, ph : h - ph, pw : wd - pw]
    if b is not None:
        y += b.astype(np.float64)[None, :, None, None]
    db = gy.sum(axis=(0, 2, 3))
    return y, dx, dw, db


# ------------------------------------------------------------------ pooling
def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def pooled_size(size, kernel, stride, padding, dilation, ceil_mode):
    """torch's output length along one axis, last-window drop rule included."""
    span = dilation * (kernel - 1) + 1
    numerator = size + 2 * padding - span + (stride - 1 if ceil_mode else 0)
    out = numerator // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def max_pool_reference(x, gy_fn, kernel, stride, padding, dilation, ceil_mode):
    """Output, argmax (flat h*W+w per plane) and the gradient of sum(y * gy) w.r.t. x."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = map(_pair, (kernel, stride, padding, dilation))
    oh, ow = pooled_size(h, kh, sh, ph, dh, ceil_mode), pooled_size(w, kw, sw, pw, dw, ceil_mode)
    y = np.full((n, c, oh, ow), -np.inf)
    idx = np.full((n, c, oh, ow), -1, dtype=np.int64)
    for i in range(oh):
        for j in range(ow):
            taps = [(i * sh - ph + r * dh, j * sw - pw + s * dw) for r in range(kh) for s in range(kw)]
            first = True
            for row, col in taps:
                if not (0 <= row < h and 0 <= col < w):
                    continue
                v = x[:, :, row, col].astype(np.float64)
                take = np.ones_like(v, dtype=bool) if first else (v > y[:, :, i, j]) | np.isnan(v)
                y[:, :, i, j] = np.where(take, v, y[:, :, i, j])
                idx[:, :, i, j] = np.where(take, row * w + col, idx[:, :, i, j])
                first = False
    gy = gy_fn(y.shape).astype(np.float64)
    dx = np.zeros((n * c, h * w))
    # A dilated window can miss the input entirely (index -1): its gradient goes nowhere.
    planes = np.broadcast_to(np.arange(n * c)[:, None], (n * c, oh * ow))
    found = idx.reshape(n * c, -1) >= 0
    np.add.at(dx, (planes[found], idx.reshape(n * c, -1)[found]), gy.reshape(n * c, -1)[found])
    return y, idx, gy, dx.reshape(x.shape)


def avg_pool_reference(x, gy_fn, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = map(_pair, (kernel, stride, padding))
    oh, ow = pooled_size(h, kh, sh, ph, 1, ceil_mode), pooled_size(w, kw, sw, pw, 1, ceil_mode)
    x64 = x.astype(np.float64)
    windows, y = {}, np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            rows = [r for r in range(i * sh - ph, i * sh - ph + kh) if r < h + ph]  # ceil overhang excluded
            cols = [s for s in range(j * sw - pw, j * sw - pw + kw) if s < w + pw]
            inside_r = [r for r in rows if 0 <= r < h]
            inside_c = [s for s in cols if 0 <= s < w]
            if divisor_override:
                divisor = divisor_override
            elif count_include_pad:
                divisor = len(rows) * len(cols)
            else:
                divisor = len(inside_r) * len(inside_c)
            windows[i, j] = (inside_r, inside_c, divisor)
            y[:, :, i, j] = x64[:, :, inside_r][:, :, :, inside_c].sum(axis=(2, 3)) / divisor
    gy = gy_fn(y.shape).astype(np.float64)
    dx = np.zeros_like(x64)
    for (i, j), (inside_r, inside_c, divisor) in windows.items():
        for r in inside_r:
            dx[:, :, r, inside_c] += (gy[:, :, i, j] / divisor)[:, :, None]
    return y, gy, dx


def adaptive_windows(size, out):
    return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]


def adaptive_reference(x, gy_fn, output_size, mode):
    n, c, h, w = x.shape
    oh, ow = output_size
    x64 = x.astype(np.float64)
    y = np.zeros((n, c, oh, ow))
    idx = np.zeros((n, c, oh, ow), dtype=np.int64)
    for i, (h0, h1) in enumerate(adaptive_windows(h, oh)):
        for j, (w0, w1) in enumerate(adaptive_windows(w, ow)):
            block = x64[:, :, h0:h1, w0:w1].reshape(n, c, -1)
            if mode == "avg":
                y[:, :, i, j] = block.mean(axis=2)
            else:
                arg = np.argmax(block, axis=2)  # first maximum (inputs here hold no NaN)
                y[:, :, i, j] = np.take_along_axis(block, arg[:, :, None], 2)[:, :, 0]
                idx[:, :, i, j] = (h0 + arg // (w1 - w0)) * w + w0 + arg % (w1 - w0)
    gy = gy_fn(y.shape).astype(np.float64)
    dx = np.zeros_like(x64)
    for i, (h0, h1) in enumerate(adaptive_windows(h, oh)):
        for j, (w0, w1) in enumerate(adaptive_windows(w, ow)):
            if mode == "avg":
                dx[:, :, h0:h1, w0:w1] += (gy[:, :, i, j] / ((h1 - h0) * (w1 - w0)))[:, :, None, None]
    if mode == "max":
        flat = dx.reshape(n * c, h * w)
        np.add.at(flat, (np.arange(n * c)[:, None], idx.reshape(n * c, -1)), gy.reshape(n * c, -1))
    return y, idx, gy, dx


# ------------------------------------------------------------------ normalization
def batch_norm_reference(x, weight, bias, gy, eps, training, running_mean=None, running_var=None):
    """Output and the gradients of sum(y * gy) for x, weight, bias; also the batch mean and
    biased variance (training) so callers can check running-stat updates."""
    x, gy = x.astype(np.float64), gy.astype(np.float64)
    channels = x.shape[1]
    axes = (0,) + tuple(range(2, x.ndim))
    per_channel = (1, channels) + (1,) * (x.ndim - 2)
    count = x.size // channels
    if training:
        mean, var = x.mean(axis=axes), x.var(axis=axes)
    else:
        mean, var = running_mean.astype(np.float64), running_var.astype(np.float64)
    invstd = 1.0 / np.sqrt(var + eps)
    w = np.ones(channels) if weight is None else weight.astype(np.float64)
    b = np.zeros(channels) if bias is None else bias.astype(np.float64)
    xhat = (x - mean.reshape(per_channel)) * invstd.reshape(per_channel)
    y = xhat * w.reshape(per_channel) + b.reshape(per_channel)
    dbias = gy.sum(axis=axes)
    dweight = (gy * xhat).sum(axis=axes)
    scale = (w * invstd).reshape(per_channel)
    if training:
        dx = scale * (gy - dbias.reshape(per_channel) / count - xhat * dweight.reshape(per_channel) / count)
    else:
        dx = gy * scale
    return y, dx, dweight, dbias, mean, var


def lrn_reference(x, gy, size, alpha, beta, k):
    """local_response_norm output and input gradient, in float64, straight from the definition."""
    x, gy = x.astype(np.float64), gy.astype(np.float64)
    channels = x.shape[1]
    before, after = size // 2, (size - 1) // 2
    window_sum = np.zeros_like(x)
    for c in range(channels):
        window_sum[:, c] = (x[:, max(0, c - before) : c + after + 1] ** 2).sum(axis=1)
    scale = k + alpha / size * window_sum
    y = x * scale**-beta
    # d y_j / d x_c = [j == c] scale_c^-beta - 2 alpha beta / size * x_j x_c scale_j^(-beta-1), c in window(j)
    term = gy * x * scale ** (-beta - 1)
    gathered = np.zeros_like(x)
    for c in range(channels):
        gathered[:, c] = term[:, max(0, c - after) : c + before + 1].sum(axis=1)
    dx = gy * scale**-beta - 2 * alpha * beta / size * x * gathered
    return y, dx
