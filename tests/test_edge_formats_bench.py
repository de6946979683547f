"""benchmarks/edge_formats.py's parity check: detections matched by class and box IoU, not by
rank, so that near-tied scores (random weights) are compared fairly and an empty check shows."""
import math
from dataclasses import dataclass

import numpy as np
import pytest

from conftest import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("edge_formats")


@dataclass
class Dets:
    """The fields of a Results that the parity check reads."""
    boxes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    masks: np.ndarray

    def __len__(self):
        return len(self.labels)


def dets(rows, shape=(40, 60)):
    """rows: (label, score, (x1, y1, x2, y2)); masks fill the boxes."""
    masks = np.zeros((len(rows), *shape), bool)
    for k, (_, _, (x1, y1, x2, y2)) in enumerate(rows):
        masks[k, y1:y2, x1:x2] = True
    return Dets(np.array([r[2] for r in rows], np.float32).reshape(-1, 4), np.array([r[0] for r in rows], np.int64),
                np.array([r[1] for r in rows], np.float32), masks)


class Fixed:
    """A model whose predictions are given, one per image index; records the threshold asked."""

    def __init__(self, per_image):
        self.per_image, self.asked = per_image, []

    def predict(self, img, score_threshold):
        self.asked.append(score_threshold)
        return self.per_image[int(img)]


def test_near_tied_scores_in_another_order_still_match(bench):
    a = dets([(1, 0.3101, (0, 0, 10, 10)), (1, 0.3100, (30, 20, 50, 35))])
    b = dets([(1, 0.3101, (30, 20, 50, 35)), (1, 0.3100, (0, 0, 10, 10))])  # the two swapped ranks
    out = bench.parity([a], Fixed([b]), [0], conf=0.12)
    assert out["same_detections"] == "1/1" and out["matched"] == "2/2"
    assert out["max_box_px"] == 0 and out["mask_iou"] == 1.0 and out["unmatched_other"] == 0
    assert out["max_score"] == pytest.approx(1e-4, abs=1e-6)  # matched by box, not by rank


def test_a_detection_missing_on_one_side_counts_once(bench):
    a = dets([(1, 0.5, (0, 0, 10, 10)), (2, 0.31, (30, 20, 50, 35))])
    b = dets([(1, 0.5, (0, 0, 12, 10))])  # the second fell under the threshold, the first moved 2 px
    model = Fixed([b])
    out = bench.parity([a], model, [0], conf=0.3)
    assert model.asked == [0.3]
    assert out["same_detections"] == "0/1" and out["matched"] == "1/2" and out["matched_fraction"] == 0.5
    assert out["max_box_px"] == 2.0 and out["mask_iou"] == pytest.approx(100 / 120)


def test_same_box_other_label_or_low_iou_does_not_match(bench):
    a = dets([(1, 0.5, (0, 0, 10, 10)), (3, 0.4, (30, 20, 50, 35))])
    b = dets([(2, 0.5, (0, 0, 10, 10)), (3, 0.4, (40, 20, 60, 35))])  # IoU 1/3
    out = bench.parity([a], Fixed([b]), [0])
    assert out["matched"] == "0/2" and out["unmatched_other"] == 2 and out["same_detections"] == "0/1"
    assert math.isnan(out["mask_iou"])


def test_an_empty_check_says_so(bench):
    empty = dets([])
    out = bench.parity([empty, empty], Fixed([empty, empty]), [0, 1])
    assert out["same_detections"] == "2/2" and out["ref_dets_per_image"] == 0
    assert out["matched"] == "0/0" and math.isnan(out["matched_fraction"])


def test_box_iou(bench):
    iou = bench.box_iou(np.array([[0, 0, 10, 10]], float), np.array([[5, 0, 15, 10], [20, 20, 30, 30]], float))
    assert iou.tolist() == [[pytest.approx(1 / 3), 0.0]]
