"""The Label Studio ML backend against a real Label Studio server (#31).

The server (``pip install label-studio``) lives in its own virtual environment, made by
``tests/tools/label_studio_env.sh`` (``make test`` makes it): its Django/OpenCV pins clash with
the package's. The test starts it on 127.0.0.1 with SQLite in a temporary folder (no network),
serves our backend with uvicorn on another port (with an API key, which Label Studio
sends as basic auth), and drives both through label-studio-sdk:
create a polygon project and a brush project, upload an image, connect the backend, retrieve
predictions. Brush regions decode (label-studio-sdk's ``decode_rle``) to exactly the masks
``predict`` gives; polygon regions, accepted as annotations and exported by Label Studio's own
COCO converter, fill to masks with IoU >= 0.95.

``YOLACT_LABEL_STUDIO_VENV`` names another server environment; ``YOLACT_LABEL_STUDIO_URL`` (with
``YOLACT_LABEL_STUDIO_TOKEN``) reuses a running server instead of starting one.
"""
import io
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import make_tiny_model
from serve_helpers import served_in_thread

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("YOLACT_LABEL_STUDIO_VENV", ROOT / ".venv-label-studio"))
SERVER = VENV / "bin" / "label-studio"
TOKEN = "0123456789abcdef0123456789abcdef01234567"
BACKEND_KEY = "backend-key-5d1c"  # our backend's --api-key: Label Studio sends it as basic auth
START_S = 900  # first start applies Django's migrations: minutes on a busy 2-core machine

pytestmark = [
    pytest.mark.skipif(not SERVER.exists() and not os.environ.get("YOLACT_LABEL_STUDIO_URL"),
                       reason=f"no Label Studio server at {SERVER}: run tests/tools/label_studio_env.sh"),
]
label_studio_sdk = pytest.importorskip("label_studio_sdk", reason="needs label-studio-sdk (made by `make venv`)")
pytest.importorskip("uvicorn", reason="needs the serve extra")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as r:
            return json.loads(r.read()).get("status") == "UP"
    except Exception:
        return False


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    """-> (url, token) of a real Label Studio server on 127.0.0.1 (SQLite, a temporary folder)."""
    if os.environ.get("YOLACT_LABEL_STUDIO_URL"):
        yield os.environ["YOLACT_LABEL_STUDIO_URL"].rstrip("/"), os.environ.get("YOLACT_LABEL_STUDIO_TOKEN", TOKEN)
        return
    home = tmp_path_factory.mktemp("label_studio")
    if (VENV / "template" / "data").is_dir():  # migrated by label_studio_env.sh: starts in seconds, not minutes
        shutil.copytree(VENV / "template" / "data", home / "data")
    port = _free_port()
    env = dict(os.environ, HOME=str(home), LABEL_STUDIO_BASE_DATA_DIR=str(home / "data"), DJANGO_DB="sqlite",
               LATEST_VERSION_CHECK="false", COLLECT_ANALYTICS="false", SENTRY_DSN="", FRONTEND_SENTRY_DSN="",
               # the backend is on 127.0.0.1, which Label Studio refuses by default (SSRF protection)
               USE_DEFAULT_BANNED_SUBNETS="false")
    env.pop("VIRTUAL_ENV", None)
    log = open(home / "server.log", "w")
    proc = subprocess.Popen(
        [str(SERVER), "start", "--no-browser", "--port", str(port), "--internal-host", "127.0.0.1",
         "--data-dir", str(home / "data"), "--username", "test@example.com", "--password", "test-pass-123",
         "--user-token", TOKEN, "--enable-legacy-api-token"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=home)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + START_S
        while not _up(url):
            if proc.poll() is not None:
                pytest.fail(f"Label Studio exited with {proc.returncode}: {(home / 'server.log').read_text()[-2000:]}")
            assert time.time() < deadline, f"Label Studio not up after {START_S} s"
            time.sleep(2)
        yield url, TOKEN
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def model():
    return make_tiny_model(size=128, seed=1)


@pytest.fixture(scope="module")
def image():
    """A 192 x 256 picture (the conftest image, twice the size: masks of a few hundred pixels)."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
    img[20:60, 30:90] = (40, 200, 90)
    return cv2.resize(img, (256, 192), interpolation=cv2.INTER_NEAREST)


@pytest.fixture(scope="module")
def backend(model, label_studio, image):
    """Our ML backend served by uvicorn on 127.0.0.1, fetching Label Studio's uploads with the token."""
    from yolact.integrations.label_studio import create_app

    url, token = label_studio
    old = {k: os.environ.get(k) for k in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY")}
    os.environ.update(LABEL_STUDIO_URL=url, LABEL_STUDIO_API_KEY=token)
    try:
        with served_in_thread(create_app(model, model_version="tiny-1", api_key=BACKEND_KEY)) as port:
            yield f"http://127.0.0.1:{port}"
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


CONFIG = ('<View><Image name="image" value="$image"/><{tag} name="label" toName="image">'
          '<Label value="a"/><Label value="b"/><Label value="c"/></{tag}></View>')


def _project_with_predictions(label_studio, backend, image, tag):
    """A project with ``tag`` (PolygonLabels or BrushLabels), one uploaded image, our backend
    connected and predictions retrieved. -> (client, project id, task id, predictions)."""
    from label_studio_sdk import LabelStudio

    url, token = label_studio
    ls = LabelStudio(base_url=url, api_key=token)
    project = ls.projects.create(title=f"yolact {tag}", label_config=CONFIG.format(tag=tag))
    ok, png = cv2.imencode(".png", image)
    req = urllib.request.Request(f"{url}/api/projects/{project.id}/import", method="POST",
                                 headers={"Authorization": f"Token {token}",
                                          "Content-Type": "multipart/form-data; boundary=b0undary"},
                                 data=b"--b0undary\r\nContent-Disposition: form-data; name=\"file\"; "
                                      b"filename=\"picture.png\"\r\nContent-Type: image/png\r\n\r\n"
                                      + png.tobytes() + b"\r\n--b0undary--\r\n")
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.status == 201, r.read()
    [task] = list(ls.tasks.list(project=project.id))
    assert task.data["image"].startswith("/data/upload/"), task.data  # fetched with LABEL_STUDIO_URL + token
    ml = ls.ml.create(url=backend, project=project.id, title="yolact", auth_method="BASIC_AUTH",
                      basic_auth_user="labelstudio", basic_auth_pass=BACKEND_KEY)
    assert [m.url for m in ls.ml.list(project=project.id)] == [backend]
    assert ml.state in (None, "CO"), ml.state  # connected: /health and /setup answered
    ls.actions.create(id="retrieve_tasks_predictions", project=project.id, selected_items={"all": True, "excluded": []})
    predictions = list(ls.predictions.list(task=task.id))
    assert len(predictions) == 1, predictions
    return ls, project.id, task.id, predictions[0]


def test_brush_predictions_stored_by_label_studio_decode_exactly(label_studio, backend, model, image):
    from label_studio_sdk.converter.brush import decode_rle

    res = model.predict(image)
    keep = [i for i in range(len(res)) if res.masks[i].any()]
    assert keep, "the tiny model must give masks for the test to mean anything"
    _, _, _, pred = _project_with_predictions(label_studio, backend, image, "BrushLabels")
    assert pred.score == pytest.approx(float(np.mean(res.scores[keep])), abs=1e-6)
    regions = pred.result
    assert [r["id"] for r in regions] == [f"r{i}" for i in keep]
    h, w = res.image_shape
    for r, i in zip(regions, keep):
        assert r["type"] == "brushlabels" and r["value"]["brushlabels"] == [res.names[i]]
        assert (r["original_width"], r["original_height"]) == (w, h)
        assert r["score"] == pytest.approx(float(res.scores[i]))
        decoded = np.reshape(decode_rle(r["value"]["rle"]), (h, w, 4))[:, :, 3] > 0
        np.testing.assert_array_equal(decoded, res.masks[i])


def test_polygon_predictions_accepted_and_exported_as_coco_match_predict(label_studio, backend, model, image):
    from pycocotools import mask as mask_utils

    res = model.predict(image)
    # this time the backend holds a personal access token (Label Studio's default kind), not the legacy one
    url, token = label_studio
    req = urllib.request.Request(f"{url}/api/token/", method="POST", headers={"Authorization": f"Token {token}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        pat = json.loads(r.read())["token"]
    assert pat.count(".") == 2
    os.environ["LABEL_STUDIO_API_KEY"] = pat
    try:
        ls, project, task, pred = _project_with_predictions(label_studio, backend, image, "PolygonLabels")
    finally:
        os.environ["LABEL_STUDIO_API_KEY"] = token
    regions = pred.result
    assert regions and all(r["type"] == "polygonlabels" for r in regions)
    for r in regions:
        pts = np.asarray(r["value"]["points"])
        assert pts.ndim == 2 and pts.shape[1] == 2 and (pts >= 0).all() and (pts <= 100).all()  # percent
    # the annotator accepts the predictions, and Label Studio's own COCO converter exports them
    ls.actions.create(id="predictions_to_annotations", project=project, selected_items={"all": True, "excluded": []})
    url, token = label_studio
    req = urllib.request.Request(f"{url}/api/projects/{project}/export?exportType=COCO&download_resources=false",
                                 headers={"Authorization": f"Token {token}"})
    with urllib.request.urlopen(req, timeout=120) as r:
        data = r.read()
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        coco = json.loads(z.read("result.json"))
    h, w = res.image_shape
    names = {c["id"]: c["name"] for c in coco["categories"]}
    exported = {}  # detection index -> union of its exported polygons
    assert len(coco["annotations"]) == len(regions)
    for ann in coco["annotations"]:
        # the region it came from: its points, from percent to pixels (r{i}_{j}: part j of detection i)
        seg = np.asarray(ann["segmentation"][0], np.float64)
        [rid] = [r["id"] for r in regions if len(r["value"]["points"]) * 2 == len(seg) and np.allclose(
            np.asarray(r["value"]["points"]) * [w / 100, h / 100], seg.reshape(-1, 2), atol=0.05)]
        i = int(rid[1:].split("_")[0])
        assert names[ann["category_id"]] == res.names[i]
        rle = mask_utils.merge(mask_utils.frPyObjects(ann["segmentation"], h, w))
        exported[i] = exported.get(i, np.zeros((h, w), bool)) | mask_utils.decode(rle).astype(bool)
    # Label Studio polygons have no holes (BrushLabels keep them): a mask with holes is compared
    # with its holes filled
    from conftest import hole_pixels
    big = [i for i in exported if res.masks[i].sum() >= 100]
    assert big, "no mask large enough to compare"
    for i in big:
        want = res.masks[i] | hole_pixels(res.masks[i].astype(np.uint8)).astype(bool)
        inter = (exported[i] & want).sum()
        union = (exported[i] | want).sum()
        assert inter / union >= 0.95, (i, inter / union)
