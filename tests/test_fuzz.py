"""Bad input across the entry points: truncated, bit-flipped and spliced checkpoints, images,
COCO JSON and YOLO files. Each case must succeed or raise YolactError with one line naming
the file: never another exception, never a hang. The fast suite runs a few hundred cases;
``-m slow`` runs many more."""
import contextlib
import io
import json
import os
import shutil
import signal
from pathlib import Path

import cv2
import numpy as np
import pytest

import yolact
from yolact.checkpoint import save_compact
from yolact.cli import main
from yolact.data.coco import CocoDataset
from yolact.data.images import read_image
from yolact.data.sources import convert_to_coco
from yolact.data.synth import generate
from yolact.data.yolo import coco_to_yolo
from yolact.errors import YolactError

from conftest import make_tiny_model

CASE_SECONDS = 20  # a case that runs longer is a hang


@contextlib.contextmanager
def deadline(seconds, what):
    def fire(signum, frame):
        raise TimeoutError(f"{what}: still running after {seconds} s")
    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# ---------------------------------------------------------------- mutations
def truncate(data: bytes, rng) -> bytes:
    return data[:int(rng.integers(0, len(data)))]


def bit_flip(data: bytes, rng) -> bytes:
    b = bytearray(data)
    for _ in range(int(rng.integers(1, 9))):
        i = int(rng.integers(0, len(b)))
        b[i] ^= 1 << int(rng.integers(0, 8))
    return bytes(b)


def splice(data: bytes, rng, other: bytes = None) -> bytes:
    other = other if other is not None else rng.integers(0, 256, len(data), dtype=np.uint8).tobytes()
    return data[:int(rng.integers(0, len(data)))] + other[int(rng.integers(0, len(other))):]


def overwrite(data: bytes, rng) -> bytes:
    b = bytearray(data)
    i = int(rng.integers(0, len(b)))
    n = int(rng.integers(1, 64))
    b[i:i + n] = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    return bytes(b)


MUTATIONS = (truncate, bit_flip, splice, overwrite)

ODD_VALUES = (None, -1, 0, 1e308, -1e308, 2 ** 70, "x", "", [], {}, True, [[1, 2]], [0, 0, 0, 0], [-5, -5, 1e9, 1e9],
              {"counts": "??", "size": [1, 1]}, {"counts": [5], "size": [3, 3]})


def mutate_json(obj, rng):
    """Replace or delete one random node of a parsed JSON document."""
    obj = json.loads(json.dumps(obj))
    paths = []

    def walk(node, path):
        paths.append(path)
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, path + [k])
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, path + [i])

    walk(obj, [])
    path = paths[int(rng.integers(1, len(paths)))]
    parent = obj
    for p in path[:-1]:
        parent = parent[p]
    if rng.random() < 0.25:
        del parent[path[-1]]
    else:
        parent[path[-1]] = ODD_VALUES[int(rng.integers(0, len(ODD_VALUES)))]
    return obj


def check_error(e: YolactError, path: Path):
    msg = str(e)
    assert "\n" not in msg, f"multi-line error for {path}: {msg!r}"
    assert path.name in msg, f"error does not name {path.name}: {msg!r}"


# ---------------------------------------------------------------- material
@pytest.fixture(scope="module")
def material(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    generate(root / "ds", n_train=3, n_val=1, size=96, seed=5, max_objects=3)
    coco_to_yolo(root / "ds" / "train.json", root / "ds" / "train", root / "yolo")  # fills holes (tested elsewhere)
    model = make_tiny_model("yolact_resnet18_slim", size=64, classes=("circle", "square", "triangle", "star", "ring"))
    save_compact(root / "model.pt", model)
    img = cv2.imread(str(sorted((root / "ds" / "train").glob("*.jpg"))[0]))
    cv2.imwrite(str(root / "image.png"), img)
    cv2.imwrite(str(root / "image.jpg"), img)
    return root, model


def cases(n_fast, n_slow):
    return [pytest.param(i, marks=pytest.mark.slow) if i >= n_fast else i for i in range(n_fast + n_slow)]


# ---------------------------------------------------------------- entry points
@pytest.mark.parametrize("case", cases(40, 200))
def test_checkpoint_fuzz(material, tmp_path, case):
    root, _ = material
    rng = np.random.default_rng(1000 + case)
    data = (root / "model.pt").read_bytes()
    bad = tmp_path / "model.pt"
    bad.write_bytes(MUTATIONS[case % len(MUTATIONS)](data, rng))
    with deadline(CASE_SECONDS, bad):
        try:
            model = yolact.load(bad)
            model.predict(np.zeros((48, 64, 3), np.uint8))
        except YolactError as e:
            check_error(e, bad)


@pytest.mark.parametrize("case", cases(80, 300))
def test_image_fuzz(material, tmp_path, case):
    root, model = material
    rng = np.random.default_rng(2000 + case)
    src = root / ("image.png" if case % 2 else "image.jpg")
    other = (root / ("image.jpg" if case % 2 else "image.png")).read_bytes()
    mutation = MUTATIONS[(case // 2) % len(MUTATIONS)]
    data = mutation(src.read_bytes(), rng, other) if mutation is splice else mutation(src.read_bytes(), rng)
    bad = tmp_path / src.name
    bad.write_bytes(data)
    with deadline(CASE_SECONDS, bad):
        try:
            img = read_image(bad)
        except YolactError as e:
            check_error(e, bad)
            return
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
        model.predict(img)


def _coco_case(root, tmp_path, case, data: bytes):
    ann = tmp_path / "train.json"
    ann.write_bytes(data)
    with deadline(CASE_SECONDS, ann):
        try:
            ds = CocoDataset(ann, root / "ds" / "train", yolact.get_config("yolact_resnet18_slim").replace(max_size=64),
                             train=True, seed=case, verbose=False)
            for i in range(len(ds)):
                ds[i]
            for i in range(len(ds)):
                ds.load_sample(i)
        except YolactError as e:
            check_error(e, ann)


@pytest.mark.parametrize("case", cases(60, 300))
def test_coco_json_fuzz(material, tmp_path, case):
    root, _ = material
    rng = np.random.default_rng(3000 + case)
    text = (root / "ds" / "train.json").read_bytes()
    if case % 3 == 0:
        data = MUTATIONS[(case // 3) % len(MUTATIONS)](text, rng)
    else:  # structural: well-formed JSON with one wrong or missing value
        data = json.dumps(mutate_json(json.loads(text), rng)).encode()
    _coco_case(root, tmp_path, case, data)


@pytest.mark.parametrize("case", cases(60, 300))
def test_yolo_fuzz(material, tmp_path, case):
    root, _ = material
    rng = np.random.default_rng(4000 + case)
    yolo = tmp_path / "yolo"
    shutil.copytree(root / "yolo", yolo)
    yaml_path = yolo / "data.yaml"
    text = yaml_path.read_text().replace(str(root / "yolo"), str(yolo))
    yaml_path.write_text(text)
    labels = sorted(yolo.rglob("*.txt"))
    target = yaml_path if case % 4 == 0 else labels[case % len(labels)]
    target.write_bytes(MUTATIONS[case % len(MUTATIONS)](target.read_bytes(), rng))
    out = tmp_path / "coco.json"
    with deadline(CASE_SECONDS, target):
        try:
            split = convert_to_coco(yaml_path, out, "yolo")
            ds = CocoDataset(split.ann, split.images, yolact.get_config("yolact_resnet18_slim").replace(max_size=64),
                             verbose=False)
            for i in range(len(ds)):
                ds[i]
        except YolactError as e:
            msg = str(e)
            assert "\n" not in msg, msg
            assert any(p.name in msg for p in (target, yaml_path, out)), f"error names no file: {msg!r}"


@pytest.mark.parametrize("what", ["checkpoint", "image", "coco"])
def test_cli_reports_one_line(material, tmp_path, what):
    """Through the command line: exit status 2 and one 'yolact: error:' line on stderr."""
    root, _ = material
    rng = np.random.default_rng(7)
    if what == "checkpoint":
        bad = tmp_path / "model.pt"
        bad.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
        argv = ["predict", "--weights", str(bad), str(root / "image.png"), "--out", str(tmp_path / "o")]
    elif what == "image":
        bad = tmp_path / "image.jpg"
        bad.write_bytes((root / "image.jpg").read_bytes()[:100])
        argv = ["predict", "--weights", str(root / "model.pt"), str(bad), "--out", str(tmp_path / "o")]
    else:
        bad = tmp_path / "train.json"
        bad.write_bytes((root / "ds" / "train.json").read_bytes()[:-40])
        argv = ["eval", "--weights", str(root / "model.pt"), "--ann", str(bad), "--images", str(root / "ds" / "train")]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(argv)
    lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
    assert rc == 2
    assert len(lines) == 1 and lines[0].startswith("yolact: error: ") and bad.name in lines[0], lines
    assert "Traceback" not in err.getvalue()
    assert os.path.exists(bad)  # nothing of the user's was touched
