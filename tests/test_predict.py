import cv2
import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from yolact.compat import detect, preprocess
from yolact.errors import YolactError
from yolact.ops.boxes import box_iou, decode

from conftest import make_tiny_model


def test_predict_array_shapes(tiny_model, bgr_image):
    res = tiny_model.predict(bgr_image, score_threshold=0.0)
    n = len(res)
    assert 0 < n <= 100
    assert res.boxes.shape == (n, 4) and res.boxes.dtype == np.float32
    assert res.masks.shape == (n, 96, 128) and res.masks.dtype == bool
    assert res.labels.min() >= 0 and res.labels.max() < 3
    assert np.all(np.diff(res.box_scores) <= 0)  # descending class score
    assert np.array_equal(res.scores, res.box_scores)  # YOLACT: mask score = class score
    assert (res.boxes[:, 0] <= res.boxes[:, 2]).all() and (res.boxes[:, 2] <= 128).all()
    assert np.array_equal(res.boxes, np.floor(res.boxes))  # integer pixel boxes as the original


def test_score_threshold_and_top_k(tiny_model, bgr_image):
    full = tiny_model.predict(bgr_image, score_threshold=0.0)
    thr = float(np.median(full.box_scores))
    part = tiny_model.predict(bgr_image, score_threshold=thr)
    assert len(part) == int((full.box_scores > thr).sum())
    assert len(tiny_model.predict(bgr_image, score_threshold=0.0, top_k=3)) == 3


def test_batched_equals_single(tiny_model, bgr_image):
    other = np.ascontiguousarray(bgr_image[::-1])
    batch = tiny_model.predict([bgr_image, other], score_threshold=0.0)
    single = tiny_model.predict(other, score_threshold=0.0)
    assert len(batch) == 2
    assert np.array_equal(batch[1].labels, single.labels)
    np.testing.assert_allclose(batch[1].scores, single.scores, atol=1e-5)


def test_path_grayscale_rgba_16bit(tmp_path, tiny_model, bgr_image):
    p = tmp_path / "img.png"
    cv2.imwrite(str(p), bgr_image)
    ref = tiny_model.predict(bgr_image, score_threshold=0.0)
    from_path = tiny_model.predict(str(p), score_threshold=0.0)
    assert np.array_equal(from_path.labels, ref.labels) and from_path.path == str(p)
    gray = cv2.cvtColor(bgr_image, cv2.COLOR_BGR2GRAY)
    assert tiny_model.predict(gray).image_shape == (96, 128)
    rgba = cv2.cvtColor(bgr_image, cv2.COLOR_BGR2BGRA)
    r = tiny_model.predict(rgba, score_threshold=0.0)
    assert np.array_equal(r.labels, ref.labels)
    img16 = bgr_image.astype(np.uint16) * 257
    r16 = tiny_model.predict(img16, score_threshold=0.0)
    assert np.array_equal(r16.labels, ref.labels)
    p16 = tmp_path / "img16.png"
    cv2.imwrite(str(p16), img16)
    assert np.array_equal(tiny_model.predict(str(p16), score_threshold=0.0).labels, ref.labels)


def test_bad_inputs(tmp_path, tiny_model):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 this is not really a jpeg")
    with pytest.raises(YolactError, match="broken.jpg"):
        tiny_model.predict(str(bad))
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(YolactError, match="empty"):
        tiny_model.predict(str(empty))
    with pytest.raises(YolactError, match="no such file"):
        tiny_model.predict(str(tmp_path / "missing.png"))
    with pytest.raises(YolactError):
        tiny_model.predict(np.zeros((0, 0, 3), np.uint8))


def test_results_helpers(tiny_model, bgr_image):
    res = tiny_model.predict(bgr_image, score_threshold=0.0, top_k=5)
    coco = res.to_coco(image_id=7, category_ids=[10, 20, 30])
    assert len(coco) == len(res)
    for d, m, lab in zip(coco, res.masks, res.labels):
        assert d["image_id"] == 7 and d["category_id"] == [10, 20, 30][lab]
        assert np.array_equal(mask_utils.decode(d["segmentation"]).astype(bool), m)
    boxes = res.to_coco(1, kind="bbox")
    assert boxes[0]["bbox"][2] == pytest.approx(res.boxes[0, 2] - res.boxes[0, 0], abs=0.05)
    polys = res.polygons()
    assert len(polys) == len(res)
    vis = res.plot()
    assert vis.shape == bgr_image.shape and vis.dtype == np.uint8 and not np.array_equal(vis, bgr_image)
    assert "detections" in repr(res)


def test_preprocess_matches_manual(tiny_model, bgr_image):
    cfg = tiny_model.cfg
    x = preprocess([bgr_image], cfg, torch.device("cpu"))
    assert x.shape == (1, 3, cfg.max_size, cfg.max_size)
    # manual: resize float image, normalise per BGR channel, then swap to RGB
    t = torch.nn.functional.interpolate(torch.from_numpy(bgr_image).float().permute(2, 0, 1)[None],
                                        (cfg.max_size, cfg.max_size), mode="bilinear", align_corners=False)
    b = (t[0, 0] - 103.94) / 57.38
    r = (t[0, 2] - 123.68) / 58.40
    assert torch.allclose(x[0, 2], b, atol=1e-5) and torch.allclose(x[0, 0], r, atol=1e-5)


def test_detect_matches_reference_pipeline(tiny_model, bgr_image):
    """Threshold on the best foreground score, per-class top-200 Fast NMS, global top-100."""
    model = tiny_model
    x = preprocess([bgr_image], model.cfg, torch.device("cpu"))
    with torch.no_grad():
        out = model(x)
    boxes, classes, scores, prior_idx = detect(out.loc[0], out.conf[0], out.priors, model.cfg)
    all_boxes = decode(out.loc[0], out.priors)
    fg = out.conf[0][:, 1:]
    cand = (fg.max(1).values > 0.05).nonzero().squeeze(1)
    ref = []
    for c in range(fg.shape[1]):
        order = cand[fg[cand, c].argsort(descending=True)][:200]
        iou = box_iou(all_boxes[order], all_boxes[order]).triu(1)
        keep = iou.max(0).values <= 0.5
        ref += [(fg[i, c].item(), i.item(), c) for i in order[keep]]
    ref.sort(key=lambda t: -t[0])
    ref = ref[:100]
    assert prior_idx.tolist() == [i for _, i, _ in ref]
    assert classes.tolist() == [c for _, _, c in ref]
    assert torch.equal(boxes, all_boxes[prior_idx])


def test_yolact_plus_rescoring():
    # 256 px: the re-scoring net's unpadded stride-2 convs need a 64x64 prototype grid
    model = make_tiny_model("yolact_plus_resnet50", size=256)
    img = (np.random.default_rng(1).random((80, 90, 3)) * 255).astype(np.uint8)
    res = model.predict(img, score_threshold=0.0, top_k=10)
    assert len(res) > 0
    assert np.all(np.diff(res.box_scores) <= 0)  # original order: by class score
    assert np.all(res.scores <= res.box_scores + 1e-6) or np.any(res.scores != res.box_scores)
    assert not np.allclose(res.scores, res.box_scores)


def test_cross_class_and_classic_nms_options(tiny_model, bgr_image):
    for nms in ("cross_class", "classic"):
        res = tiny_model.predict(bgr_image, score_threshold=0.0, nms=nms)
        assert len(res) > 0


def test_predict_runs_in_eval_mode_and_restores_the_modes():
    # predict switches modes only when some module is training; results and the modes left
    # behind are those of always switching (eval for the call, then the top module's mode)
    model = make_tiny_model()
    img = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    ref = model.predict(img)
    model.train()
    res = model.predict(img)
    assert model.training and all(m.training for m in model.modules())
    model.eval()
    model.backbone.train()  # one module left training under an eval model
    mixed = model.predict(img)
    assert not any(m.training for m in model.modules())
    for r in (res, mixed):
        assert np.array_equal(r.boxes, ref.boxes) and np.array_equal(r.scores, ref.scores)
        assert np.array_equal(np.asarray(r.masks), np.asarray(ref.masks))


def test_run_checks_the_controls_before_reading_anything(tiny_model, monkeypatch):
    """#27 leftovers: a bad control stopped the run only at the first image, after the progress
    bar had started (and URLs were downloaded); run() checks them first."""
    from yolact.prediction import runner

    monkeypatch.setattr(runner, "resolve_sources", lambda *a, **k: pytest.fail("sources read before the check"))
    for bad in (dict(score_threshold=1.5), dict(iou=0.0), dict(classes=["nope"]), dict(max_det=0)):
        with pytest.raises(YolactError):
            runner.run(tiny_model, ["a.jpg", "b.jpg"], **bad)
