"""Tracking: identities through crossings and gaps, births, class rules, the Kalman filter, mask
warping, the table of trackers (every row, an added row, unknown names, ``track`` over an iterable),
MOTChallenge output read by TrackEval, streaming order and memory, the CLI."""
import gc
import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from yolact.cli import build_parser, main
from yolact.errors import YolactError
from yolact.tracking import (TRACKERS, BaseTracker, KalmanBox, Track, Tracker, TrackerConfig, assign, box_iou,
                             build_tracker, warped_mask)
from yolact.tracking.evaluate import write_mot
from yolact.results import Results

from conftest import make_tiny_model

H, W = 240, 320


def frame(dets, shape=(H, W), with_masks=False):
    """Results from [(box, score, label)]; masks fill the boxes when asked."""
    boxes = np.array([d[0] for d in dets], np.float32).reshape(-1, 4)
    scores = np.array([d[1] for d in dets], np.float32)
    labels = np.array([d[2] for d in dets], np.int64)
    masks = np.zeros((len(dets), *shape), bool)
    if with_masks:
        for m, b in zip(masks, boxes.astype(int)):
            m[max(b[1], 0):b[3], max(b[0], 0):b[2]] = True
    return Results(boxes, scores, labels, masks, ("a", "b"), scores, shape)


def run(tracker, frames):
    """-> list per frame of {track id: box index in that frame's detections}."""
    out = []
    for dets in frames:
        res = tracker.update(frame(dets, with_masks=tracker.cfg.kind == "mask"))
        out.append({int(t): tuple(np.round(b).astype(int)) for t, b in zip(res.track_ids, res.boxes)})
    return out


def box_at(x, y, s=30):
    return [x, y, x + s, y + s]


def crossing(n=40, hide=range(18, 23)):
    """Two same-class boxes moving towards each other on nearly the same line; around the
    crossing the one behind is not detected (occluded) and the one in front scores lower."""
    frames = []
    for t in range(n):
        a = box_at(20 + 6 * t, 100)            # left -> right
        b = box_at(W - 50 - 6 * t, 104)         # right -> left
        if t in hide:
            frames.append([(a, 0.4, 0)])        # b is hidden behind a, a partly covered
        else:
            frames.append([(a, 0.9, 0), (b, 0.85, 0)])
    return frames


@pytest.mark.parametrize("kind", ["bytetrack", "mask"])
def test_crossing_same_class_keeps_identities(kind):
    out = run(Tracker(TrackerConfig(kind=kind)), crossing())
    first, last = out[0], out[-1]
    assert len(first) == 2 and len(last) == 2
    # the track that started on the left ends on the right, and vice versa
    left_id = min(first, key=lambda i: first[i][0])
    right_id = max(first, key=lambda i: first[i][0])
    assert max(last, key=lambda i: last[i][0]) == left_id
    assert min(last, key=lambda i: last[i][0]) == right_id
    assert set().union(*out) == {left_id, right_id}  # no third identity on the way


def test_the_naive_baseline_fails_the_crossing():
    """The same scene breaks the IoU baseline (no motion model, no memory): the test above is not vacuous."""
    out = run(Tracker(TrackerConfig(kind="iou")), crossing())
    assert len(set().union(*out)) > 2


def test_leaving_and_reentering_within_the_buffer_keeps_the_identity():
    frames = []
    for t in range(60):
        x = 20 + 4 * t
        visible = not (20 <= t < 35)   # 15 frames away (e.g. behind something), buffer 30
        frames.append([(box_at(x, 80), 0.9, 1)] if visible else [])
    out = run(Tracker(TrackerConfig(track_buffer=30)), frames)
    ids = {i for f in out for i in f}
    assert ids == {1}
    assert out[19] and not out[25] and out[35]
    # with a buffer shorter than the gap the identity is lost
    out = run(Tracker(TrackerConfig(track_buffer=5)), frames)
    assert len({i for f in out for i in f}) == 2


def test_new_object_gets_a_new_identity_after_confirmation():
    frames = [[(box_at(20, 20), 0.9, 0)] for _ in range(5)]
    frames += [[(box_at(20, 20), 0.9, 0), (box_at(200, 150), 0.9, 1)] for _ in range(5)]
    out = run(Tracker(), frames)
    assert out[0] == {1: (20, 20, 50, 50)}       # the first frame's tracks are confirmed at once
    assert set(out[5]) == {1}                    # a later newcomer waits one frame ...
    assert set(out[6]) == {1, 2}                 # ... then gets a new identity
    low = [[(box_at(20, 20), 0.9, 0), (box_at(200, 150), 0.3, 1)] for _ in range(5)]
    assert all(set(f) == {1} for f in run(Tracker(), low))  # too weak to start a track


def test_an_identity_never_changes_class_unless_agnostic():
    # one object whose class flips in the middle (a classifier mistake)
    frames = [[(box_at(20 + 3 * t, 50), 0.9, 0 if t < 10 else 1)] for t in range(20)]
    aware = Tracker(TrackerConfig(class_aware=True))
    out = run(aware, frames)
    ids = [next(iter(f)) for f in out if f]
    assert ids[0] != ids[-1]                     # a new identity for the new class
    agnostic = Tracker(TrackerConfig(class_aware=False))
    out = run(agnostic, frames)
    assert {i for f in out for i in f} == {1}


def test_kalman_learns_constant_velocity():
    kf = KalmanBox(np.array([50.0, 50.0, 1.0, 30.0]))
    for t in range(1, 30):
        kf.predict()
        kf.update(np.array([50.0 + 5 * t, 50.0 - 2 * t, 1.0, 30.0]))
    kf.predict()
    assert kf.mean[4] == pytest.approx(5, abs=0.05) and kf.mean[5] == pytest.approx(-2, abs=0.05)
    assert kf.box[0] == pytest.approx(50 + 5 * 30 - 15, abs=0.5)


def test_warped_mask_follows_the_box():
    mask = np.zeros((60, 80), np.uint8)
    mask[10:20, 10:30] = 1
    t = Track(1, np.array([40.0, 40.0, 120.0, 80.0]), 0, 0.9, 1, True, mask, 5)  # box in full-size pixels
    t.kf.mean[:2] += [40, 20]                      # predicted to move by (+40, +20) px
    warped = warped_mask(t, scale=4)
    ys, xs = np.nonzero(warped)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (15, 24, 20, 39)


def test_assign_is_maximum_similarity_with_a_floor():
    sim = np.array([[0.9, 0.8], [0.85, 0.1]])
    matches, rows, cols = assign(sim, 0.3)
    assert sorted(matches) == [(0, 1), (1, 0)] and rows == [] and cols == []  # 0.8 + 0.85 > 0.9 + 0.1
    matches, rows, cols = assign(np.array([[0.2]]), 0.3)
    assert matches == [] and rows == [0] and cols == [0]
    assert box_iou(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10]]))[0, 0] == pytest.approx(1 / 3)


# ---------------------------------------------------------------- the table of trackers
@pytest.mark.parametrize("name", list(TRACKERS))
def test_every_row_of_the_table_builds_and_tracks(name):
    tracker = build_tracker(name)
    assert isinstance(tracker, TRACKERS[name]) and isinstance(tracker, BaseTracker) and tracker.cfg.kind == name
    assert type(Tracker(TrackerConfig(kind=name))) is TRACKERS[name]          # the earlier spelling
    out = [tracker.update(frame(dets, with_masks=True)) for dets in crossing(n=12, hide=())]
    assert all(r.track_ids.dtype == np.int64 and len(r.track_ids) == len(r) == 2 for r in out)
    assert set(out[0].track_ids) == set(out[-1].track_ids) == {1, 2}           # two objects, two identities
    assert set(tracker.trails()) == {1, 2} and 0 < tracker.min_score <= tracker.cfg.high_score
    tracker.reset()
    assert set(tracker.update(frame(crossing(n=1)[0], with_masks=True)).track_ids) == {1, 2}


@pytest.mark.parametrize("name", list(TRACKERS))
def test_track_consumes_a_plain_generator_of_results(name):
    """``track`` takes any iterable of Results, no model: lazily, one frame out per frame in, the
    same as calling ``update`` frame by frame."""
    pulled = []

    def frames():
        for i, dets in enumerate(crossing()):
            pulled.append(i)
            yield frame(dets, with_masks=True)

    tracked = build_tracker(name).track(frames())
    first = next(tracked)
    assert pulled == [0] and set(first.track_ids) == {1, 2}
    got = [first, *tracked]
    one_by_one = build_tracker(name)
    want = [one_by_one.update(frame(dets, with_masks=True)) for dets in crossing()]
    assert len(got) == len(want) == 40
    for a, b in zip(got, want):
        assert np.array_equal(a.track_ids, b.track_ids) and np.array_equal(a.boxes, b.boxes)


def test_an_unknown_tracker_is_one_line_naming_the_choices():
    for build in (lambda: build_tracker("sort"), lambda: Tracker(TrackerConfig(kind="sort"))):
        with pytest.raises(YolactError) as err:
            build()
        msg = str(err.value)
        assert "\n" not in msg and "'sort'" in msg and all(name in msg for name in TRACKERS)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["track", "video.mp4", "--tracker", "sort"])


class EveryFrameNew(BaseTracker):
    """A tracker written outside the package: every detection at or above high_score is a new identity."""

    def _associate(self, res):
        owner = np.full(len(res), -1, np.int64)
        for d in np.nonzero(res.box_scores >= self.cfg.high_score)[0]:
            owner[d] = self._new_track(res.boxes[d].astype(np.float64), int(res.labels[d]), 1.0, None, True).id
        self.tracks = []
        return owner


def test_a_new_row_in_the_table_is_usable_everywhere(monkeypatch):
    """The extension point: one row makes a tracker buildable by name, from a config's kind, by the
    CLI's --tracker and by Predictor.track."""
    monkeypatch.setitem(TRACKERS, "new", EveryFrameNew)
    tracker = build_tracker("new", TrackerConfig(high_score=0.8), agnostic=True)
    assert type(tracker) is EveryFrameNew and tracker.cfg.kind == "new" and not tracker.cfg.class_aware
    assert [list(r.track_ids) for r in tracker.track(frame(d) for d in crossing(n=3))] == [[1, 2], [3, 4], [5, 6]]
    assert type(Tracker(TrackerConfig(kind="new"))) is EveryFrameNew
    assert build_parser().parse_args(["track", "video.mp4", "--tracker", "new"]).tracker == "new"
    model = make_tiny_model(size=64, seed=1)
    img = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    first = next(model.track(img, tracker="new", persist=True))
    assert type(model.tracker) is EveryFrameNew and len(first) > 0


# ---------------------------------------------------------------- files and metrics
@pytest.fixture(scope="module")
def synth_seq(tmp_path_factory):
    from yolact.data.synth_video import generate_videos
    root = tmp_path_factory.mktemp("mot")
    generate_videos(root, 1, 40, 120, 160, seed=2, max_objects=4)
    return root


def test_ground_truth_detections_track_perfectly_and_trackeval_reads_the_files(synth_seq, tmp_path):
    """Fed the ground truth as detections, the tracker reproduces the ground-truth identities:
    TrackEval, reading our MOTChallenge files, scores MOTA = IDF1 = HOTA = 1 (an independent check
    of both the writer and the tracker)."""
    pytest.importorskip("trackeval", reason="needs TrackEval (track extra)")
    from yolact.tracking.evaluate import evaluate_tracks

    gt = np.loadtxt(synth_seq / "shapes-01" / "gt" / "gt.txt", delimiter=",", ndmin=2)
    n_frames = 40
    tracker = Tracker()

    def frames():
        for f in range(1, n_frames + 1):
            rows = gt[gt[:, 0] == f]
            dets = [([r[2], r[3], r[2] + r[4], r[3] + r[5]], 0.95, 0) for r in rows]
            yield f, tracker.update(frame(dets, shape=(120, 160)))

    pred = tmp_path / "pred"
    write_mot(pred / "shapes-01.txt", frames())
    m = evaluate_tracks(synth_seq, pred)["shapes-01"]
    assert m["mota"] == pytest.approx(1.0) and m["idf1"] == pytest.approx(1.0) and m["num_switches"] == 0
    assert m["hota"] > 0.99


def test_cli_track_and_eval_track(synth_seq, tmp_path):
    pytest.importorskip("trackeval", reason="needs TrackEval (track extra)")
    model = make_tiny_model("yolact_resnet18_slim", size=64, classes=("circle", "square", "triangle", "star", "ring"))
    from yolact.checkpoint import save_compact
    save_compact(tmp_path / "m.pt", model)
    out = tmp_path / "out"
    assert main(["track", str(synth_seq / "shapes-01"), "--weights", str(tmp_path / "m.pt"), "--out", str(out),
                 "--save-mot", "--save-json", "--tracker", "mask", "--quiet"]) == 0
    cap = cv2.VideoCapture(str(out / "shapes-01.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 40
    cap.release()
    lines = (out / "shapes-01.jsonl").read_text().splitlines()
    assert len(lines) == 40
    first = json.loads(lines[-1])
    # the one detection record (Results.to_records), frames counted from 0 as in predict
    assert first["frame"] == 39 and first["video"] == "shapes-01" and first["time_s"] == pytest.approx(39 / 30)
    from yolact.results import RECORD_FIELDS
    assert all(set(d) == set(RECORD_FIELDS) for d in first["detections"])
    mot_frames = {int(line.split(",")[0]) for line in (out / "shapes-01.txt").read_text().splitlines()}
    assert not mot_frames or (min(mot_frames) >= 1 and max(mot_frames) <= 40)  # MOTChallenge counts from 1
    pred = tmp_path / "pred"
    pred.mkdir()
    (pred / "shapes-01.txt").write_text((out / "shapes-01.txt").read_text())
    assert main(["eval-track", "--gt", str(synth_seq), "--pred", str(pred), "--json", str(tmp_path / "m.json")]) == 0
    assert "shapes-01" in json.loads((tmp_path / "m.json").read_text())
    assert main(["eval-track", "--gt", str(synth_seq), "--pred", str(tmp_path)]) == 2  # no SEQ.txt there


# ---------------------------------------------------------------- streaming
def test_stream_keeps_order_and_matches_predict(tmp_path):
    model = make_tiny_model(size=64)
    rng = np.random.default_rng(0)
    folder = tmp_path / "frames"
    folder.mkdir()
    imgs = []
    for i in range(7):
        img = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"{i:03d}.png"), img)
        imgs.append(img)
    got = list(model.predict(str(folder), stream=True, batch_size=3, score_threshold=0.05))
    assert [Path(r.path).name for r in got] == [f"{i:03d}.png" for i in range(7)]
    for img, r in zip(imgs, got):
        want = model.predict(img, score_threshold=0.05)
        np.testing.assert_allclose(r.boxes, want.boxes, atol=1.0)
        assert np.array_equal(r.image, img)
    before = threading.active_count()
    gen = model.predict(str(folder), stream=True, batch_size=2)
    next(gen)
    gen.close()  # leaving early stops the decode and inference threads
    assert threading.active_count() <= before


def test_track_persist_keeps_identities_across_calls():
    model = make_tiny_model(size=64, seed=1)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    first = next(model.track(img, persist=True))
    second = next(model.track(img, persist=True))
    assert len(first) > 0
    assert set(second.track_ids) == set(first.track_ids)          # the same scene, the same identities
    fresh = next(model.track(img, persist=False))
    assert set(fresh.track_ids) == set(range(1, len(fresh) + 1))   # a new tracker starts from 1


def test_streaming_memory_is_flat(tmp_path):
    """2000 frames through predict(stream=True): resident memory does not grow with the video."""
    path = tmp_path / "long.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (64, 48))
    rng = np.random.default_rng(0)
    for i in range(2000):
        writer.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    writer.release()
    model = make_tiny_model(size=64)

    def rss_mb():
        with open("/proc/self/status") as f:
            return next(int(ln.split()[1]) for ln in f if ln.startswith("VmRSS:")) / 1024

    seen, marks = 0, {}
    for res in model.predict(str(path), stream=True, batch_size=8, score_threshold=0.05):
        seen += 1
        if seen in (300, 2000):
            gc.collect()
            marks[seen] = rss_mb()
    assert seen == 2000
    assert marks[2000] - marks[300] < 20, marks


def test_eval_track_scores_only_the_sequences_given(tmp_path, capsys):
    """#27 item 8: eval-track --seqs scores those sequences alone (the other needs no output)."""
    pytest.importorskip("trackeval", reason="needs TrackEval (track extra)")
    from yolact.data.synth_video import generate_videos
    from yolact.tracking.evaluate import evaluate_tracks

    root = tmp_path / "mot"
    generate_videos(root, 2, 12, 96, 128, seed=5, max_objects=3)
    seqs = sorted(p.name for p in root.iterdir() if (p / "gt" / "gt.txt").exists())
    assert len(seqs) == 2
    pred = tmp_path / "pred"
    pred.mkdir()
    gt = np.loadtxt(root / seqs[1] / "gt" / "gt.txt", delimiter=",", ndmin=2)
    (pred / f"{seqs[1]}.txt").write_text("".join(f"{int(r[0])},{int(r[1])},{r[2]},{r[3]},{r[4]},{r[5]},1,-1,-1,-1\n"
                                                 for r in gt))
    with pytest.raises(YolactError, match=seqs[0]):  # every sequence: the first has no output
        evaluate_tracks(root, pred)
    m = evaluate_tracks(root, pred, seqs=[seqs[1]])
    assert set(m) == {seqs[1], "COMBINED_SEQ"} and m[seqs[1]]["mota"] == pytest.approx(1.0)
    with pytest.raises(YolactError, match="nope"):
        evaluate_tracks(root, pred, seqs=["nope"])
    assert main(["eval-track", "--gt", str(root), "--pred", str(pred), "--seqs", seqs[1]]) == 0
    assert seqs[1] in capsys.readouterr().out
    assert main(["eval-track", "--gt", str(root), "--pred", str(pred), "--seqs", "nope"]) != 0
