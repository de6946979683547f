"""Pictures: detection overlays and prototype grids."""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np

# Material-design palette of the original demo, in RGB.
_PALETTE_RGB = (
    (244, 67, 54), (233, 30, 99), (156, 39, 176), (103, 58, 183), (63, 81, 181), (33, 150, 243),
    (3, 169, 244), (0, 188, 212), (0, 150, 136), (76, 175, 80), (139, 195, 74), (205, 220, 57),
    (255, 235, 59), (255, 193, 7), (255, 152, 0), (255, 87, 34), (121, 85, 72), (158, 158, 158),
    (96, 125, 139),
)


def class_color(label: int) -> tuple:
    """A stable BGR colour per class id."""
    r, g, b = _PALETTE_RGB[(label * 5) % len(_PALETTE_RGB)]
    return (b, g, r)


def track_color(track_id: int) -> tuple:
    """A stable BGR colour per identity (neighbouring ids far apart in the palette)."""
    r, g, b = _PALETTE_RGB[(int(track_id) * 7) % len(_PALETTE_RGB)]
    return (b, g, r)


def draw_detections(image: np.ndarray, boxes: np.ndarray, masks: Optional[np.ndarray], labels: np.ndarray,
                    scores: Optional[np.ndarray], class_names: Sequence[str], alpha: float = 0.45,
                    draw_boxes: bool = True, draw_text: bool = True, track_ids: Optional[np.ndarray] = None,
                    trails: Optional[Dict[int, Sequence[Tuple[float, float]]]] = None) -> np.ndarray:
    """Overlay masks (bool [N, H, W], or a :class:`~yolact.results.MaskCrops`; translucent,
    per-class colour), boxes and 'name score' labels on a BGR image
    (just 'name' without scores: ground truth). With ``track_ids`` the colour follows the
    identity and the label starts with it; ``trails`` draws each identity's recent centres.

    Detections are drawn in ascending score order, so where two overlap (one object reported
    under two classes) the better one's mask and box end on top. Labels and lines grow with the
    picture (:func:`label_style`); labels are kept inside it and never overlap one another, the
    best-scoring placed first (:func:`label_rects`: in a crowded picture the lowest-scoring labels
    that find no free place are left out). On a tiny picture (under about 100 px) a label too
    big for it loses its score, then is left out (:func:`fit_label`): it would hide the object."""
    out = image.astype(np.float32).copy()
    height, width = out.shape[:2]
    n = len(labels)
    # Stable sort: equal scores (and ground truth, without scores) keep the given order, drawn last first.
    order = (np.argsort(-np.asarray(scores, np.float64), kind="stable") if scores is not None
             else np.arange(n))[::-1]

    def color_of(i: int) -> tuple:
        return track_color(int(track_ids[i])) if track_ids is not None else class_color(int(labels[i]))

    crops = getattr(masks, "crops", None)  # MaskCrops: blend inside each crop only
    for i in order:
        color = np.array(color_of(i), dtype=np.float32)
        if crops is not None:
            c = crops[i]
            x0, y0 = (int(v) for v in masks.offsets[i])
            region = out[y0:y0 + c.shape[0], x0:x0 + c.shape[1]]
            region[c] = region[c] * (1 - alpha) + color * alpha
        elif masks is not None and len(masks):
            m = np.asarray(masks[i], bool)
            out[m] = out[m] * (1 - alpha) + color * alpha
    out = np.clip(out, 0, 255).astype(np.uint8)
    scale, thick, line = label_style(height, width)
    if trails:
        for tid, pts in trails.items():
            if len(pts) > 1:
                cv2.polylines(out, [np.round(np.array(pts)).astype(np.int32)], False, track_color(tid), 2 * line,
                              cv2.LINE_AA)
    if draw_boxes:
        for i in order:
            x1, y1, x2, y2 = [int(round(v)) for v in boxes[i]]
            cv2.rectangle(out, (x1, y1), (x2, y2), color_of(i), line)
    if draw_text and n:
        texts = []
        for i in range(n):
            name = class_names[int(labels[i])] if int(labels[i]) < len(class_names) else str(int(labels[i]))
            text = name if scores is None else f"{name} {scores[i]:.2f}"
            short = f"{int(track_ids[i])} {name}" if track_ids is not None else name
            texts.append(fit_label(f"{int(track_ids[i])} {text}" if track_ids is not None else text, short,
                                   height, width))
        rects = label_rects(texts, boxes, [i for i in order[::-1] if texts[i] is not None], height, width)
        for i in order:
            if rects[i] is None:
                continue  # no free place left in a crowded picture: better no label than a pile
            x0, y0, x1, y1 = rects[i]
            cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), color_of(i), -1)
            th = cv2.getTextSize("Ag", _FONT, scale, thick)[0][1]
            cv2.putText(out, texts[i], (x0 + _label_margin(scale), y0 + _label_margin(scale) + th), _FONT, scale,
                        (255, 255, 255), thick, cv2.LINE_AA)
    return out


_FONT = cv2.FONT_HERSHEY_DUPLEX


def label_style(height: int, width: int) -> Tuple[float, int, int]:
    """How big labels and lines are on an image of ``height`` x ``width`` pixels: (font scale of
    ``cv2.FONT_HERSHEY_DUPLEX``, text thickness, box line width), all growing with the mean side
    (scale 0.5 on a 640x480 picture, about 2.7 on 4K; at least 0.35 so small pictures stay
    readable)."""
    side = (height + width) / 2
    scale = min(max(side / 1100, 0.35), 4.0)
    return scale, max(1, int(round(scale * 1.6))), max(1, int(round(side / 500)))


# The most of a picture one label may cover (its rectangle's area): on a 64 x 64 picture
# 'circle 0.95' would cover 19%, more than a small object.
LABEL_AREA_MAX = 0.06


def fit_label(text: str, short: str, height: int, width: int) -> Optional[str]:
    """The label to draw on a ``height`` x ``width`` picture: ``text`` ('circle 0.95') when its
    rectangle (:func:`label_style`'s size) covers at most :data:`LABEL_AREA_MAX` of the
    picture, else ``short`` ('circle') when that does, else None (no label: on a tiny picture it
    would hide the object). Pictures from about 130 px keep 'name 0.95' labels of short names."""
    scale, thick, _ = label_style(height, width)
    margin = _label_margin(scale)
    (_, th), base = cv2.getTextSize("Ag", _FONT, scale, thick)
    lh = min(th + base + 2 * margin, height)
    for candidate in (text, short):
        lw = min(cv2.getTextSize(candidate, _FONT, scale, thick)[0][0] + 2 * margin, width)
        if lw * lh <= LABEL_AREA_MAX * height * width:
            return candidate
    return None


def _label_margin(scale: float) -> int:
    return max(2, int(round(4 * scale)))


def label_rects(texts: Sequence[str], boxes: np.ndarray, priority: Sequence[int], height: int,
                width: int) -> list:
    """Where each label goes: a rectangle (x0, y0, x1, y1) in pixels (x1, y1 exclusive) inside
    the picture, or None. Labels are placed in ``priority`` order (best first), each at the first
    free place of: above its box's top-left corner, inside it, below the box, then stepping
    down through and up from the box; a place is free when it overlaps no label already placed.
    A label with no free place gets None (a crowded picture: the lower-priority labels are left
    out rather than piled on each other). Sizes follow :func:`label_style`."""
    scale, thick, _ = label_style(height, width)
    margin = _label_margin(scale)
    rects = [None] * len(texts)
    placed = np.zeros((0, 4), np.int64)
    (_, th), base = cv2.getTextSize("Ag", _FONT, scale, thick)  # one line height for every label
    for i in priority:
        tw = cv2.getTextSize(texts[i], _FONT, scale, thick)[0][0]
        lw, lh = min(tw + 2 * margin, width), min(th + base + 2 * margin, height)
        x1, y1, x2, y2 = [int(round(v)) for v in boxes[i]]
        ys = [y1 - lh, y1, y2, y2 - lh] + [y1 + k * lh for k in range(1, 8)] + [y1 - (k + 1) * lh for k in range(1, 8)]
        xs = [x1, x2 - lw, x1 - lw, x2]
        for y in ys:
            y = min(max(y, 0), height - lh)
            hit = None
            for x in xs:
                x = min(max(x, 0), width - lw)
                r = np.array([x, y, x + lw, y + lh])
                if not len(placed) or not np.any((placed[:, 0] < r[2]) & (r[0] < placed[:, 2])
                                                 & (placed[:, 1] < r[3]) & (r[1] < placed[:, 3])):
                    hit = r
                    break
            if hit is not None:
                rects[i] = tuple(int(v) for v in hit)
                placed = np.vstack([placed, hit[None]])
                break
    return rects


def prototype_grid(proto: np.ndarray, cols: int = 8, cell: int = 96, pad: int = 2) -> np.ndarray:
    """Prototypes [H, W, K] -> a BGR grid image, each prototype min-max scaled, viridis-coloured."""
    h, w, k = proto.shape
    rows = (k + cols - 1) // cols
    grid = np.full((rows * (cell + pad) + pad, cols * (cell + pad) + pad, 3), 255, np.uint8)
    for i in range(k):
        p = proto[:, :, i].astype(np.float32)
        lo, hi = float(p.min()), float(p.max())
        p = (p - lo) / (hi - lo) if hi > lo else np.zeros_like(p)
        img = cv2.applyColorMap((p * 255).astype(np.uint8), cv2.COLORMAP_VIRIDIS)
        img = cv2.resize(img, (cell, cell), interpolation=cv2.INTER_NEAREST)
        r, c = divmod(i, cols)
        y, x = pad + r * (cell + pad), pad + c * (cell + pad)
        grid[y:y + cell, x:x + cell] = img
    return grid
