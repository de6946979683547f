"""Video frame numbering: one convention in predict and track records (0-based ``frame``),
MOTChallenge files 1-based as MOT requires (issue #27 item 7)."""
import json

import numpy as np

from yolact.prediction.sinks import Frame, JsonLinesSink, MotSink
from yolact.results import Results


def tracked_result():
    masks = np.zeros((1, 20, 30), bool)
    masks[0, 5:10, 5:15] = True
    return Results(boxes=np.array([[5, 5, 15, 10]], np.float32), scores=np.array([0.9], np.float32),
                   labels=np.array([0]), masks=masks, class_names=("person",),
                   box_scores=np.array([0.9], np.float32), image_shape=(20, 30),
                   track_ids=np.array([7]))


def test_jsonl_frames_are_0_based_and_mot_frames_1_based(tmp_path):
    jl, mot = JsonLinesSink(tmp_path), MotSink(tmp_path)
    for sink in (jl, mot):
        sink.open_video("clip", 10.0)
        for i in range(3):
            sink.add(tracked_result(), Frame(source="clip.mp4", video="clip.mp4", index=i, fps=10.0))
        sink.close_video()
    lines = [json.loads(s) for s in (tmp_path / "clip.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in lines] == [0, 1, 2]
    assert [r["time_s"] for r in lines] == [0.0, 0.1, 0.2]      # frame / fps, the first at 0 s
    mot_frames = [int(s.split(",")[0]) for s in (tmp_path / "clip.txt").read_text().splitlines()]
    assert mot_frames == [1, 2, 3]                              # the same frames, MOT's 1-based numbers
