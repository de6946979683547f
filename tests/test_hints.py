"""Run hints (yolact.prediction.hints): --slice suggested once for large images with small objects."""
import cv2
import numpy as np
import pytest

from yolact.cli import main
from yolact.prediction.hints import SliceHintSink
from yolact.prediction.sinks import Frame
from yolact.results import Results


def _results(h, w, boxes):
    boxes = np.array(boxes, np.float32).reshape(-1, 4)
    n = len(boxes)
    return Results(boxes=boxes, scores=np.full(n, 0.9, np.float32), labels=np.zeros(n, np.int64),
                   masks=np.zeros((n, h, w), bool), class_names=("a",), box_scores=np.full(n, 0.9, np.float32),
                   image_shape=(h, w))


@pytest.mark.parametrize("h, w, boxes, said", [
    (4000, 6000, [], True),                                   # large, nothing found
    (4000, 6000, [[10, 10, 70, 70], [100, 100, 150, 160]], True),  # large, objects a few input pixels wide
    (4000, 6000, [[0, 0, 3000, 2000]], False),                # large, but its object is large
    (400, 8000, [[307, 18, 5098, 400]], True),                # panorama: a wide (false) detection
    (1000, 1000, [], False),                                  # 3.3x a 550 input: not much larger
    (480, 640, [], False),
])
def test_hint_only_for_large_images_with_small_or_no_objects(h, w, boxes, said):
    lines = []
    sink = SliceHintSink(550, write=lines.append)
    sink.add(_results(h, w, boxes), Frame(source="big.jpg"))
    assert bool(lines) == said
    if said:
        assert lines[0].startswith(f"note: big.jpg is {w}x{h}") and "--slice" in lines[0]


def test_hint_once_per_run():
    lines = []
    sink = SliceHintSink(550, write=lines.append)
    for k in range(3):
        sink.add(_results(4000, 6000, []), Frame(source=f"{k}.jpg"))
    assert len(lines) == 1


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("hint")
    rng = np.random.default_rng(0)
    big = np.full((900, 1200, 3), 90, np.uint8)
    for x, y in rng.integers(50, 850, (12, 2)):
        cv2.circle(big, (int(x), int(y)), 8, (40, 200, 240), -1)  # small shapes
    cv2.imwrite(str(root / "big.png"), big)
    cv2.imwrite(str(root / "small.png"), cv2.resize(big, (240, 180)))
    return root


def test_cli_predict_notes_slice_once_and_not_when_sliced(images, tmp_path, capsys):
    """New-user report: a large image predicted without --slice gave no hint."""
    assert main(["predict", str(images / "big.png"), str(images / "big.png"), "--out", str(tmp_path / "a")]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "1200x900" in notes[0] and "--slice" in notes[0]
    assert main(["predict", str(images / "big.png"), "--slice", "640", "--out", str(tmp_path / "b")]) == 0
    assert "--slice 640 predicts" not in capsys.readouterr().out
    assert main(["predict", str(images / "small.png"), "--out", str(tmp_path / "c")]) == 0
    assert "note:" not in capsys.readouterr().out
