"""Calibration images for post-training int8 quantisation (ONNX Runtime and OpenVINO/NNCF)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import numpy as np

from ..errors import YolactError
from ..model.transform import YolactTransform


def calibration_images(source: Optional[str], images_dir: Optional[str], count: int, size: int,
                       progress: bool = True) -> List[np.ndarray]:
    """``count`` graph inputs [1, 3, S, S] float32 (BGR 0..255, resized as predict does) from
    a folder of images, a COCO file (with ``images_dir``), or, without a source, the synthetic
    shapes generator. Raises YolactError naming the source when it holds no usable image."""
    from tqdm import tqdm

    from ..data.images import IMAGE_EXTENSIONS

    if count < 1:
        raise YolactError(f"calibration image count {count}: expected >= 1")
    if source is None:
        from ..data.synth import make_image
        rng = np.random.default_rng(0)
        imgs = (make_image(rng, size, size)[0] for _ in range(count))
        total = count
    else:
        p = Path(source)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_EXTENSIONS)[:count]
        elif p.suffix.lower() == ".json":
            from ..data.coco import read_coco_json
            if not images_dir:
                raise YolactError(f"{p}: a COCO calibration file needs its image folder (yolact export: "
                                  "--calib-images; predict, eval and yolact.load: give the image folder itself)")
            files = [Path(images_dir) / im["file_name"] for im in read_coco_json(p)["images"]][:count]
        elif not p.exists():
            raise YolactError(f"{p}: no such calibration folder or file")
        else:
            raise YolactError(f"{p}: --calib takes a folder of images or a COCO .json")
        if not files:
            raise YolactError(f"{p}: no calibration images found")
        imgs = _readable(files, p)
        total = len(files)
    transform = YolactTransform(size)
    out = [transform.resize([img]).numpy()
           for img in tqdm(imgs, total=total, desc="calibration", unit="img", disable=not progress)]
    if not out:
        raise YolactError(f"{source}: no readable calibration image")
    return out


def _readable(files, source):
    """The images of ``files`` that can be read; an unreadable one is skipped with a note, as
    predict does (calibration needs many images, not each one)."""
    from ..data.images import read_image
    from ..errors import warn

    for f in files:
        try:
            yield read_image(f)
        except YolactError as e:
            warn(f"{e} (skipped for calibration)")
