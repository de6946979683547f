"""Variable-frame-rate video (issue #26 item 11): records carry each frame's container time,
and one line says the overlay was written at a constant rate."""
import json

import numpy as np
import pytest

from yolact.prediction.runner import run
from yolact.prediction.sinks import JsonLinesSink, RecordSink
from yolact.prediction.sources import read_frames

from conftest import make_tiny_model
from video_helpers import write_vfr_mp4


@pytest.fixture(scope="module")
def vfr(tmp_path_factory):
    path = tmp_path_factory.mktemp("vfr") / "pause.mp4"
    write_vfr_mp4(path)  # 10 fps, frame 5 lasts 2 s
    return path


def test_frames_carry_their_container_time(vfr):
    frames = list(read_frames(str(vfr)))
    assert len(frames) == 20
    times = [t for _, _, t in frames]
    assert times[:6] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    assert times[6] == pytest.approx(2.5) and times[19] == pytest.approx(3.8)
    assert [round(float(f.mean()) / 10) for f, _, _ in frames][:8] == list(range(8))  # the frames, in order


def test_records_and_jsonl_carry_time_s_and_a_line_says_vfr(vfr, tmp_path, capsys):
    model = make_tiny_model()
    sinks = [RecordSink(tmp_path / "results.json"), JsonLinesSink(tmp_path)]
    run(model, [str(vfr)], sinks, progress=False, score_threshold=0.0, top_k=2)
    lines = [json.loads(x) for x in (tmp_path / "pause.jsonl").read_text().splitlines()]
    assert [ln["frame"] for ln in lines] == list(range(20))
    assert lines[6]["time_s"] == pytest.approx(2.5) and lines[5]["time_s"] == pytest.approx(0.5)
    records = json.loads((tmp_path / "results.json").read_text())
    assert {r["frame"]: r["time_s"] for r in records}[6] == pytest.approx(2.5)
    err = capsys.readouterr().err
    # the container's nominal rate is the average (20 frames in 3.9 s: 5.13 fps)
    assert err.count("warning: pause.mp4: variable frame rate (frame ") == 1
    assert "an overlay video is written at a constant" in err


def test_a_constant_rate_video_says_nothing(tmp_path, capsys):
    import cv2

    path = tmp_path / "cfr.mp4"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for k in range(12):
        w.write(np.full((48, 64, 3), 10 * k, np.uint8))
    w.release()
    times = [t for _, _, t in read_frames(str(path))]
    assert times == pytest.approx([k / 10 for k in range(12)])
    run(make_tiny_model(), [str(path)], [JsonLinesSink(tmp_path)], progress=False)
    assert "variable frame rate" not in capsys.readouterr().err
