"""Every official preset end to end at its real input size (slow: run with `make test-all`)."""
import numpy as np
import pytest
import torch

import yolact
from yolact.config import PRESETS

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", ["yolact_base", "yolact_im400", "yolact_im700", "yolact_resnet50",
                                  "yolact_darknet53", "yolact_plus_base", "yolact_plus_resnet50",
                                  "yolact_resnet50_pascal"])
def test_preset_full_size(name):
    torch.manual_seed(0)
    model = yolact.build(name).eval()
    with torch.no_grad():
        bias = model.prediction_layers[0].conf_layer.bias.view(model.cfg.anchors_per_location, -1)
        bias[:, 0] = -4.0
        bias[:, 1:4] = 3.0
    img = (np.random.default_rng(0).random((480, 640, 3)) * 255).astype(np.uint8)
    res = model.predict(img, score_threshold=0.0)
    assert 0 < len(res) <= 100 and res.masks.shape == (len(res), 480, 640)
    if PRESETS[name].use_maskiou:
        assert not np.allclose(res.scores, res.box_scores)
