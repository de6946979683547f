"""Open Inference Protocol v2 (issue #30 item 4), exercised with tritonclient.http's own client
against a real uvicorn server on 127.0.0.1."""
import json

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="needs the serve extra: pip install 'yolact[serve]'")
uvicorn = pytest.importorskip("uvicorn", reason="needs the serve extra: pip install 'yolact[serve]'")
httpclient = pytest.importorskip("tritonclient.http", reason="needs tritonclient[http] (the test extra)")

from pycocotools import mask as mask_utils  # noqa: E402

from yolact.data.synth import make_image  # noqa: E402
from yolact.serve.app import ServeSettings, create_app  # noqa: E402

from conftest import make_tiny_model  # noqa: E402
from serve_helpers import png_bytes, served_in_thread  # noqa: E402


@pytest.fixture(scope="module")
def served():
    model = make_tiny_model()
    app = create_app(model, ServeSettings())
    with served_in_thread(app, lambda: app.state.server.ready) as port:
        yield model, httpclient.InferenceServerClient(f"127.0.0.1:{port}")


@pytest.fixture(scope="module")
def image():
    return make_image(np.random.default_rng(5), 96, 128)[0]


def _outputs(result):
    names = ("boxes", "scores", "box_scores", "labels", "class_names", "masks")
    return {n: result.as_numpy(n) for n in names}


def _check_against_predict(model, image, out, thr=0.05):
    ref = model.predict([image], score_threshold=thr, top_k=100, keep_image=False)[0].to_records("rle")
    n = len(ref)
    assert n > 0
    assert out["boxes"].shape == (n, 4) and out["boxes"].dtype == np.float32
    assert out["labels"].dtype == np.int32 and out["labels"].tolist() == [r["label"] for r in ref]
    np.testing.assert_allclose(out["boxes"], np.array([r["box"] for r in ref], np.float32), atol=1e-3)
    np.testing.assert_allclose(out["scores"], [r["score"] for r in ref], atol=1e-5)
    assert [c.decode() if isinstance(c, bytes) else c for c in out["class_names"]] == [r["class_name"] for r in ref]
    rle = json.loads(out["masks"][0])
    assert rle == ref[0]["segmentation"] and mask_utils.decode(
        {"size": rle["size"], "counts": rle["counts"].encode()}).shape == image.shape[:2]


def test_health_and_metadata(served):
    model, client = served
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("yolact")
    meta = client.get_model_metadata("yolact")
    assert meta["name"] == "yolact" and meta["inputs"][0]["name"] == "image"
    assert {o["name"]: o["datatype"] for o in meta["outputs"]} == {
        "boxes": "FP32", "scores": "FP32", "box_scores": "FP32", "labels": "INT32", "class_names": "BYTES",
        "masks": "BYTES"}


@pytest.mark.parametrize("binary_out", [True, False])
def test_infer_encoded_bytes(served, image, binary_out):
    model, client = served
    inp = httpclient.InferInput("image", [1], "BYTES")
    inp.set_data_from_numpy(np.array([png_bytes(image)], dtype=object), binary_data=True)  # JSON cannot carry a PNG
    outs = [httpclient.InferRequestedOutput(n, binary_data=binary_out) for n in
            ("boxes", "scores", "box_scores", "labels", "class_names", "masks")]
    result = client.infer("yolact", [inp], outputs=outs, parameters={"score_threshold": 0.05})
    _check_against_predict(model, image, _outputs(result))


def test_infer_uint8_tensor_and_top_k(served, image):
    model, client = served
    inp = httpclient.InferInput("image", list(image.shape), "UINT8")
    inp.set_data_from_numpy(np.ascontiguousarray(image))
    result = client.infer("yolact", [inp], parameters={"score_threshold": 0.05})
    _check_against_predict(model, image, _outputs(result))
    one = client.infer("yolact", [inp], parameters={"score_threshold": 0.05, "top_k": 1})
    assert one.as_numpy("boxes").shape[0] <= 1


def test_bad_input_is_a_v2_error(served):
    _, client = served
    inp = httpclient.InferInput("image", [1], "BYTES")
    inp.set_data_from_numpy(np.array([b"not an image"], dtype=object))
    with pytest.raises(httpclient.InferenceServerException) as e:
        client.infer("yolact", [inp])
    assert "Traceback" not in str(e.value)
    wrong = httpclient.InferInput("image", [2, 2], "FP32")
    wrong.set_data_from_numpy(np.zeros((2, 2), np.float32))
    with pytest.raises(httpclient.InferenceServerException, match="BYTES or UINT8"):
        client.infer("yolact", [wrong])


def test_uint8_values_out_of_range_are_a_400(served):
    # New-user finding: 300 or -1 in a JSON UINT8 tensor was an OverflowError and a 500.
    _, client = served
    import urllib.error
    import urllib.request

    url = str(client._parsed_url).rstrip("/")  # the server tritonclient talks to
    for value in (300, -1):
        body = json.dumps({"inputs": [{"name": "image", "shape": [2, 2, 3], "datatype": "UINT8",
                                       "data": [value] * 12}]}).encode()
        req = urllib.request.Request(f"{url}/v2/models/yolact/infer", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=30)
        assert e.value.code == 400
        assert "0..255" in json.loads(e.value.read())["error"]
