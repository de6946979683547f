"""Mask assembly: sigmoid(P C^T), box crop, upsampling."""
from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from .boxes import sanitize_coordinates


def crop(masks: torch.Tensor, boxes: torch.Tensor, padding: int = 1) -> torch.Tensor:
    """Zero everything outside each box (the original's ``layers/box_utils.py: crop``). masks
    [H, W, N] on the prototype grid; boxes [N, 4] relative point form. -> [H, W, N].

    The box is widened by ``padding`` pixels of the mask grid on each side (the original's
    default of 1), and a pixel is kept when x1 <= x < x2 (float comparison, no rounding).
    """
    h, w, _ = masks.shape
    return masks * crop_region(h, w, boxes, padding, masks.dtype)


def crop_region(h: int, w: int, boxes: torch.Tensor, padding: int = 1,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The 0/1 crop window of :func:`crop` for an H x W grid as an [H, W, N] tensor of ``dtype``;
    ``boxes`` [N, 4] relative point form, ``padding`` in grid pixels."""
    x1, x2 = sanitize_coordinates(boxes[:, 0], boxes[:, 2], w, padding)
    y1, y2 = sanitize_coordinates(boxes[:, 1], boxes[:, 3], h, padding)
    cols = torch.arange(w, device=boxes.device, dtype=x1.dtype).view(1, -1, 1)
    rows = torch.arange(h, device=boxes.device, dtype=x1.dtype).view(-1, 1, 1)
    inside = (cols >= x1) & (cols < x2) & (rows >= y1) & (rows < y2)
    return inside.to(dtype)


def assemble_masks(proto: torch.Tensor, coeffs: torch.Tensor, boxes: torch.Tensor,
                   crop_masks: bool = True) -> torch.Tensor:
    """Prototypes [H, W, K] and coefficients [N, K] -> soft masks [N, H, W] = sigmoid(P C^T)
    in 0..1, each cropped to its box (``boxes`` [N, 4] relative point form) unless
    ``crop_masks`` is False; the original's ``layers/output_utils.py: postprocess``."""
    masks = torch.sigmoid(proto @ coeffs.t())
    if crop_masks:
        masks = crop(masks, boxes)
    return masks.permute(2, 0, 1).contiguous()


# How soft masks go to the image (YolactConfig.mask_interpolation): F.interpolate's modes, each
# with its taps for the in-box path (defined below).
INTERPOLATIONS = ("bilinear", "bicubic")


def _check_mode(mode: str) -> None:
    if mode not in INTERPOLATIONS:
        raise ValueError(f"mask interpolation '{mode}': expected one of {', '.join(INTERPOLATIONS)}")


def upsample_masks(masks: torch.Tensor, height: int, width: int, threshold: float = 0.5,
                   mode: str = "bilinear") -> torch.Tensor:
    """Soft masks [N, h, w] -> boolean masks [N, height, width] in image pixels: upsampling
    (align_corners=False), then > ``threshold``. ``mode`` 'bilinear' is the original's
    (``layers/output_utils.py: postprocess``); 'bicubic' is PyTorch's (A = -0.75, edges
    clamped). Raises ValueError for another mode."""
    _check_mode(mode)
    if masks.shape[0] == 0:
        return torch.zeros((0, height, width), dtype=torch.bool, device=masks.device)
    if (mode == "bicubic" and masks.device.type == "cpu" and masks.dtype == torch.float32
            and not torch.jit.is_tracing() and not torch.compiler.is_compiling()):
        return _bicubic_above_by_products(masks, height, width, threshold)
    return _kernel_above(masks, height, width, threshold, mode)


def _kernel_above(masks: torch.Tensor, height: int, width: int, threshold: float, mode: str) -> torch.Tensor:
    """PyTorch's own upsampling kernel, thresholded: bool [N, height, width]."""
    return F.interpolate(masks[None], (height, width), mode=mode, align_corners=False)[0] > threshold


@functools.lru_cache(maxsize=32)
def _cubic_matrix(out_size: int, in_size: int) -> torch.Tensor:
    """PyTorch's bicubic taps (:func:`_cubic_taps`, edges clamped) as a dense [out_size, in_size]
    float32 matrix on the CPU: one output row or column is this matrix times the source's."""
    index, weights = _cubic_taps(out_size, in_size, 0, out_size, "cpu")
    return torch.zeros(out_size, in_size).scatter_add_(1, index, weights)


def _bicubic_above_by_products(masks: torch.Tensor, height: int, width: int, threshold: float) -> torch.Tensor:
    """Bicubic upsampling on the CPU as two matrix products (Wy @ mask @ Wx^T), thresholded:
    the same bool [N, height, width] as :func:`_kernel_above` in about a third of its time at
    192 px (PyTorch's bicubic CPU kernel is 4x slower than its bilinear one). The products sum in
    another order than the kernel, a few float32 ulps apart; a mask with a value within
    ``_TIE_BAND`` of the threshold is settled by the kernel itself, as the in-box path does."""
    n, h, w = masks.shape
    val = _cubic_matrix(height, h) @ masks @ _cubic_matrix(width, w).T
    val -= threshold
    # near-ties, and NaN (a non-finite input spreads through a whole product, where the kernel
    # keeps it to its taps): the kernel decides those masks
    tied = ~(val.abs() >= _TIE_BAND).flatten(1).all(1)
    above = val > 0
    if bool(tied.any()):
        above[tied] = _kernel_above(masks[tied], height, width, threshold, "bicubic")
    return above


# Bilinear taps of values in [0, 1] differ from PyTorch's own kernel by a few float32 ulps
# (~1e-7); values this close to the threshold are re-decided by that kernel.
_TIE_BAND = 1e-5


def _linear_taps(out_size: int, in_size: int, lo: int, hi: int, device):
    """PyTorch's bilinear (align_corners=False) source indices [n, 2] and weights [n, 2] for
    outputs lo..hi-1."""
    scale = in_size / out_size
    dst = torch.arange(lo, hi, device=device, dtype=torch.float32)
    src = ((dst + 0.5) * scale - 0.5).clamp(min=0)
    i0 = src.long()
    lam1 = src - i0
    i1 = torch.where(i0 < in_size - 1, i0 + 1, i0)
    return torch.stack([i0, i1], 1), torch.stack([1 - lam1, lam1], 1)


def _cubic_taps(out_size: int, in_size: int, lo: int, hi: int, device):
    """PyTorch's bicubic (align_corners=False, A = -0.75) source indices [n, 4] (clamped to the
    input, as its kernel reads the edges) and weights [n, 4] for outputs lo..hi-1."""
    scale = in_size / out_size
    dst = torch.arange(lo, hi, device=device, dtype=torch.float32)
    src = (dst + 0.5) * scale - 0.5  # not clamped at 0, unlike bilinear
    i = torch.floor(src)
    t = src - i
    a = -0.75

    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    weights = torch.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], 1)
    index = (i.long()[:, None] + torch.arange(-1, 3, device=device)).clamp(0, in_size - 1)
    return index, weights


# Float working memory of one band of :func:`upsample_masks_in_boxes` (the taps, the values and
# the tie test of a few output rows): at most this many bytes are alive at once, whatever the
# box and image sizes, so a crowded 4K image costs its bool masks and not float copies of them.
MASK_CHUNK_BYTES = 8 << 20
_FLOATS_PER_PIXEL = 4  # val, val - threshold, its abs, and the band's share of the horizontal pass


def upsample_masks_in_boxes(masks: torch.Tensor, boxes: torch.Tensor, height: int, width: int,
                            threshold: float = 0.5, padding: int = 1, crops: bool = False,
                            chunk_bytes: int = MASK_CHUNK_BYTES, mode: str = "bilinear"):
    """Same result as :func:`upsample_masks` (``mode`` 'bilinear' or 'bicubic') for masks
    cropped by :func:`crop`, computed only inside each box's window (outside it the upsampled
    mask is 0): the interpolation's taps are evaluated for the output pixels that can see the
    crop window, and thresholded straight to bool. Each window is done in bands of output rows
    holding at most ``chunk_bytes`` of float32 working memory (the result is the same bits for
    any band size).

    ``crops=False``: boolean masks [N, height, width]. ``crops=True``: a list of N
    ``(crop, x0, y0)``: bool [h_i, w_i] tensors holding every pixel of the mask that can be
    set (the window of those taps, so it may reach beyond the integer box: one or two pixels
    for bilinear, two more source pixels' worth for bicubic), placed at column ``x0``, row
    ``y0`` of the image; nothing of size height x width is allocated (except for the rare
    mask settled by the full kernel)."""
    _check_mode(mode)
    n, h, w = masks.shape
    out = [] if crops else torch.zeros((n, height, width), dtype=torch.bool, device=masks.device)
    if n == 0:
        return out
    x1, x2 = sanitize_coordinates(boxes[:, 0], boxes[:, 2], w, padding)
    y1, y2 = sanitize_coordinates(boxes[:, 1], boxes[:, 3], h, padding)
    # integer source window [c0, c1) of pixels kept by the crop, widened by one tap
    c0 = (torch.ceil(x1) - 1).clamp(min=0).long().tolist()
    c1 = (torch.ceil(x2) + 1).clamp(max=w).long().tolist()
    r0 = (torch.ceil(y1) - 1).clamp(min=0).long().tolist()
    r1 = (torch.ceil(y2) + 1).clamp(max=h).long().tolist()
    sx, sy = width / w, height / h
    # a bicubic output reads two source pixels either side of its position: widen the output
    # window by two more (the bilinear window below already covers its one)
    reach = 2 if mode == "bicubic" else 0
    # A tap depends only on its output position: one table per axis for the image, sliced per
    # window (the same values as computed per window; building them per window and band cost
    # about a third of this function with 100 detections)
    taps = _cubic_taps if mode == "bicubic" else _linear_taps
    cols, rows = taps(width, w, 0, width, masks.device), taps(height, h, 0, height, masks.device)
    source = masks
    if masks.device.type == "cpu" and masks.dtype == torch.float32:
        # NumPy's per-call cost is a fraction of PyTorch's on these small windows (~20 calls
        # each); the same float32 multiplies and adds in the same order, and any value near
        # enough the threshold to round either way goes to PyTorch's kernel below anyway
        source = masks.detach().numpy()
        cols, rows = tuple(t.numpy() for t in cols), tuple(t.numpy() for t in rows)
    for i in range(n):
        if c1[i] <= c0[i] or r1[i] <= r0[i]:
            if crops:
                out.append((torch.zeros((0, 0), dtype=torch.bool, device=masks.device), 0, 0))
            continue
        # output pixels whose taps may fall inside the source window (one pixel of slack)
        ox0, ox1 = max(0, int((c0[i] - reach) * sx) - 2), min(width, int((c1[i] + 1 + reach) * sx) + 2)
        oy0, oy1 = max(0, int((r0[i] - reach) * sy) - 2), min(height, int((r1[i] + 1 + reach) * sy) + 2)
        window = _window_above(source[i], threshold, cols, rows, ox0, ox1, oy0, oy1, chunk_bytes)
        if isinstance(window, np.ndarray):
            window = torch.from_numpy(window)
        if window is None:
            # A pixel within rounding of the threshold: PyTorch's kernel may round the other
            # way (FMA, evaluation order), so settle this mask with it, as the full path does.
            full = _kernel_above(masks[i:i + 1], height, width, threshold, mode)[0]
            if crops:
                out.append((full, 0, 0))
            else:
                out[i] = full
        elif crops:
            out.append((window, ox0, oy0))
        else:
            out[i, oy0:oy1, ox0:ox1] = window
    return out


def _window_above(mask, threshold: float, cols: tuple, rows: tuple,
                  ox0: int, ox1: int, oy0: int, oy1: int, chunk_bytes: int):
    """Bilinear (or bicubic) upsampling of one soft mask [h, w], evaluated on the output window
    [oy0, oy1) x [ox0, ox1) in bands of rows, thresholded: bool [oy1 - oy0, ox1 - ox0], or None
    when some value lies within ``_TIE_BAND`` of the threshold. ``cols``, ``rows``: the taps
    (indices, weights) of every output column and row (:func:`_linear_taps` or
    :func:`_cubic_taps` over the whole output). Tensors or NumPy arrays (the same operations;
    the result is of the same kind)."""
    xi, xw = cols[0][ox0:ox1], cols[1][ox0:ox1]
    n = xi.shape[1]  # taps per axis: 2 or 4 (the two beyond bilinear's each hold one more float)
    band = max(1, chunk_bytes // ((_FLOATS_PER_PIXEL + n - 2) * 4 * (ox1 - ox0)))
    shape = (oy1 - oy0, ox1 - ox0)
    above = np.empty(shape, dtype=bool) if isinstance(mask, np.ndarray) else \
        torch.empty(shape, dtype=torch.bool, device=mask.device)
    for lo in range(oy0, oy1, band):
        hi = min(oy1, lo + band)
        yi, yw = rows[0][lo:hi], rows[1][lo:hi]
        # horizontal pass on the source rows this band uses, then vertical (PyTorch's order)
        rlo, rhi = int(yi.min()), int(yi.max()) + 1
        source = mask[rlo:rhi]
        horiz = sum(source[:, xi[:, k]] * xw[:, k] for k in range(n))
        val = sum(horiz[yi[:, k] - rlo] * yw[:, k, None] for k in range(n))
        if bool((abs(val - threshold) < _TIE_BAND).any()):
            return None
        above[lo - oy0:hi - oy0] = val > threshold
    return above
