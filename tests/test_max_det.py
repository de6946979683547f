"""--max-det above the preset's 100 (issue #26 item 6): honoured on every backend that runs NMS
on the host, baked into a post-processing graph with `export --max-det`, said once by a graph
whose cap is fixed, and counted by eval's AP (COCOeval maxDets)."""
import numpy as np
import pytest

from yolact.errors import YolactError
from yolact.evaluation.coco import coco_eval

from conftest import make_tiny_model

IMG = np.random.default_rng(0).integers(0, 255, (200, 300, 3), np.uint8)


@pytest.fixture(scope="module")
def model():
    return make_tiny_model(classes=tuple("abcdefgh"))


def test_torch_keeps_more_than_100(model):
    r100 = model.predict(IMG, score_threshold=0.0)
    r300 = model.predict(IMG, score_threshold=0.0, max_det=300)
    assert len(r100) == 100 and len(r300) == 300
    # the first 100 are the default run's: raising the cap adds lower-scored detections only
    assert np.array_equal(r300.boxes[:100], r100.boxes) and np.array_equal(r300.masks[:100], r100.masks)
    assert len(model.predict(IMG, score_threshold=0.0, max_det=300, nms="classic")) == 300
    assert len(model.predict(IMG, score_threshold=0.0, max_det=300, agnostic_nms=True)) > 100


def test_onnx_graphs(model, tmp_path, capsys):
    pytest.importorskip("onnxruntime", reason="needs the onnx extra: pip install 'yolact[onnx]'")
    import yolact
    from yolact.deploy.onnx import export_onnx

    want = model.predict(IMG, score_threshold=0.0, max_det=300)
    core = yolact.load(export_onnx(model, tmp_path / "core.onnx"))
    got = core.predict(IMG, score_threshold=0.0, max_det=300)
    assert len(got) == 300 and np.abs(got.boxes - want.boxes).max() <= 1

    fixed = yolact.load(export_onnx(model, tmp_path / "post.onnx", include_postprocess=True))
    capsys.readouterr()
    assert len(fixed.predict(IMG, score_threshold=0.0, max_det=300)) == 100
    assert len(fixed.predict(IMG, score_threshold=0.0, max_det=300)) == 100
    err = capsys.readouterr().err
    assert err.count("keeps at most 100 detections (asked: 300); export it again: yolact export --weights WEIGHTS "
                     "--format onnx --include-postprocess --img-size 128 --max-det 300") == 1

    raised = yolact.load(export_onnx(model, tmp_path / "post300.onnx", include_postprocess=True, max_det=300))
    got = raised.predict(IMG, score_threshold=0.0, max_det=300)
    assert len(got) == 300 and np.abs(got.boxes - want.boxes).max() <= 1
    assert "keeps at most" not in capsys.readouterr().err

    with pytest.raises(YolactError, match="--max-det is baked into the post-processing graph only"):
        export_onnx(model, tmp_path / "c.onnx", max_det=300)


def test_a_lower_max_det_makes_a_smaller_graph(model, tmp_path, capsys):
    """New-user report: `export --max-det 5` wrote the same 100-row file as no flag, silently.
    A graph's K is now max_det below the preset's cap too: its rows are the default run's first K."""
    pytest.importorskip("onnxruntime", reason="needs the onnx extra: pip install 'yolact[onnx]'")
    import yolact
    from yolact.deploy.graph import edge_graph
    from yolact.deploy.onnx import export_onnx

    want = model.predict(IMG, score_threshold=0.0)
    post5 = yolact.load(export_onnx(model, tmp_path / "post5.onnx", include_postprocess=True, max_det=5))
    assert post5.cfg.max_num_detections == 5
    from yolact.prediction.info import model_info
    info = model_info(post5, tmp_path / "post5.onnx")  # `yolact info`: its kind, K and precision
    assert (info["graph"], info["max_det"], info["stored"]) == ("post-processing graph", 5, "fp32")
    assert list(info["inputs"]) == ["images"] and len(info["outputs"]) >= 4  # as ONNX Runtime reads them
    got = post5.predict(IMG, score_threshold=0.0)
    assert len(got) == 5 and (got.labels == want.labels[:5]).all()
    assert np.abs(got.boxes - want.boxes[:5]).max() <= 1
    assert "keeps at most" not in capsys.readouterr().err
    # the default top_k is the graph's K (cfg.max_num_detections); more, asked for, is said once
    assert len(post5.predict(IMG, score_threshold=0.0, max_det=100)) == 5
    assert "keeps at most 5 detections (asked: 100)" in capsys.readouterr().err
    _, net, _ = edge_graph(model, None, max_det=5)  # the LiteRT / ExecuTorch / Core ML graph
    assert net.cfg.max_num_detections == 5


def test_eval_counts_the_detections_kept():
    # One image with 121 objects, each detected exactly: AP at COCO's 100 misses 21 of them.
    from pycocotools import mask as mask_utils

    h, w = 110, 110
    anns, results = [], []
    for i in range(121):
        y, x = divmod(i, 11)
        m = np.zeros((h, w), np.uint8, order="F")
        m[10 * y + 1:10 * y + 9, 10 * x + 1:10 * x + 9] = 1
        rle = mask_utils.encode(m)
        rle["counts"] = rle["counts"].decode()
        box = [10.0 * x + 1, 10.0 * y + 1, 8.0, 8.0]
        anns.append({"id": i + 1, "image_id": 1, "category_id": 1, "bbox": box, "area": 64.0,
                     "segmentation": rle, "iscrowd": 0})
        results.append({"image_id": 1, "category_id": 1, "bbox": box, "segmentation": rle,
                        "score": 1.0 - i / 1000})
    data = {"images": [{"id": 1, "width": w, "height": h, "file_name": "a.png"}],
            "categories": [{"id": 1, "name": "a"}], "annotations": anns}
    at100 = coco_eval("gt.json", results, data=data)
    at300 = coco_eval("gt.json", results, data=data, max_dets=300)
    assert at100["segm"]["AP"] < 0.9 and at300["segm"]["AP"] == pytest.approx(1.0)
    assert at300["bbox"]["AP"] == pytest.approx(1.0) and "maxDets=300" in at300["segm"]["summary"]


def test_default_top_k_is_the_configs_cap(model):
    """The predictor's default top_k is cfg.max_num_detections (100 in every preset, so their
    results are unchanged), not a literal 100: a config capped at 7 keeps 7 by default."""
    import copy

    assert model.cfg.max_num_detections == 100 and len(model.predict(IMG, score_threshold=0.0)) == 100
    assert model.options().top_k == 100
    capped = copy.deepcopy(model)
    capped.cfg = capped.cfg.replace(max_num_detections=7)
    assert capped.options().top_k == 7
    got = capped.predict(IMG, score_threshold=0.0)
    want = model.predict(IMG, score_threshold=0.0)
    assert len(got) == 7 and np.array_equal(got.boxes, want.boxes[:7])
    assert len(capped.predict(IMG, score_threshold=0.0, max_det=20)) == 20  # asked for: raised as before


def test_max_det_0_is_refused(model):
    # It gave an empty result, and eval an AP table of zeros, without a word.
    with pytest.raises(YolactError, match="max detections 0: expected at least 1"):
        model.predict(IMG, max_det=0)
