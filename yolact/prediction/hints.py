"""Hints a run prints once when its inputs suggest another way to predict them (they change no
result): :class:`SliceHintSink`, ``--slice`` for small objects in large images."""
from __future__ import annotations

from typing import Callable, Optional

from ..results import Results
from .sinks import Frame, Sink

# An image over this many times the model's input area, whose detections are mostly under
# SMALL_SIDE x SMALL_SIDE input pixels (COCO's "small"), or absent, gets the hint.
AREA_RATIO = 4.0
SMALL_SIDE = 32
# ... and one more than this many times wider than tall (or taller than wide), whatever its
# detections: squashed to a square, a panorama's detections are the wide false ones.
PANORAMA = 2.0


class SliceHintSink(Sink):
    """Prints one ``note:`` line per run suggesting ``--slice`` when an image is much larger
    than the model's ``input_size`` x ``input_size`` input (its area over :data:`AREA_RATIO`
    times) and its objects are likely small: no detections, or at least half of them under
    :data:`SMALL_SIDE` x :data:`SMALL_SIDE` pixels once the image is resized to the input, or the
    image is a panorama (more than :data:`PANORAMA` to 1). A run
    already sliced should not add this sink. ``write``: where the line goes (default
    ``tqdm.write``: above a progress bar)."""

    def __init__(self, input_size: int, write: Optional[Callable[[str], None]] = None):
        self.input_size = int(input_size)
        self.write = write
        self.said = False

    def add(self, res: Results, frame: Frame) -> None:
        """Check one image's or frame's size and detections; print the note the first time."""
        if self.said:
            return
        h, w = res.image_shape
        side = self.input_size
        if h * w <= AREA_RATIO * side * side:
            return
        panorama = max(h, w) > PANORAMA * min(h, w)
        if len(res) and not panorama:  # the boxes as the network saw them: the image squashed to side x side
            boxes = res.boxes
            small = ((boxes[:, 2] - boxes[:, 0]) * side / w) * ((boxes[:, 3] - boxes[:, 1]) * side / h) \
                < SMALL_SIDE * SMALL_SIDE
            if small.mean() < 0.5:
                return
        tile = slice_tile(h, w, min(h, w, 640) if panorama else min(640, max(h, w) // 2))
        if tile is None:  # no tile --slice takes would help this image: no hint
            return
        self.said = True
        where = frame.video or frame.source
        if panorama:
            line = (f"note: {where} is {w}x{h}, squashed {max(h, w) / min(h, w):.0f}:1 into the model's {side}x{side} "
                    f"input: its detections may be wide false ones; --slice {tile} predicts square tiles")
        else:
            line = (f"note: {where} is {w}x{h}, {h * w / (side * side):.0f}x the model's {side}x{side} input: small "
                    f"objects shrink to a few pixels there; --slice {tile} predicts overlapping tiles and may find more")
        if self.write is None:
            from tqdm import tqdm

            tqdm.write(line)
        else:
            self.write(line)


def slice_tile(h: int, w: int, tile: int) -> Optional[int]:
    """The tile side the hint suggests for an ``h`` x ``w`` image: ``tile`` raised to what
    ``--slice`` accepts (at least 32 px; at most :data:`~yolact.prediction.slicing.MAX_TILES`
    tiles at the default overlap 0.2, doubling the side); None when only a tile as large as
    the image would do (slicing would not help)."""
    from ..errors import YolactError
    from .slicing import tile_windows

    tile = max(32, int(tile))
    while tile < max(h, w):
        try:
            tile_windows(h, w, tile, 0.2)
            return tile
        except YolactError:
            tile *= 2
    return None
