"""The README's "Edge files: I/O contract" example, run as it is written: it reads
``yolact.tflite`` (the demo model's whole pipeline) and ``image.jpg`` with only ai_edge_litert,
numpy and OpenCV, and its detections are PyTorch's. Needs the litert extra (its own
environment: see README), so it skips elsewhere."""
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("litert_torch", reason="needs the litert extra: pip install 'yolact[litert]'")
pytest.importorskip("ai_edge_litert.interpreter", reason="needs the litert extra: pip install 'yolact[litert]'")
cv2 = pytest.importorskip("cv2", reason="needs opencv")

README = Path(__file__).resolve().parents[1] / "README.md"


def example() -> str:
    """The python block after "Running the `.tflite` with only" in the README."""
    text = README.read_text()
    start = text.index("Running the `.tflite` with only")
    return re.search(r"```python\n(.*?)```", text[start:], re.S).group(1)


def test_example_block_is_found():
    code = example()
    assert "ai_edge_litert" in code and "import yolact" not in code and "from yolact" not in code


@pytest.mark.slow  # one LiteRT conversion of the demo model: about a minute on the shared 2-core machine
def test_readme_example_runs_and_matches_pytorch(tmp_path, monkeypatch, capsys):
    import yolact
    from yolact.data.synth import make_image
    from yolact.deploy.litert import export_litert

    demo = yolact.load("demo")
    export_litert(demo, tmp_path / "yolact.tflite")
    img = make_image(np.random.default_rng(7), 192, 192, style="simple", max_objects=4)[0]
    # twice the model's size, each pixel a 2x2 block: the example's cv2 resize back to 192 is
    # then exactly the pixels PyTorch sees, so the detections must agree; PNG bytes (lossless)
    img = np.repeat(np.repeat(img, 2, 0), 2, 1)
    cv2.imencode(".png", img)[1].tofile(str(tmp_path / "image.jpg"))
    monkeypatch.chdir(tmp_path)
    ns = {}
    exec(compile(example(), "README.md", "exec"), ns)  # noqa: S102 - the documented example itself
    printed = capsys.readouterr().out
    want = demo.predict(cv2.imread("image.jpg"))
    assert len(want) > 0 and printed.count("class ") == len(want)
    keep = ns["keep"]
    labels = ns["labels"][keep]
    assert sorted(labels.tolist()) == sorted(want.labels.tolist())
    got_boxes, got_masks = ns["boxes"], ns["masks"]
    assert got_masks.shape == (len(want), 384, 384)
    for box, mask, label in zip(want.boxes, want.masks, want.labels):
        j = int(np.argmin(np.where(labels == label, np.abs(got_boxes - box).max(1), np.inf)))
        assert np.abs(got_boxes[j] - box).max() <= 1.5  # PyTorch's boxes are truncated to integers
        inter, union = (got_masks[j] & mask).sum(), (got_masks[j] | mask).sum()
        assert inter / max(union, 1) >= 0.97
