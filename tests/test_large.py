"""Large images: masks held cropped to each object (MaskCrops) and sliced inference."""
import numpy as np
import pytest
import torch

import yolact
from yolact.model.transform import YolactTransform
from yolact.ops.masks import crop, upsample_masks
from yolact.results import MaskCrops, Results, mask_outlines, single_polygon

from conftest import make_tiny_model


def _random_soft_masks(n, h, w, seed):
    g = torch.Generator().manual_seed(seed)
    b = torch.rand(n, 4, generator=g) * 1.2 - 0.1  # some boxes reach past the image
    boxes = torch.cat([torch.min(b[:, :2], b[:, 2:]), torch.max(b[:, :2], b[:, 2:])], 1)
    soft = crop(torch.rand(h, w, n, generator=g), boxes).permute(2, 0, 1).contiguous()
    return soft, boxes


@pytest.mark.parametrize("shape", [(97, 131), (480, 640), (1080, 1920), (23, 17)])
def test_crops_equal_full_upsampling(shape):
    h, w = shape
    soft, boxes = _random_soft_masks(20, 40, 50, seed=h)
    full = upsample_masks(soft, h, w).numpy()
    crops = YolactTransform.masks_to_image(soft, boxes, h, w, crops=True)
    assert isinstance(crops, MaskCrops) and crops.shape == full.shape
    assert np.array_equal(crops.full(), full)
    # each crop is the tight bounding box of its mask, inside the image
    for i, (x0, y0, x1, y1) in enumerate(crops.windows()):
        ys, xs = np.nonzero(full[i])
        if len(ys):
            assert (x0, y0, x1, y1) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    # the mask can reach beyond the integer pixel box (the crop's 1 px padding on the grid)
    assert crops.nbytes < full.nbytes


def test_crops_at_the_threshold_are_exact():
    g = torch.Generator().manual_seed(11)
    n = 8
    b = torch.rand(n, 4, generator=g)
    boxes = torch.cat([torch.min(b[:, :2], b[:, 2:]), torch.max(b[:, :2], b[:, 2:])], 1)
    noise = (torch.randint(-3, 4, (45, 60, n), generator=g) * 2.0 ** -24).float()
    soft = crop(0.5 + noise, boxes).permute(2, 0, 1).contiguous()
    for h, w in [(480, 640), (331, 257)]:
        crops = YolactTransform.masks_to_image(soft, boxes, h, w, crops=True)
        assert np.array_equal(crops.full(), upsample_masks(soft, h, w).numpy())


def _old_full_masks(model, img):
    """The reference: the detections' soft masks upsampled over the whole image at once."""
    x = model.transform().resize([img], model.device)
    det = model._detect(x, [model.options(score_threshold=0.05)])[0]
    return upsample_masks(det.masks, *img.shape[:2]).numpy()


@pytest.mark.parametrize("which", ["tiny", "demo"])
def test_predict_masks_bit_identical(which):
    from yolact.data.synth import make_image

    model = make_tiny_model() if which == "tiny" else yolact.load(yolact.demo_weights_path())
    rng = np.random.default_rng(3)
    for h, w in [(96, 128), (1080, 1920)]:  # the small one upsampled whole, the large one inside boxes
        if which == "tiny":
            img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        else:  # shapes the demo model finds
            img, _ = make_image(rng, h, w, max_objects=5, style="simple")
        res = model.predict(img, score_threshold=0.05)
        ref = _old_full_masks(model, img)
        assert len(res) == len(ref) and len(res) > 0
        if h == 1080:
            assert len(res) * h * w > 4_000_000  # the in-box path (transform._IN_BOX_UPSAMPLE_PIXELS)
        assert isinstance(res.mask_crops, MaskCrops)
        assert np.array_equal(res.masks, ref)


def _results_with(masks, image_shape):
    n = len(masks)
    return Results(boxes=np.zeros((n, 4), np.float32), scores=np.linspace(0.9, 0.5, n).astype(np.float32),
                   labels=np.zeros(n, np.int64), masks=masks, class_names=("a",),
                   box_scores=np.linspace(0.9, 0.5, n).astype(np.float32), image_shape=image_shape)


def _some_masks(h=60, w=80):
    m = np.zeros((5, h, w), bool)
    m[0, 10:30, 5:40] = True
    m[0, 15:20, 10:20] = False       # a hole
    m[1, 0:10, 70:80] = True         # at the image corner
    m[1, 50:60, 0:3] = True          # a second part at another border
    m[2, 59, 79] = True              # one pixel
    # m[3]: empty
    m[4, 20:50, 30:70] = np.random.default_rng(0).random((30, 40)) > 0.4
    return m


def test_outputs_from_crops_equal_outputs_from_full_masks():
    from pycocotools import mask as mask_utils

    full = _some_masks()
    res = _results_with(MaskCrops.from_full(full), full.shape[1:])
    for i, m in enumerate(full):
        ref = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        assert res.rle()[i] == {"size": list(full.shape[1:]), "counts": ref["counts"].decode("ascii")}
        outer, holes = mask_outlines(m)
        o2, h2 = res.mask_crops.outlines(i)
        assert all(np.array_equal(a, b) for a, b in zip(outer, o2)) and len(outer) == len(o2)
        assert all(np.array_equal(a, b) for a, b in zip(holes, h2)) and len(holes) == len(h2)
        p = single_polygon(m)
        assert (p is None) == (i == 3)
    import cv2
    for i, polys in enumerate(res.polygons()):
        ref, _ = cv2.findContours(full[i].astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        ref = [c.reshape(-1, 2).astype(np.float32) for c in ref if len(c) >= 3]
        assert len(ref) == len(polys) and all(np.array_equal(a, b) for a, b in zip(ref, polys))
    # the same outputs as Results holding the full array
    old = _results_with(full, full.shape[1:])
    assert old.to_json() == res.to_json() and old.yolo_lines() == res.yolo_lines()
    assert old.to_labelme() == res.to_labelme()
    img = np.random.default_rng(1).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    from yolact.viz import draw_detections
    ref_plot = draw_detections(img, res.boxes, full, res.labels, res.scores, res.class_names)
    assert np.array_equal(res.plot(img), ref_plot)
    assert np.array_equal(res.mask_crops.strided(4), full[:, ::4, ::4].astype(np.uint8))
    assert np.array_equal(res.mask_crops.strided(3), full[:, ::3, ::3].astype(np.uint8))
    sub = res.subset([4, 0])
    assert isinstance(sub.mask_crops, MaskCrops) and np.array_equal(sub.masks, full[[4, 0]])
    assert np.array_equal(res.subset(np.array([True, False, True, False, False])).masks, full[[0, 2]])


def test_results_accepts_full_arrays_and_crops():
    full = _some_masks()
    a = _results_with(full, full.shape[1:])
    assert a.masks is not None and np.array_equal(a.masks, full)
    assert np.array_equal(a.mask_crops.full(), full)
    empty = _results_with(np.zeros((0, 60, 80), bool), (60, 80))
    assert empty.masks.shape == (0, 60, 80) and empty.rle() == []
    moved = MaskCrops.from_full(full).shifted(10, 5, (80, 100))
    big = np.zeros((5, 80, 100), bool)
    big[:, 5:65, 10:90] = full
    assert np.array_equal(moved.full(), big)
    cut = MaskCrops.from_full(big).shifted(-10, -5, (60, 80))  # back, cut to the smaller image
    assert np.array_equal(cut.full(), full)


# ---------------------------------------------------------------------------- sliced inference
from yolact.prediction.slicing import merge_results, shift_results, tile_windows  # noqa: E402
from yolact.errors import YolactError  # noqa: E402


def test_tile_windows_cover_the_image_with_overlap():
    tiles = tile_windows(480, 640, 256, 0.2)
    xs = sorted({t[0] for t in tiles})
    ys = sorted({t[1] for t in tiles})
    assert xs == [0, 205, 384] and ys == [0, 205, 224]
    assert all(x1 - x0 == 256 and y1 - y0 == 256 for x0, y0, x1, y1 in tiles)
    covered = np.zeros((480, 640), int)
    for x0, y0, x1, y1 in tiles:
        covered[y0:y1, x0:x1] += 1
    assert covered.min() >= 1
    assert tile_windows(100, 90, 256, 0.2) == [(0, 0, 90, 100)]  # smaller than a tile: the image
    for tile, overlap in ((16, 0.2), (256, 1.0), (256, -0.1)):
        with pytest.raises(YolactError):
            tile_windows(480, 640, tile, overlap)


def _tile_result(mask_full, label, score, box, tile, image_shape):
    """A tile's Results with one detection: ``mask_full`` is in full-image pixels, cut to the tile."""
    x0, y0, x1, y1 = tile
    m = mask_full[y0:y1, x0:x1][None]
    r = Results(boxes=np.array([box], np.float32), scores=np.array([score], np.float32), labels=np.array([label]),
                masks=m, class_names=("a", "b"), box_scores=np.array([score], np.float32),
                image_shape=(y1 - y0, x1 - x0))
    return shift_results(r, x0, y0, image_shape)


def test_merge_joins_an_object_cut_by_a_tile_border():
    h, w = 300, 500
    truth = np.zeros((h, w), bool)
    truth[100:160, 180:280] = True                    # cut by both tiles' borders
    other = np.zeros((h, w), bool)
    other[20:50, 400:450] = True                      # elsewhere, same class
    left, right = (0, 0, 256, 300), (205, 0, 461, 300)
    a = _tile_result(truth, 0, 0.8, [180 - 0, 100, 255, 159], left, (h, w))
    # tile-local box of the right part, shifted by the tile: [0, 100, 74, 159] + 205
    b = _tile_result(truth, 0, 0.9, [0, 100, 74, 159], right, (h, w))
    c = _tile_result(other, 0, 0.7, [195, 20, 245, 49], right, (h, w))
    d = _tile_result(truth, 1, 0.6, [0, 100, 74, 159], right, (h, w))  # same pixels, other class
    assert np.array_equal(b.boxes[0], [205, 100, 279, 159])  # full-image coordinates
    merged = merge_results([a, b, c, d], (h, w))
    assert len(merged) == 3
    assert list(merged.labels) == [0, 0, 1] and np.allclose(merged.scores, [0.9, 0.7, 0.6])
    assert np.array_equal(merged.masks[0], truth)      # the union of the two parts, exactly
    assert np.array_equal(merged.boxes[0], [180, 100, 279, 159])  # the union box
    assert np.array_equal(merged.masks[1], other)
    assert np.array_equal(merged.masks[2], d.masks[0])
    # the parts alone do not overlap enough: without the shared strip they stay apart
    a_only = _tile_result(truth & (np.arange(w) < 205), 0, 0.8, [180, 100, 204, 159], left, (h, w))
    assert len(merge_results([a_only, b], (h, w))) == 2


def test_sliced_predict_finds_a_shape_cut_by_tile_borders():
    from yolact.data.synth import _background, _shape_mask, paint_shape

    model = yolact.load(yolact.demo_weights_path())
    rng = np.random.default_rng(5)
    h, w = 480, 640
    img = _background(rng, h, w, kinds=2)
    truth = _shape_mask(rng, 1, h, w, 100, 230, 240, angle=0.3)  # a square over x 180..280
    img = paint_shape(rng, img, truth, np.array([30, 220, 240])).astype(np.uint8)
    # tiles start at x 0 and 205: neither sees the whole square
    assert {t[0] for t in tile_windows(h, w, 256, 0.2)} == {0, 205, 384}
    res = model.predict(img, slice=(256, 0.2), slice_full=False)
    assert res.image_shape == (h, w) and res.masks.shape == (len(res), h, w)
    inter = (res.masks & truth.astype(bool)).reshape(len(res), -1).sum(1)
    hits = np.flatnonzero(inter > 0)
    assert len(hits) == 1, res                           # one instance, not one per tile
    m = res.masks[hits[0]]
    iou = (m & truth.astype(bool)).sum() / (m | truth.astype(bool)).sum()
    assert iou >= 0.9, iou
    assert model.class_names[res.labels[hits[0]]] == "square"
    # in full-image pixels: the union of the tiles' boxes lies around the square (within the
    # model's box error, a few pixels), not at a tile's own coordinates
    x0, y0, x1, y1 = res.boxes[hits[0]]
    ys, xs = np.nonzero(truth)
    assert max(abs(x0 - xs.min()), abs(x1 - xs.max()), abs(y0 - ys.min()), abs(y1 - ys.max())) <= 10


def test_slice_options_are_checked(tiny_model):
    with pytest.raises(YolactError):
        tiny_model.options(slice=(16, 0.2))
    with pytest.raises(YolactError):
        tiny_model.options(slice=256, keep_proto=True)
    for bad in ("abc", (256,), (256.5, 0.2), (256, "x")):
        with pytest.raises(YolactError):
            tiny_model.options(slice=bad)
    assert tiny_model.options(slice=256).slice == (256, 0.2)
    assert tiny_model.options(slice=(320, 0.1)).slice == (320, 0.1)


def test_slice_flags_reach_predict():
    from yolact.cli import build_parser
    from yolact.cli.common import predict_options

    for verb in (["predict", "x.jpg"], ["eval", "--ann", "a.json", "--images", "d"], ["track", "v.mp4"], ["serve"]):
        args = build_parser().parse_args(verb + ["--weights", "w.pth", "--slice", "640", "--slice-overlap", "0.25",
                                                 "--no-slice-full"])
        assert predict_options(args)["slice"] == (640, 0.25) and predict_options(args)["slice_full"] is False, verb
        plain = build_parser().parse_args(verb + ["--weights", "w.pth"])
        assert "slice" not in predict_options(plain)


def test_data_synth_large(tmp_path):
    import json

    from pycocotools import mask as mask_utils

    from yolact.cli import main

    assert main(["data", "synth", "--large", "--out", str(tmp_path), "--train", "0", "--val", "1", "--size", "512",
                 "--max-objects", "12", "--object-size", "20,40"]) == 0
    data = json.loads((tmp_path / "val.json").read_text())
    assert data["images"][0]["width"] == 512 and data["images"][0]["height"] == 384
    anns = data["annotations"]
    assert 6 <= len(anns) <= 12
    masks = mask_utils.decode([a["segmentation"] for a in anns])
    assert masks.shape[:2] == (384, 512)
    for k, a in enumerate(anns):
        m = masks[:, :, k]
        ys, xs = np.nonzero(m)
        assert a["area"] == m.sum() > 30 and max(xs.max() - xs.min(), ys.max() - ys.min()) + 1 <= 44
    assert (masks.sum(2) <= 1).all()  # shapes do not overlap


_MEMORY_CHILD = """
import resource, sys
import numpy as np
sys.path.insert(0, {tests!r})
from conftest import make_tiny_model
model = make_tiny_model()
h, w = {h}, {w}
img = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
model.predict(img[:48, :64], score_threshold=0.0)  # warm up at a small size
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
res = model.predict(img, score_threshold=0.0, top_k=100, keep_image=False)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(len(res), (after - before) * 1024, res.mask_crops.nbytes)
"""


@pytest.mark.slow
def test_memory_stays_flat_as_the_image_grows():
    # 100 detections at 4K held as full masks would be 829 MB; the crops and the pipeline's
    # own buffers (the image as uint8 and float, 25 + 100 MB) stay far below that.
    import subprocess
    import sys
    from pathlib import Path

    out = {}
    for h, w in ((480, 640), (2160, 3840)):
        code = _MEMORY_CHILD.format(tests=str(Path(__file__).parent), h=h, w=w)
        line = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        out[(h, w)] = [int(v) for v in line.split()]
    n4k, grow4k, bytes4k = out[(2160, 3840)]
    assert n4k == 100
    assert grow4k < 250e6, grow4k
    assert bytes4k < 0.1 * n4k * 2160 * 3840


@pytest.mark.slow
def test_sliced_eval_beats_the_whole_image_on_small_objects(tmp_path, capsys):
    # The demo model (192 px input) on a 512x384 image of 20-40 px shapes: the whole image
    # shrinks them to 8-15 px; 128 px tiles bring them to 30-60 px, the scale it was trained on.
    # Eval and predict run the slicing end to end from the command line.
    import json

    from yolact.cli import main
    from yolact.data.synth import generate_large
    from yolact.evaluation.coco import evaluate

    paths = generate_large(tmp_path / "large", 0, 1, width=512, height=384, n_objects=12, object_size=(20, 40))
    model = yolact.load(yolact.demo_weights_path())
    whole = evaluate(model, paths["val"], tmp_path / "large" / "val", progress=False)["segm"]["AP"]
    sliced = evaluate(model, paths["val"], tmp_path / "large" / "val", progress=False, slice=(128, 0.25))["segm"]["AP"]
    assert sliced > whole + 0.3, (whole, sliced)
    w = str(yolact.demo_weights_path())
    assert main(["eval", "--weights", w, "--ann", str(paths["val"]), "--images", str(tmp_path / "large" / "val"),
                 "--slice", "128", "--slice-overlap", "0.25", "-q"]) == 0
    img = str(next((tmp_path / "large" / "val").glob("*.png")))
    assert main(["predict", "--weights", w, img, "--slice", "128", "--save-json", "--out", str(tmp_path / "p"),
                 "-q"]) == 0
    records = json.loads((tmp_path / "p" / "results.json").read_text())
    assert len(records) >= 6


def test_serve_with_slicing_answers_the_sliced_predict():
    pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx (test extra)")
    from fastapi.testclient import TestClient
    from pycocotools import mask as mask_utils

    from yolact.data.synth import make_large_image
    from yolact.serve.app import ServeSettings, create_app

    model = yolact.load(yolact.demo_weights_path())
    img, _ = make_large_image(np.random.default_rng(2), 300, 400, n_objects=6, object_size=(30, 50))
    want = model.predict(img, score_threshold=0.2, top_k=10, slice=(128, 0.25))
    assert len(want) > 0
    ok, png = __import__("cv2").imencode(".png", img)
    app = create_app(model, ServeSettings(), {"precision": "fp32", "backend": "torch"},
                     predict_options={"slice": (128, 0.25), "slice_full": True})
    with TestClient(app) as c:
        r = c.post("/v1/segment?score_threshold=0.2&top_k=10", content=png.tobytes())
        # requests are not batched together: the tiles' merge depends on each one's threshold
        assert c.get("/v1/model").json()["batching"]["max_batch"] == 1
    assert r.status_code == 200, r.text
    dets = r.json()["detections"]
    assert len(dets) == len(want)
    for d, box, m in zip(dets, want.boxes, want.masks):
        assert d["box"] == pytest.approx([float(v) for v in box], abs=1e-5)
        rle = dict(d["segmentation"], counts=d["segmentation"]["counts"].encode())
        np.testing.assert_array_equal(mask_utils.decode(rle), m.astype(np.uint8))


_CROWDED_CHILD = """
import resource, sys
import numpy as np, torch
sys.path.insert(0, {tests!r})
from conftest import make_tiny_model
model = make_tiny_model()
with torch.no_grad():  # large overlapping boxes: each about 4x its anchor's size
    a = model.cfg.anchors_per_location
    model.prediction_layers[0].bbox_layer.bias.view(a, 4)[:, 2:] += 7.0
img = np.random.default_rng(0).integers(0, 255, ({h}, {w}, 3), dtype=np.uint8)
model.predict(img[:48, :64], score_threshold=0.0)  # warm up at a small size
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
res = model.predict(img, score_threshold=0.0, top_k=100, keep_image=False)
res.to_coco(image_id=1)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
b = res.boxes.astype(float)
print(len(res), (after - before) * 1024, res.mask_crops.nbytes, ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).sum() / {h} / {w})
"""


def test_crowded_masks_at_4k_cost_their_output_not_their_temporaries():
    # Issue #32: ~66 large overlapping boxes adding up to ~20 image areas at 3840x2160. The
    # growth of the peak beyond the masks' own bytes was 517 MB before the in-box upsampling
    # and the pre-processing were chunked, 168 MB after (image 25 MB uint8 + one float channel
    # 33 MB + bounded chunks + one full mask at a time for RLE); 300 MB separates the two.
    import subprocess
    import sys
    from pathlib import Path

    code = _CROWDED_CHILD.format(tests=str(Path(__file__).parent), h=2160, w=3840)
    line = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    n, growth, mask_bytes, box_areas = (float(v) for v in line.split())
    assert n >= 50 and box_areas > 10  # the situation is crowded
    assert growth - mask_bytes < 300e6, (growth, mask_bytes)


@pytest.mark.parametrize("h, w, size", [(480, 640, 550), (2160, 3840, 550), (37, 1001, 128), (550, 550, 550)])
def test_resize_one_channel_at_a_time_equals_the_batched_kernel(h, w, size):
    # The transform resizes each channel plane alone to bound memory; the bits must be those
    # of F.interpolate on the contiguous NCHW image (the original's FastBaseTransform).
    import torch.nn.functional as F

    img = np.random.default_rng(h).integers(0, 255, (h, w, 3), dtype=np.uint8)
    t = YolactTransform(size)
    got = t.resize([img])
    x = torch.from_numpy(img).float().permute(2, 0, 1)[None].contiguous()
    want = F.interpolate(x, (size, size), mode="bilinear", align_corners=False)
    assert got.shape == want.shape and torch.equal(got, want)


def test_sliced_panorama_has_square_tiles_and_no_squashed_whole_pass(monkeypatch, capsys):
    # Issue #26 item 7 and a new user's finding: on a 1280x160 panorama the whole-image pass
    # (squashed 8:1, or letterboxed to a strip) and 640 px tiles (640x160, squashed 4:1) gave
    # wide false detections. Tiles are now square (cut to the short side) and the whole-image
    # pass is skipped for a panorama, with a note once.
    import yolact.prediction.predictor as predictor_module

    monkeypatch.setattr(predictor_module, "_PANORAMA_SAID", False)
    model = make_tiny_model()
    seen = []
    original = type(model).predict_batch

    def spy(self, images, opts, img_size=None):
        seen.append([im.shape[:2] for im in images])
        return original(self, images, opts, img_size)

    monkeypatch.setattr(type(model), "predict_batch", spy)
    pano = np.random.default_rng(1).integers(0, 255, (160, 1280, 3), dtype=np.uint8)
    for _ in range(2):
        res = model.predict(pano, slice=(640, 0.2), score_threshold=0.0)
    inner = [shape for call in seen if call != [(160, 1280)] for shape in call]
    assert inner and all(shape == (160, 160) for shape in inner)  # square tiles only, no whole pass
    assert res.masks.shape[1:] == (160, 1280)
    assert capsys.readouterr().err.count("1280x160 is a panorama (8.0:1)") == 1
    seen.clear()
    model.predict(np.zeros((300, 400, 3), np.uint8), slice=(128, 0.2), score_threshold=0.0)
    assert seen.count([(300, 400)]) == 2  # predict's own call, then the whole-image pass as it is


def test_slice_overlap_0_gets_a_note(capsys, monkeypatch):
    import yolact.prediction.predictor as predictor_module

    monkeypatch.setattr(predictor_module, "_OVERLAP_0_SAID", False)
    model = make_tiny_model()
    model.options(slice=(128, 0.0))
    model.options(slice=(128, 0.0))
    err = capsys.readouterr().err
    assert err.count("note: slice overlap 0: an object cut by a tile border") == 1


def test_merge_of_detections_whose_masks_are_all_empty_is_empty():
    # A blank image: every tile's detections had empty masks and the merge raised ValueError.
    from yolact.prediction.slicing import merge_results

    empty = MaskCrops([np.zeros((3, 3), bool)], np.array([[5, 5]]), (40, 50))
    part = Results(np.array([[5, 5, 8, 8]], np.float32), np.array([0.9], np.float32), np.array([1]), empty,
                   ("a", "b"), np.array([0.9], np.float32), (40, 50))
    res = merge_results([part], (40, 50))
    assert len(res) == 0 and res.class_names == ("a", "b") and res.masks.shape == (0, 40, 50)
    assert merge_results([], (40, 50)).masks.shape == (0, 40, 50)


def test_merge_drops_another_class_fragment_inside_a_large_object():
    """A big circle cut by tiles: one tile calls its corner of the circle another class (a
    "square" fragment); the whole-image pass sees the circle. The fragment is dropped."""
    h, w = 400, 400
    yy, xx = np.mgrid[:h, :w]
    circle = (yy - 200) ** 2 + (xx - 200) ** 2 < 150 ** 2
    whole = (0, 0, w, h)
    tile = (0, 0, 256, 256)
    fragment = circle & (yy < 256) & (xx < 256) & (yy >= 120) & (xx >= 120)   # a square piece inside
    big = _tile_result(circle, 0, 0.7, [50, 50, 349, 349], whole, (h, w))
    frag = _tile_result(fragment, 1, 0.9, [120, 120, 255, 255], tile, (h, w))
    merged = merge_results([big, frag], (h, w))
    assert list(merged.labels) == [0] and np.array_equal(merged.masks[0], circle)
    kept = merge_results([big, frag], (h, w), cross_class_ios=None)            # the rule off: both
    assert sorted(kept.labels.tolist()) == [0, 1]
    # an object of another class only partly on the big one, or as big, is not a fragment
    half_out = np.zeros((h, w), bool)
    half_out[300:400, 150:250] = True                                          # about half outside
    other = _tile_result(half_out, 1, 0.9, [150, 300, 249, 399], whole, (h, w))
    assert sorted(merge_results([big, other], (h, w)).labels.tolist()) == [0, 1]


def test_from_full_crops_are_each_masks_tight_box():
    # from_full finds every mask's bounds at once; the crops must be those of a per-mask search
    rng = np.random.default_rng(7)
    full = rng.random((12, 37, 53)) > 0.97
    full[0] = False  # empty
    full[1] = False
    full[1, 0, 0] = full[1, -1, -1] = True  # corner to corner
    full[2] = False
    full[2, 5, 9] = True  # one pixel
    crops = MaskCrops.from_full(full.astype(np.uint8))
    for i, m in enumerate(full):
        rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        if len(rows) == 0:
            assert crops.crops[i].shape == (0, 0) and tuple(crops.offsets[i]) == (0, 0)
            continue
        assert np.array_equal(crops.crops[i], m[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1])
        assert tuple(crops.offsets[i]) == (cols[0], rows[0]) and crops.crops[i].dtype == bool
    assert np.array_equal(crops.full(), full)
