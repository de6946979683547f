"""Open Inference Protocol v2 (issue #30 item 4), exercised with tritonclient.http's own client
against a real uvicorn server on 127.0.0.1."""
import json
import struct

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


# ---------------------------------------------------------------- request checks (new-user findings)
def _post(client, path, body, headers=None):
    """-> (status, JSON body, headers) of a raw POST to the server tritonclient talks to."""
    import urllib.error
    import urllib.request

    url = str(client._parsed_url).rstrip("/") + path
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read()), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), dict(e.headers)


def _binary(header: dict, data: bytes):
    head = json.dumps(header).encode()
    return head + data, {"Inference-Header-Content-Length": str(len(head)),
                         "Content-Type": "application/octet-stream"}


def _bytes_input(size, shape=(1,)):
    return {"name": "image", "shape": list(shape), "datatype": "BYTES", "parameters": {"binary_data_size": size}}


@pytest.mark.parametrize("body, blamed", [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "JSON object"),
    (b'{"inputs": 5}', "non-empty 'inputs' list"),
    (b'{"inputs": []}', "non-empty 'inputs' list"),
    (b'{"inputs": ["image"]}', "inputs[0] must be an object"),
    (b'{"inputs": [{"name": "image", "shape": "1", "datatype": "BYTES", "data": ["x"]}]}', "'shape' must be a list"),
    (b'{"inputs": [{"name": "image", "shape": [1], "datatype": 7, "data": ["x"]}]}', "'datatype' must be a string"),
    (b'{"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES"}]}', "neither 'data' nor"),
    (b'{"inputs": [{"name": "picture", "shape": [1], "datatype": "BYTES", "data": ["x"]}]}',
     "input 'image' is missing"),
    (b'{"inputs": [{"name": "image", "shape": [2], "datatype": "BYTES", "data": ["x", "y"]}]}', "must have shape [1]"),
    (b'{"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [5]}]}', "must be a string"),
    (b'{"inputs": [{"name": "image", "shape": [2, 2, 3], "datatype": "UINT8", "data": [1, 2]}]}', "needs 12 values"),
    (b'{"inputs": [{"name": "image", "shape": [2, 2], "datatype": "UINT8", "data": [1, 2, 3, 4]}]}', "[H, W, 3]"),
])
def test_malformed_bodies_name_their_fault(served, body, blamed):
    # New-user finding: a malformed body was blamed on score_threshold (or was a 500).
    _, client = served
    status, answer, _ = _post(client, "/v2/models/yolact/infer", body)
    assert status == 400, answer
    assert set(answer) == {"error"} and isinstance(answer["error"], str)  # the protocol's error shape
    assert blamed in answer["error"] and "score_threshold" not in answer["error"]


@pytest.mark.parametrize("make, blamed", [
    # binary_data_size says more than arrived (a truncated upload)
    (lambda png: _binary({"inputs": [_bytes_input(len(png) + 4)]}, (struct.pack("<I", len(png)) + png)[:-10]),
     "declare"),
    # the element's own length prefix runs past its binary data
    (lambda png: _binary({"inputs": [_bytes_input(len(png) + 4)]}, struct.pack("<I", len(png) + 99) + png),
     "declares"),
    # a short UINT8 tensor
    (lambda png: _binary({"inputs": [{"name": "image", "shape": [4, 4, 3], "datatype": "UINT8",
                                      "parameters": {"binary_data_size": 40}}]}, bytes(40)), "needs 48 bytes"),
    # binary data after the header but no input declares any
    (lambda png: _binary({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": ["x"]}]}, png),
     "declare 0 byte"),
])
def test_short_binary_tensors_are_one_clear_400(served, image, make, blamed):
    # New-user finding: a short BYTES/UINT8 binary tensor was reported late (as an undecodable
    # image or a shape mismatch after the other inputs were read).
    _, client = served
    body, headers = make(png_bytes(image))
    status, answer, _ = _post(client, "/v2/models/yolact/infer", body, headers)
    assert status == 400 and set(answer) == {"error"} and blamed in answer["error"], answer


@pytest.mark.parametrize("params, blamed", [
    ({"score_threshold": "high"}, "score_threshold must be"),
    ({"score_threshold": 2}, "score_threshold must be"),
    ({"top_k": 0.5}, "top_k must be"),
    ({"score_treshold": 0.3}, "unknown parameter(s) score_treshold"),
])
def test_bad_parameters_are_named(served, params, blamed):
    _, client = served
    body = json.dumps({"inputs": [{"name": "image", "shape": [1, 1, 3], "datatype": "UINT8", "data": [0, 0, 0]}],
                       "parameters": params}).encode()
    status, answer, _ = _post(client, "/v2/models/yolact/infer", body)
    assert status == 400 and blamed in answer["error"], answer


def test_tritonclient_sees_the_message(served, image):
    _, client = served
    inp = httpclient.InferInput("image", [2, 2, 3], "UINT8")
    inp.set_data_from_numpy(np.zeros((2, 2, 3), np.uint8))
    inp._raw_data = inp._raw_data[:-3]  # a short binary tensor, as a buggy client would send it
    inp._parameters["binary_data_size"] = len(inp._raw_data)
    with pytest.raises(httpclient.InferenceServerException, match="needs 12 bytes, its binary data has 9"):
        client.infer("yolact", [inp])


def test_outputs_selection_and_versioned_routes(served, image):
    model, client = served
    inp = httpclient.InferInput("image", list(image.shape), "UINT8")
    inp.set_data_from_numpy(np.ascontiguousarray(image))
    outs = [httpclient.InferRequestedOutput("labels"), httpclient.InferRequestedOutput("boxes")]
    result = client.infer("yolact", [inp], model_version="1", outputs=outs, parameters={"score_threshold": 0.05},
                          request_id="req-7")
    response = result.get_response()
    assert [o["name"] for o in response["outputs"]] == ["labels", "boxes"] and response["id"] == "req-7"
    ref = model.predict([image], score_threshold=0.05, top_k=100, keep_image=False)[0]
    assert result.as_numpy("labels").tolist() == ref.labels.tolist()
    assert client.is_model_ready("yolact", "1") and client.get_model_metadata("yolact", "1")["name"] == "yolact"
    assert client.get_server_metadata()["extensions"] == ["binary_tensor_data"]
    echoed = client.infer("yolact", [inp], outputs=outs[:1], headers={"X-Request-ID": "trace-9"}).get_response()
    assert echoed["id"] == "trace-9"  # no id in the body: the X-Request-ID
    with pytest.raises(httpclient.InferenceServerException, match="unknown output"):
        client.infer("yolact", [inp], outputs=[httpclient.InferRequestedOutput("logits")])


def test_unknown_model_and_version_are_404_in_the_protocol_shape(served):
    _, client = served
    for path, blamed in (("/v2/models/resnet/infer", "'resnet' is not served"),
                         ("/v2/models/yolact/versions/2/infer", "no version '2'")):
        status, answer, _ = _post(client, path, b"{}")
        assert status == 404 and set(answer) == {"error"} and blamed in answer["error"], answer
    with pytest.raises(httpclient.InferenceServerException, match="not served here"):
        client.get_model_metadata("resnet")
    assert not client.is_model_ready("resnet")


def test_v2_errors_outside_the_routes_take_the_protocol_shape(image):
    # 401 (API key), 503 (draining) and 500 (a model failure) come from the app's handlers and
    # middleware: under /v2 they are {"error": "..."} too, with no traceback.
    from fastapi.testclient import TestClient

    class Failing:
        cfg = make_tiny_model().cfg

        def predict(self, images, **kw):
            if images[0].shape[:2] == (16, 16):  # the request below, not the warm-up
                raise RuntimeError("secret internal detail")
            return make_tiny_model().predict(images, **kw)

    app = create_app(Failing(), ServeSettings(api_key="k"))
    body = json.dumps({"inputs": [{"name": "image", "shape": [16, 16, 3], "datatype": "UINT8",
                                   "data": [0] * 768}]}).encode()
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/v2/models/yolact/infer", content=body)
        assert r.status_code == 401 and set(r.json()) == {"error"} and "API key" in r.json()["error"]
        r = c.post("/v2/models/yolact/infer", content=body, headers={"X-API-Key": "k", "X-Request-ID": "r1"})
        assert r.status_code == 500 and set(r.json()) == {"error"} and r.headers["x-request-id"] == "r1"
        assert "secret" not in r.text and "Traceback" not in r.text
        assert c.get("/v1/model").json()["error"]["status"] == 401  # /v1 keeps its own shape
        app.state.server.drain()
        r = c.post("/v2/models/yolact/infer", content=body, headers={"X-API-Key": "k"})
        assert r.status_code == 503 and r.headers["retry-after"] and set(r.json()) == {"error"}
        assert c.get("/v2/health/ready").status_code == 503
