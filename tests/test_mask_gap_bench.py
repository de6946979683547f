"""benchmarks/mask_gap.py, the analysis behind soft mask targets: per-threshold AP, the
perfect-mask oracle and the prototype-grid round trip, checked on masks whose answers are known."""
import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools import mask as mu

from conftest import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("mask_gap")


def _rle(m):
    r = mu.encode(np.asfortranarray(m.astype(np.uint8)))
    r["counts"] = r["counts"].decode()
    return r


@pytest.fixture(scope="module")
def gt(tmp_path_factory):
    """Two 192 px images: a square on the 4-pixel grid, and one whose edges are off it."""
    from pycocotools.coco import COCO

    masks = []
    a = np.zeros((192, 192), np.uint8)
    a[40:88, 60:124] = 1
    b = np.zeros((192, 192), np.uint8)
    b[41:71, 33:62] = 1
    masks = [a, b]
    anns = [{"id": i + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0, "area": int(m.sum()),
             "bbox": [float(x) for x in mu.toBbox(_rle(m))], "segmentation": _rle(m)} for i, m in enumerate(masks)]
    data = {"images": [{"id": i + 1, "width": 192, "height": 192, "file_name": f"{i}.png"} for i in range(2)],
            "annotations": anns, "categories": [{"id": 1, "name": "box"}]}
    path = tmp_path_factory.mktemp("gap") / "val.json"
    path.write_text(json.dumps(data))
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path)), masks


def test_per_threshold_ap_and_the_perfect_mask_oracle(bench, gt):
    coco, masks = gt
    exact = [{"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 0.9,
              "segmentation": a["segmentation"]} for a in coco.loadAnns(coco.getAnnIds())]
    assert bench.per_threshold_ap(coco, exact, "segm") == pytest.approx([1.0] * 10)
    # masks eroded to IoU 0.56 and 0.63 with right boxes: AP 1 at 0.50, 0 at 0.95; the oracle restores 1
    eroded = []
    for r, m in zip(exact, masks):
        ys, xs = np.nonzero(m)
        e = np.zeros_like(m)
        h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
        e[ys.min() + h // 8: ys.max() + 1 - h // 8, xs.min() + w // 8: xs.max() + 1 - w // 8] = 1
        eroded.append(dict(r, segmentation=_rle(e)))
    aps = bench.per_threshold_ap(coco, eroded, "segm")
    assert aps[0] == pytest.approx(1.0) and aps[-1] == 0.0
    assert bench.per_threshold_ap(coco, bench.with_gt_masks(coco, eroded, False), "segm") == pytest.approx([1.0] * 10)
    # a box cut in half: the GT mask cut to it loses half its area (IoU 0.5: AP 1 at 0.5 only)
    half = [dict(eroded[0], bbox=[eroded[0]["bbox"][0], eroded[0]["bbox"][1], eroded[0]["bbox"][2] / 2,
                                   eroded[0]["bbox"][3]])]
    cut = bench.per_threshold_ap(coco, bench.with_gt_masks(coco, half, True), "segm")
    assert cut[0] == pytest.approx(0.5, abs=0.01) and cut[1] == 0.0  # one of two objects found at 0.5


def test_grid_round_trip_soft_holds_edges_a_binary_grid_cannot(bench, gt):
    coco, _ = gt
    binary = bench.grid_round_trip_ious(coco, 192, 48, "binary")
    soft = bench.grid_round_trip_ious(coco, 192, 48, "soft")
    # edges on the 4-px grid: exact but for the 4 corner pixels, which bilinear upsampling rounds off
    assert binary[0] == soft[0] == pytest.approx(1 - 4 / (48 * 64))
    # edges off it: the binary grid moves each to a cell boundary, the soft one keeps it
    assert soft[1] > binary[1] and soft[1] > 0.97 and binary[1] < 0.95


def test_mask_offsets_find_a_shift_and_a_grown_mask(bench, gt):
    coco, masks = gt
    anns = coco.loadAnns(coco.getAnnIds())
    exact = [{"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 0.9,
              "segmentation": a["segmentation"]} for a in anns]
    o = bench.mask_offsets(coco, exact)
    assert o["n"] == 2 and o["dx"] == o["dy"] == o["area"] == 0
    # every mask one pixel down: dy +1, dx 0, the same area; a low score is left out
    down = [dict(r, segmentation=_rle(np.roll(m, 1, axis=0))) for r, m in zip(exact, masks)]
    o = bench.mask_offsets(coco, down + [dict(down[0], score=0.1)])
    assert o["n"] == 2 and o["dy"] == pytest.approx(1.0) and o["dx"] == 0 and o["area"] == 0
    # the first mask grown by a pixel each side: centred, area + (50 x 66) / (48 x 64) - 1
    grown = np.zeros_like(masks[0])
    grown[39:89, 59:125] = 1
    o = bench.mask_offsets(coco, [dict(exact[0], segmentation=_rle(grown))])
    assert o["n"] == 1 and o["dx"] == pytest.approx(0) and o["dy"] == pytest.approx(0)
    assert o["area"] == pytest.approx(50 * 66 / (48 * 64) - 1)
