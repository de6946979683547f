"""Video pre-labels (#31): ``track --save-cvat`` (CVAT for video 1.1) and ``--save-coco`` for videos,
read back with Datumaro's own CVAT and COCO readers and checked against the tracker's output."""
import json
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest

from yolact.errors import YolactError
from yolact.integrations.video_labels import CocoVideoSink, CvatVideoSink, cvat_mask_rle
from yolact.prediction.sinks import Frame
from yolact.results import Results
from yolact.tracking import Tracker

from conftest import make_tiny_model

H, W, N = 60, 80, 12
NAMES = ("a", "b")


def _scene():
    """Per frame [(box, label)]: 'a' crosses the whole video, 'b' is seen on frames 2..6 only, a
    second 'a' on frames 8..11 (a new identity after the first 'b' left)."""
    frames = []
    for t in range(N):
        dets = [([4 + 3 * t, 10, 20 + 3 * t, 30], 0)]
        if 2 <= t <= 6:
            dets.append(([50, 30 + t, 70, 50 + t], 1))
        if t >= 8:
            dets.append(([10, 40, 24, 56], 0))
        frames.append(dets)
    return frames


def _results(dets):
    boxes = np.array([d[0] for d in dets], np.float32)
    labels = np.array([d[1] for d in dets], np.int64)
    scores = np.full(len(dets), 0.9, np.float32)
    masks = np.zeros((len(dets), H, W), bool)
    for m, (x1, y1, x2, y2) in zip(masks, boxes.astype(int)):
        m[y1:y2, x1:x2] = True
        m[y1 + 4:y1 + 7, x1 + 4:x1 + 7] = False  # a hole: the mask shape keeps it, a polygon cannot
    img = np.full((H, W, 3), 100, np.uint8)
    return Results(boxes, scores, labels, masks, NAMES, scores, (H, W), image=img)


def _tracked(sinks, name="clip"):
    """Run the real tracker over the scene into ``sinks``; -> per frame {track id: (label, mask)}."""
    tracker, truth = Tracker(), []
    for s in sinks:
        s.open_video(name, 10.0)
    for n, dets in enumerate(_scene()):
        res = tracker.update(_results(dets))
        truth.append({int(t): (int(l), m.copy()) for t, l, m in zip(res.track_ids, res.labels, res.masks)})
        for s in sinks:
            s.add(res, Frame(source=f"{name}.mp4", video=f"{name}.mp4", index=n, fps=10.0, name=name))
    for s in sinks:
        s.close_video()
    return truth


def test_cvat_video_xml_reads_back_in_datumaro_as_the_trackers_tracks(tmp_path):
    dm = pytest.importorskip("datumaro", reason="needs datumaro (test extra): pip install datumaro")
    sink = CvatVideoSink(tmp_path, NAMES)
    truth = _tracked([sink])
    assert sink.close() == [tmp_path / "clip.xml"]
    assert len({t for f in truth for t in f}) == 3, "the scene must give three identities"

    root = ET.parse(tmp_path / "clip.xml").getroot()
    assert root.findtext("version") == "1.1" and root.findtext("meta/task/mode") == "interpolation"
    assert root.findtext("meta/task/size") == str(N) and root.findtext("meta/task/original_size/width") == str(W)

    ds = dm.Dataset.import_from(str(tmp_path), "cvat")
    labels = ds.categories()[dm.AnnotationType.label]
    seen = {}  # frame -> {track id: (label, polygon)}
    outside = {}  # track id -> frames marked outside
    for item in ds:
        frame = item.attributes["frame"]
        for a in item.annotations:
            assert a.type == dm.AnnotationType.polygon
            tid = a.attributes["track_id"]
            if a.attributes["outside"]:
                outside.setdefault(tid, []).append(frame)
                continue
            assert a.attributes["keyframe"] is True
            seen.setdefault(frame, {})[tid] = (labels[a.label].name, a)
    for n, frame_truth in enumerate(truth):
        assert set(seen.get(n, {})) == set(frame_truth), f"frame {n}"
        for tid, (label, mask) in frame_truth.items():
            name, poly = seen[n][tid]
            assert name == NAMES[label]
            # the polygon is the mask's outline: its box is the mask's box (pixel centres)
            ys, xs = np.nonzero(mask)
            x, y, w, h = poly.get_bbox()
            assert (x, y, x + w, y + h) == pytest.approx((xs.min(), ys.min(), xs.max(), ys.max()), abs=0.01)
    # a track that ends before the video does is closed by an outside shape on the next frame;
    # the one seen to the last frame is not
    for tid in {t for f in truth for t in f}:
        last = max(n for n, f in enumerate(truth) if tid in f)
        assert outside.get(tid, []) == ([last + 1] if last + 1 < N else [])


def test_cvat_mask_shapes_decode_exactly_with_datumaros_rle(tmp_path):
    pytest.importorskip("datumaro", reason="needs datumaro (test extra): pip install datumaro")
    from datumaro.util import mask_tools

    sink = CvatVideoSink(tmp_path, NAMES, shape="mask")
    truth = _tracked([sink])
    root = ET.parse(tmp_path / "clip.xml").getroot()
    checked = 0
    for track in root.iter("track"):
        tid = int(track.get("id"))
        for el in track.iter("mask"):
            if el.get("outside") == "1":
                continue
            n, w, h = int(el.get("frame")), int(el.get("width")), int(el.get("height"))
            left, top = int(el.get("left")), int(el.get("top"))
            counts = np.array([int(v) for v in el.get("rle").split(",")], np.uint32)
            # Datumaro's decoding of CVAT mask RLE (its CVAT reader does the same, transposed)
            box = mask_tools.rle_to_mask({"counts": counts, "size": np.array([w, h])}).transpose()
            full = np.zeros((H, W), np.uint8)
            full[top:top + h, left:left + w] = box
            label, mask = truth[n][tid]
            np.testing.assert_array_equal(full.astype(bool), mask)
            assert track.get("label") == NAMES[label]
            checked += 1
    assert checked == sum(len(f) for f in truth)


def test_cvat_mask_rle_runs_start_with_background():
    m = np.zeros((5, 6), bool)
    m[1:3, 2:5] = True
    m[1, 2] = False
    assert cvat_mask_rle(m) == ([1, 5], 2, 1, 3, 2)
    m[1, 2] = True
    assert cvat_mask_rle(m) == ([0, 6], 2, 1, 3, 2)
    assert cvat_mask_rle(np.zeros((3, 3), bool)) is None
    with pytest.raises(YolactError, match="--cvat-shape"):
        CvatVideoSink(".", NAMES, shape="box")


def test_coco_video_has_an_image_per_frame_and_the_tracks(tmp_path):
    sink = CocoVideoSink(tmp_path, NAMES)
    truth = _tracked([sink])
    [path] = sink.close()
    doc = json.loads(path.read_text())
    assert doc["videos"] == [{"id": 1, "name": "clip", "fps": 10.0, "width": W, "height": H}]
    assert [i["frame_id"] for i in doc["images"]] == list(range(N))
    assert {i["video_id"] for i in doc["images"]} == {1}
    assert doc["images"][3]["file_name"] == "clip/frame_000003.jpg"
    assert all((tmp_path / i["file_name"]).is_file() for i in doc["images"])
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    coco = COCO(str(path))
    for n, frame_truth in enumerate(truth):
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[n + 1]))
        assert {a["track_id"] for a in anns} == set(frame_truth)
        for a in anns:
            assert a["attributes"]["track_id"] == a["track_id"]
            label, mask = frame_truth[a["track_id"]]
            assert a["category_id"] == label + 1
            # masks with holes stay RLE: exact
            np.testing.assert_array_equal(coco.annToMask(a).astype(bool), mask)
            assert isinstance(a["segmentation"], dict) and mask_utils.area(a["segmentation"]) == mask.sum()


def test_coco_video_reads_in_datumaro_with_track_ids(tmp_path):
    dm = pytest.importorskip("datumaro", reason="needs datumaro (test extra): pip install datumaro")
    sink = CocoVideoSink(tmp_path / "out", NAMES)
    truth = _tracked([sink])
    sink.close()
    # Datumaro's COCO layout: annotations/instances_<subset>.json, images/<subset>/<file_name>
    layout = tmp_path / "coco"
    (layout / "annotations").mkdir(parents=True)
    (layout / "annotations" / "instances_default.json").write_text((tmp_path / "out" / "annotations.json").read_text())
    (layout / "images").mkdir()
    (tmp_path / "out").rename(layout / "images" / "default")
    ds = dm.Dataset.import_from(str(layout), "coco_instances")
    assert len(ds) == N
    for item in ds:
        n = int(item.id.rsplit("_", 1)[1])
        got = {a.attributes["track_id"] for a in item.annotations if a.type == dm.AnnotationType.mask}
        assert got == set(truth[n]), item.id
        assert item.media.data.shape == (H, W, 3)


def test_cli_track_writes_cvat_and_coco_for_a_video(tmp_path, bgr_image):
    from yolact.checkpoint import save_compact
    from yolact.cli import main

    model = make_tiny_model(size=128, seed=1)
    save_compact(tmp_path / "m.pt", model)
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (bgr_image.shape[1], bgr_image.shape[0]))
    for t in range(6):
        writer.write(np.roll(bgr_image, 2 * t, axis=1))
    writer.release()
    out = tmp_path / "out"
    assert main(["track", str(video), "--weights", str(tmp_path / "m.pt"), "--out", str(out), "--save-cvat",
                 "--save-coco", "--save-json", "--no-video", "--quiet", "--top-k", "5"]) == 0
    from pycocotools import mask as mask_utils
    per_frame = [{d["track_id"] for d in json.loads(line)["detections"] if mask_utils.area(d["segmentation"]) > 0}
                 for line in (out / "clip.jsonl").read_text().splitlines()]
    assert len(per_frame) == 6 and any(per_frame), "the tiny model must track something"
    doc = json.loads((out / "annotations.json").read_text())
    assert [i["file_name"] for i in doc["images"]] == [f"clip/frame_{k:06d}.jpg" for k in range(6)]
    assert [{a["track_id"] for a in doc["annotations"] if a["image_id"] == k + 1} for k in range(6)] == per_frame
    root = ET.parse(out / "clip.xml").getroot()
    shown = [set() for _ in range(6)]
    for track in root.iter("track"):
        for el in track.iter("polygon"):
            if el.get("outside") == "0":
                shown[int(el.get("frame"))].add(int(track.get("id")))
    # every identity with a mask is a track shape on its frame (masks under 3 outline points have no polygon)
    assert all(s <= p for s, p in zip(shown, per_frame)) and sum(map(len, shown)) >= sum(map(len, per_frame)) // 2
    # --save-cvat on untracked results would have no identities: refused in one line
    untracked = CvatVideoSink(tmp_path, NAMES)
    untracked.open_video("x", 1.0)
    with pytest.raises(YolactError, match="tracked"):
        untracked.add(_results([([1, 1, 5, 5], 0)]), Frame(source="x", video="x", index=0))


def test_cli_track_save_coco_on_a_folder_of_frames_points_at_them(tmp_path, bgr_image):
    """Frames read from image files are not copied: file names are the frames' own, relative to
    their folder (recorded as info.image_root)."""
    from yolact.checkpoint import save_compact
    from yolact.cli import main

    save_compact(tmp_path / "m.pt", make_tiny_model(size=128, seed=1))
    frames = tmp_path / "seq"
    frames.mkdir()
    for t in range(3):
        cv2.imwrite(str(frames / f"{t:06d}.png"), np.roll(bgr_image, 2 * t, axis=1))
    out = tmp_path / "out"
    assert main(["track", str(frames), "--weights", str(tmp_path / "m.pt"), "--out", str(out), "--save-coco",
                 "--no-video", "--quiet", "--top-k", "5"]) == 0
    doc = json.loads((out / "annotations.json").read_text())
    assert [(i["file_name"], i["frame_id"]) for i in doc["images"]] == [(f"{t:06d}.png", t) for t in range(3)]
    assert doc["info"]["image_root"] == str(frames.resolve())
    assert not any(p.suffix == ".jpg" for p in out.rglob("*"))


def test_coco_video_writes_the_models_category_ids(tmp_path):
    """#27 item 4: track --save-coco writes the model's ids (the training file's), as every output."""
    ids = tuple(3 + 4 * k for k in range(len(NAMES)))
    sink = CocoVideoSink(tmp_path, NAMES, category_ids=ids)
    truth = _tracked([sink])
    doc = json.loads(sink.close()[0].read_text())
    assert [c["id"] for c in doc["categories"]] == list(ids)
    labels = {label for frame in truth for label, _ in frame.values()}
    assert doc["annotations"] and {a["category_id"] for a in doc["annotations"]} == {ids[k] for k in labels}


def test_cli_cvat_shape_without_save_cvat_is_refused(tmp_path, capsys):
    from yolact.cli import main

    assert main(["track", str(tmp_path / "clip.mp4"), "--cvat-shape", "mask", "--out", str(tmp_path / "o")]) == 2
    assert "--cvat-shape has no effect without --save-cvat" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
