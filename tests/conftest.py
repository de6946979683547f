import cv2
import numpy as np
import pytest
import torch

import yolact
from yolact.config import get_config


def make_tiny_model(name="yolact_resnet18", size=128, classes=("a", "b", "c"), seed=0, detections=True):
    """A small randomly initialised model that produces detections (conf biased to foreground)."""
    torch.manual_seed(seed)
    cfg = get_config(name, class_names=classes).replace(max_size=size)
    model = yolact.build(cfg).eval()
    if detections:
        head = model.prediction_layers[0]
        with torch.no_grad():
            bias = head.conf_layer.bias.view(cfg.anchors_per_location, cfg.num_classes + 1)
            bias[:, 0] = -2.0
            bias[:, 1:] = torch.randn_like(bias[:, 1:])
            head.conf_layer.weight.mul_(5.0)
    return model


@pytest.fixture
def tiny_model():
    return make_tiny_model()


@pytest.fixture
def bgr_image():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
    img[20:60, 30:90] = (40, 200, 90)
    return img


def write_calibration_images(root, count):
    """``count`` synthetic 320x240 PNGs of simple shapes in ``root`` (a --calib folder); returns root."""
    from yolact.data.synth import make_image

    rng = np.random.default_rng(5)
    for i in range(count):
        cv2.imwrite(str(root / f"{i}.png"), make_image(rng, 240, 320, style="simple", max_objects=4)[0])
    return root


def hole_pixels(mask):
    """The holes of a 0/1 mask: background pixels not 4-connected to the image border."""
    _, comp = cv2.connectedComponents(np.pad(1 - mask, 1, constant_values=1), connectivity=4)
    return ((comp != comp[0, 0]) & (comp > 0))[1:-1, 1:-1].astype(np.uint8)
