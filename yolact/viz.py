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
    under two classes) the better one's mask, box and label end on top. Labels are kept inside
    the picture."""
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
    font, scale, thick = cv2.FONT_HERSHEY_DUPLEX, 0.5, 1
    if trails:
        for tid, pts in trails.items():
            if len(pts) > 1:
                cv2.polylines(out, [np.round(np.array(pts)).astype(np.int32)], False, track_color(tid), 2, cv2.LINE_AA)
    for i in order:
        color = color_of(i)
        x1, y1, x2, y2 = [int(round(v)) for v in boxes[i]]
        if draw_boxes:
            cv2.rectangle(out, (x1, y1), (x2, y2), color, 1)
        if draw_text:
            name = class_names[int(labels[i])] if int(labels[i]) < len(class_names) else str(int(labels[i]))
            text = name if scores is None else f"{name} {scores[i]:.2f}"
            if track_ids is not None:
                text = f"{int(track_ids[i])} {text}"
            (tw, th), _ = cv2.getTextSize(text, font, scale, thick)
            # Above the box's top-left corner, moved inside the picture where it would leave it.
            tx = min(max(x1, 0), max(width - tw, 0))
            ty = min(max(y1, th + 4), height)
            cv2.rectangle(out, (tx, ty - th - 4), (tx + tw, ty), color, -1)
            cv2.putText(out, text, (tx, ty - 3), font, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return out


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
