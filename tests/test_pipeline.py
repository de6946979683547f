"""The one inference pipeline: every backend through the same transform, post-processing and
Results; zero detections as an ordinary case; backends picked from the file."""
import numpy as np
import pytest
import torch

import yolact
from yolact.data.synth import make_image
from yolact.prediction.predictor import Predictor, TorchPredictor
from yolact.errors import YolactError
from yolact.model.postprocess import PostProcess
from yolact.model.transform import YolactTransform

pytest.importorskip("onnxruntime", reason="the ONNX backend needs the onnx extra")

EMPTY = np.zeros((200, 300, 3), np.uint8)  # the demo model finds no candidate at all in it


@pytest.fixture(scope="module")
def demo():
    return yolact.load(yolact.demo_weights_path())


@pytest.fixture(scope="module")
def shapes():
    return make_image(np.random.default_rng(3), 240, 320)[0]


@pytest.fixture(scope="module")
def exported(demo, tmp_path_factory):
    """Every exported backend of the demo model: ONNX core and post-processing graphs, and
    OpenVINO's when the extra is installed."""
    from yolact.deploy.onnx import export_onnx

    d = tmp_path_factory.mktemp("exports")
    files = {"onnx-core": export_onnx(demo, d / "core.onnx", dynamic_batch=True),
             "onnx-post": export_onnx(demo, d / "post.onnx", include_postprocess=True)}
    try:
        from yolact.deploy.openvino import export_openvino
        files["openvino-core"] = export_openvino(demo, d / "core.xml")
        files["openvino-post"] = export_openvino(demo, d / "post.xml", include_postprocess=True)
    except (ImportError, YolactError):
        pass
    return files


def _same(a, b, score_tol=1e-5):
    assert len(a) == len(b)
    assert np.array_equal(a.labels, b.labels)
    np.testing.assert_allclose(a.box_scores, b.box_scores, atol=score_tol)
    assert a.masks.shape == b.masks.shape
    if len(a):
        inter = (a.masks & b.masks).sum((1, 2))
        union = (a.masks | b.masks).sum((1, 2))
        assert np.where(union > 0, inter / np.maximum(union, 1), 1.0).min() >= 0.98  # both empty: agree


def test_the_empty_image_has_no_candidate(demo):
    from yolact.ops.boxes import decode

    with torch.no_grad():
        out = demo(YolactTransform.from_config(demo.cfg)([EMPTY]))
    best = out.conf[0, :, 1:].max(1).values
    assert float(best.max()) <= demo.cfg.nms_conf_thresh  # so the graphs see zero candidates
    det = PostProcess(demo.cfg)(decode(out.loc[0], out.priors), out.conf[0], out.coef[0], out.proto[0])
    assert det.boxes.shape == (0, 4) and det.masks.shape[0] == 0


@pytest.mark.parametrize("backend", ["onnx-core", "onnx-post", "openvino-core", "openvino-post"])
def test_every_backend_handles_zero_detections_alone_and_in_a_batch(demo, exported, shapes, backend):
    if backend not in exported:
        pytest.skip("the OpenVINO backend needs the openvino extra")
    model = yolact.load(exported[backend])  # the backend follows the suffix
    assert isinstance(model, Predictor) and model.backend == backend.split("-")[0].replace("onnx", "onnxruntime")
    alone = model.predict(EMPTY, score_threshold=0)
    assert len(alone) == 0 and alone.masks.shape == (0, 200, 300) and alone.boxes.shape == (0, 4)
    batch = model.predict([EMPTY, shapes, EMPTY], score_threshold=0)
    ref = demo.predict([EMPTY, shapes, EMPTY], score_threshold=0)
    assert [len(r) for r in batch] == [0, len(ref[1]), 0] and len(ref[1]) > 0
    _same(batch[1], ref[1])
    assert "0 detections" in repr(batch[0])


def test_torch_handles_zero_detections(demo, shapes):
    res = demo.predict([EMPTY, shapes], score_threshold=0, keep_proto=True)
    assert len(res[0]) == 0 and res[0].masks.shape == (0, 200, 300) and res[0].coeffs.shape == (0, 32)
    assert res[0].proto is not None and len(res[1]) > 0


def test_load_picks_the_backend_from_the_file(demo, exported, tmp_path):
    from yolact.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "m.pt", yolact.load(yolact.demo_weights_path(), precision="fp32"))
    assert isinstance(yolact.load(tmp_path / "m.pt"), TorchPredictor)
    onnx = yolact.load(exported["onnx-core"])
    assert onnx.backend == "onnxruntime" and onnx.class_names == demo.class_names and onnx.precision == "fp32"
    with pytest.raises(YolactError, match="no such ONNX file"):
        yolact.load(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a graph")
    with pytest.raises(YolactError, match="junk.onnx: not a loadable ONNX model"):
        yolact.load(tmp_path / "junk.onnx")
    with pytest.raises(YolactError, match="--compile is for PyTorch"):
        yolact.load(exported["onnx-core"], compile="default")


def test_core_graph_takes_every_control_post_graph_refuses_what_it_cannot(demo, exported, shapes):
    core = yolact.load(exported["onnx-core"])
    for kw in ({"nms": "cross_class"}, {"nms": "classic"}, {"iou": 0.3}, {"classes": [0]}, {"keep_proto": True}):
        _same(core.predict(shapes, score_threshold=0.1, **kw), demo.predict(shapes, score_threshold=0.1, **kw))
    post = yolact.load(exported["onnx-post"])
    for kw in ({"nms": "classic"}, {"iou": 0.3}, {"keep_proto": True}):
        with pytest.raises(YolactError, match="post.onnx"):
            post.predict(shapes, **kw)
    # classes after the graph's NMS: the same detections of that class (per-class NMS)
    cls = int(demo.predict(shapes).labels[0])
    got = post.predict(shapes, score_threshold=0.1, classes=[cls])
    assert len(got) and set(got.labels.tolist()) == {cls}
    _same(got, demo.predict(shapes, score_threshold=0.1).subset(demo.predict(shapes, score_threshold=0.1).labels == cls))


def test_streams_through_a_graph(exported, shapes, demo):
    model = yolact.load(exported["onnx-post"])
    got = list(model.predict([shapes, EMPTY, shapes], stream=True, batch_size=2))
    assert [len(r) for r in got] == [len(demo.predict(shapes)), 0, len(demo.predict(shapes))]


def test_export_leaves_the_callers_model_unchanged(demo, tmp_path):
    from yolact.deploy.onnx import export_onnx

    model = yolact.load(yolact.demo_weights_path())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = model.cfg
    export_onnx(model, tmp_path / "m.onnx", img_size=256)
    assert model.cfg is cfg and model.cfg.max_size == 192
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    m256 = yolact.load(tmp_path / "m.onnx")
    assert m256.cfg.max_size == 256


def test_controls(demo, shapes):
    ref = demo.predict(shapes, score_threshold=0.05)
    names = demo.class_names
    cls = int(ref.labels[0])
    only = demo.predict(shapes, score_threshold=0.05, classes=[names[cls]])
    assert len(only) and set(only.labels.tolist()) == {cls}
    assert np.array_equal(demo.predict(shapes, score_threshold=0.05, classes=str(cls)).boxes, only.boxes)
    # per-class NMS: one class alone keeps exactly that class's detections
    np.testing.assert_array_equal(only.boxes, ref.boxes[ref.labels == cls][:len(only)])
    assert len(demo.predict(shapes, score_threshold=0.05, max_det=3)) == 3
    agn = demo.predict(shapes, score_threshold=0.05, agnostic_nms=True)
    cc = demo.predict(shapes, score_threshold=0.05, nms="cross_class")
    np.testing.assert_array_equal(agn.boxes, cc.boxes)
    strict_iou = demo.predict(shapes, score_threshold=0.05, iou=0.1)
    assert len(strict_iou) < len(ref)
    assert np.array_equal(demo.predict(shapes, score_threshold=0.05, iou=0.5).boxes, ref.boxes)  # the default
    big = demo.predict(shapes, score_threshold=0.05, img_size=320)
    assert big.masks.shape == (len(big), 240, 320) and len(big) > 0
    for bad, match in (({"classes": ["nope"]}, "unknown class 'nope'"), ({"classes": [99]}, "class id 99"),
                       ({"img_size": 100}, "multiple of 32"), ({"iou": 1.5}, "iou"), ({"nms": "x"}, "unknown nms")):
        with pytest.raises(YolactError, match=match):
            demo.predict(shapes, **bad)


def test_precision_and_compile_are_declared_state(tmp_path):
    model = yolact.load(yolact.demo_weights_path(), precision="bf16")
    assert model.precision == "bf16" and next(model.parameters()).dtype == torch.bfloat16
    assert yolact.load(yolact.demo_weights_path(), precision="fp32").precision == "fp32"
    with pytest.raises(YolactError, match="compile mode"):
        yolact.load(yolact.demo_weights_path(), compile="fastest")


def test_default_precision_exact_for_the_originals_architectures_fused_for_the_light_presets(tmp_path, shapes):
    """#33 item 5: the light ResNet-18 presets predict with BatchNorm folded by default (the
    original has no such model to be bit-identical to); the original's architectures stay exact;
    precision='fp32' is exact for any model; a converted model is refused by save_checkpoint
    (its weights would fit no preset) instead of writing a file that cannot be loaded."""
    from yolact.checkpoint import save_checkpoint
    from yolact.config import PRESETS, default_precision

    for name, cfg in PRESETS.items():
        assert default_precision(cfg) == ("fp32-fused" if cfg.backbone == "resnet18" else "fp32"), name
    fused = yolact.load(yolact.demo_weights_path())
    exact = yolact.load(yolact.demo_weights_path(), precision="fp32")
    assert (fused.precision, exact.precision) == ("fp32-fused", "fp32")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    a, b = fused.predict(shapes, score_threshold=0.3), exact.predict(shapes, score_threshold=0.3)
    assert len(a) == len(b) > 0 and (a.labels == b.labels).all()
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-4)
    np.testing.assert_allclose(a.boxes, b.boxes, atol=1)
    with pytest.raises(YolactError, match="BatchNorm folded"):
        save_checkpoint(tmp_path / "fused.pt", fused)
    assert not (tmp_path / "fused.pt").exists()
    # a fused state dict saved by hand is named for what it is when loaded
    torch.save(fused.state_dict(), tmp_path / "sd.pt")
    with pytest.raises(YolactError, match="converted for inference .*precision='fp32'"):
        yolact.load(tmp_path / "sd.pt")
    # a converted model is never silently "made" exact again, nor widened after bf16
    with pytest.raises(YolactError, match="already converted to fp32-fused.*precision='fp32'"):
        fused.set_precision("fp32")
    assert fused.set_precision("fp32-fused") is fused and fused.set_precision("bf16").precision == "bf16"
    with pytest.raises(YolactError, match="already converted to bf16"):
        fused.set_precision("fp32-fused")
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "r50.pt", yolact.build("yolact_resnet50", num_classes=2))
    assert yolact.load(tmp_path / "r50.pt").precision == "fp32"


def test_a_bare_network_is_wrapped_without_copying(shapes):
    from yolact.compat import predict
    from yolact.model.yolact import Yolact

    pred = yolact.load(yolact.demo_weights_path(), precision="fp32")
    net = Yolact(pred.cfg)
    net.load_state_dict(pred.state_dict())
    net.eval()
    wrapped = TorchPredictor.from_network(net)
    assert next(wrapped.parameters()) is next(net.parameters())
    np.testing.assert_array_equal(predict(net, shapes).boxes, pred.predict(shapes).boxes)


def test_server_selection_uses_the_post_processing_rule():
    scores = torch.tensor([0.9, 0.5, 0.3, 0.1])
    labels = torch.tensor([0, 1, 0, 1])
    assert PostProcess.limit(scores, labels, 0.2, 2).tolist() == [0, 1]
    assert PostProcess.limit(scores, labels, 0.0, 10, keep_classes=[1]).tolist() == [1, 3]
    assert PostProcess.limit(scores, labels, 0.95, 10).tolist() == []


@pytest.mark.parametrize("threshold,top_k,classes", [(0.0, 100, None), (0.15, 100, None), (0.05, 7, None),
                                                     (0.0, 100, [1])])
def test_fixed_size_post_processing_equals_the_dynamic_one(demo, shapes, threshold, top_k, classes):
    """forward_static (the GPU path: no host sync) keeps the same detections as forward."""
    from yolact.ops.boxes import decode

    x = YolactTransform.from_config(demo.cfg)([shapes, EMPTY])
    with torch.no_grad():
        out = demo(x)
        post = PostProcess(demo.cfg, demo.maskiou_net)
        for i in range(2):
            args = (decode(out.loc[i], out.priors), out.conf[i], out.coef[i], out.proto[i], threshold, top_k, classes)
            ref = post(*args)
            fixed = post.forward_static(*args)
            assert fixed.boxes.shape[0] == demo.cfg.max_num_detections and fixed.valid is not None
            got = fixed.compact()
            assert len(got.scores) == len(ref.scores) and (i == 1) == (len(ref.scores) == 0)
            torch.testing.assert_close(got.scores, ref.scores, rtol=0, atol=0)
            assert torch.equal(got.classes, ref.classes) and torch.equal(got.boxes, ref.boxes)
            # masks: one matmul over 100 coefficient rows instead of n rounds differently (ulps)
            torch.testing.assert_close(got.masks, ref.masks, rtol=0, atol=1e-6)
            a, b = PostProcess.to_image(fixed, 240, 320).compact(), PostProcess.to_image(ref, 240, 320)
            assert torch.equal(a.boxes, b.boxes) and int((a.masks ^ b.masks).sum()) <= 1e-4 * a.masks.numel()


def test_detect_keeps_detections_on_the_device(demo, shapes):
    dets = demo.detect([shapes, EMPTY], demo.options(score_threshold=0.15))
    assert dets[0].masks.dtype == torch.bool and dets[0].masks.shape[1:] == (240, 320)
    res = demo.predict(shapes)
    assert torch.equal(dets[0].boxes, torch.from_numpy(res.boxes)) and len(dets[1].scores) == 0


def test_other_input_sizes_keep_boxes_on_the_objects(demo):
    """At an input size other than the trained one the anchors keep their pixel size (the
    regressions were learnt against it): boxes stay on the objects (they were 1.6x too large at
    320 when the anchors kept their relative size)."""
    image = make_image(np.random.default_rng(5), 256, 256, max_objects=4, style="simple")[0]  # the demo's kind
    for size in (160, 256, 320):
        res = demo.predict(image, score_threshold=0.3, img_size=size)
        assert len(res), size
        for box, mask in zip(res.boxes, res.masks):
            ys, xs = np.nonzero(mask)
            extent = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], float)
            inter = np.clip(np.minimum(box[2:], extent[2:]) - np.maximum(box[:2], extent[:2]), 0, None).prod()
            union = np.prod(box[2:] - box[:2]) + np.prod(extent[2:] - extent[:2]) - inter
            assert inter / union > 0.7, (size, box, extent)


def test_classes_at_threshold_zero_list_only_those_classes(demo, shapes, exported):
    ref = demo.predict(shapes, score_threshold=0.0)
    cls = int(ref.labels[0])
    for model in (demo, yolact.load(exported["onnx-core"]), yolact.load(exported["onnx-post"])):
        got = model.predict(shapes, score_threshold=0.0, classes=[cls])
        assert set(got.labels.tolist()) == {cls}
        np.testing.assert_allclose(got.box_scores, ref.box_scores[ref.labels == cls], atol=1e-5)


def test_input_sizes_the_trained_one_or_multiples_of_32():
    from yolact.config import get_config

    cfg = get_config("yolact_base")  # trained at 550, not a multiple of 32
    assert YolactTransform.from_config(cfg).size == 550 and YolactTransform.from_config(cfg, 550).size == 550
    assert YolactTransform.from_config(cfg, 640).size == 640
    for bad in (500, 32, 100.5):
        with pytest.raises(YolactError, match="multiple of 32"):
            YolactTransform.from_config(cfg, bad)


def test_load_demo_by_name_and_videos_need_stream(tmp_path):
    import cv2

    assert yolact.load("demo").class_names == yolact.load(yolact.demo_weights_path()).class_names
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 5, (64, 48))
    writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    with pytest.raises(YolactError, match="clip.avi: a video; use predict.*stream=True"):
        yolact.load("demo").predict(str(clip))


@pytest.fixture(scope="module")
def sharp(tmp_path_factory):
    """The demo checkpoint as ``--recipe fast`` writes one: masks scored by their maskness and
    upsampled bicubically (config fields in the file)."""
    obj = torch.load(yolact.demo_weights_path(), weights_only=True)
    obj["config"] = dict(obj["config"], mask_score="maskness", mask_interpolation="bicubic")
    path = tmp_path_factory.mktemp("sharp") / "sharp.pt"
    torch.save(obj, path)
    return yolact.load(str(path))


def test_maskness_scores_and_bicubic_masks_against_brute_force(demo, sharp, shapes):
    """A model whose config asks for them: mask scores = class score x the mean soft value
    inside the binary mask (numpy), masks = F.interpolate bicubic > 0.5; boxes, classes and
    class scores are the plain model's."""
    from yolact.ops.boxes import decode

    assert sharp.cfg.mask_score == "maskness" and sharp.cfg.mask_interpolation == "bicubic"
    x = YolactTransform.from_config(sharp.cfg)([shapes])
    with torch.no_grad():
        out = sharp(x)
        det = PostProcess(sharp.cfg)(decode(out.loc[0], out.priors), out.conf[0], out.coef[0], out.proto[0])
    soft = det.masks.double().numpy()
    assert len(soft) > 3
    inside = soft > 0.5
    maskness = np.array([m[k].mean() if k.any() else m.max() for m, k in zip(soft, inside)])
    assert 0 < maskness.max() < 1 and (~inside.any((1, 2))).any()  # a mask with none above 0.5: its max
    np.testing.assert_allclose(det.scores.numpy(), det.box_scores.numpy() * maskness, rtol=1e-6)

    plain, res = demo.predict(shapes), sharp.predict(shapes)
    assert np.array_equal(plain.boxes, res.boxes) and np.array_equal(plain.labels, res.labels)
    np.testing.assert_array_equal(plain.box_scores, res.box_scores)
    np.testing.assert_array_equal(plain.scores, plain.box_scores)
    n = len(res)  # predict's default threshold keeps the first n (descending class score)
    assert 3 < n < len(soft)
    np.testing.assert_array_equal(res.box_scores, det.box_scores.numpy()[:n])
    np.testing.assert_allclose(res.scores, res.box_scores * maskness[:n], rtol=1e-6)
    up = torch.nn.functional.interpolate(det.masks[None, :n], (240, 320), mode="bicubic", align_corners=False)[0] > 0.5
    assert np.array_equal(res.masks, up.numpy())
    assert not np.array_equal(res.masks, plain.masks)  # bicubic is not bilinear here
    coco = res.to_coco(1, kind="both")
    assert [d["score"] for d in coco] == [float(s) for s in res.scores]  # masks ranked by maskness
    assert [d["box_score"] for d in coco] == [float(s) for s in res.box_scores]  # boxes by class score


def test_maskness_never_zero_for_a_mask_that_bicubic_makes_visible():
    """A soft mask with no grid cell above 0.5 can still have pixels above 0.5 once upsampled
    bicubically (overshoot at its edges): its maskness is its largest value, not 0, so the
    visible mask keeps a score, and it still ranks below every mask with cells above 0.5."""
    from yolact.model.postprocess import maskness

    plateau = torch.zeros(3, 8, 8)
    plateau[0, 2:6, 2:6] = 0.49                      # none above 0.5 on the grid
    plateau[1, 2:6, 2:6], plateau[1, 3, 3] = 0.49, 0.51  # one cell above
    up = torch.nn.functional.interpolate(plateau[None], (32, 32), mode="bicubic", align_corners=False)[0]
    assert (up[0] > 0.5).sum() > 50  # visible on the image
    got = maskness(plateau)
    assert got[0].item() == pytest.approx(0.49) and got[1].item() == pytest.approx(0.51) and got[2].item() == 0
    assert maskness(torch.zeros(0, 8, 8)).shape == (0,)


def test_maskness_and_bicubic_travel_into_exported_graphs(sharp, shapes, tmp_path):
    """The ONNX core graph (post-processing in Python) and post-processing graph (maskness traced
    inside) give the eager model's mask scores and masks."""
    from yolact.deploy.onnx import export_onnx

    ref = sharp.predict(shapes)
    for name, post in (("core", False), ("post", True)):
        model = yolact.load(str(export_onnx(sharp, tmp_path / f"{name}.onnx", include_postprocess=post)))
        assert (model.cfg.mask_score, model.cfg.mask_interpolation) == ("maskness", "bicubic")
        got = model.predict(shapes)
        _same(ref, got)
        np.testing.assert_allclose(got.scores, ref.scores, atol=1e-5)
