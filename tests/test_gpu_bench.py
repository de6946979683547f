"""benchmarks/gpu.py cannot rot: its CPU quick mode runs here, and the inference path it times is
the package's own (bit for bit what ``model.predict`` returns)."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import load_benchmark
from yolact.data.synth import make_image

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu.py"
CPU_SKIPS = ("fp16 is for GPUs", "CUDA graphs need a GPU", "compile modes are not run with --quick on the CPU")


def load_bench():
    return load_benchmark("gpu")


def positive_timing(t):
    assert t["iterations"] >= 1
    for key in ("p50_ms", "p90_ms", "images_per_s"):
        assert math.isfinite(t[key]) and t[key] > 0, (key, t)
    assert t["p90_ms"] >= t["p50_ms"]


def test_quick_cpu_run_writes_a_complete_json(tmp_path):
    out = tmp_path / "bench.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    # A generous budget: the machine may be shared; the default quick run takes seconds.
    proc = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--json", str(out),
                           "--budget", "240", "--hard-limit", "280", "--iters", "2", "--max-seconds", "1"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(out.read_text())
    assert doc["schema"] == 1 and doc["finished"] is True
    env_info = doc["environment"]
    for key in ("device", "device_name", "torch", "cuda", "torchvision", "date_utc"):
        assert key in env_info
    assert env_info["device"] == "cpu" and "demo" in doc["weights"]

    rows = doc["rows"]
    inference = [r for r in rows if r["kind"] == "inference"]
    modes = {r["mode"] for r in inference}
    assert modes == {"fp32", "fp16", "bf16", "compiled", "cuda-graphs"}
    assert {r["batch"] for r in inference} == {1, 2}
    for r in inference:
        if r["mode"] in ("fp32", "bf16"):
            assert r["status"] == "ok", r
            positive_timing(r["network"])
            positive_timing(r["to_device"])
            positive_timing(r["to_host"])
            assert r["detections_per_image"] == 100  # the raised class bias: the worst case
            assert r["gpu_mem_mib"] is None  # n/a on the CPU
        else:
            assert r["status"] == "skipped" and r["note"].startswith(CPU_SKIPS), r
    (train,) = [r for r in rows if r["kind"] == "train"]
    assert train["status"] == "ok", train
    positive_timing(train["step"])
    assert train["skipped_steps"] == 0

    # the printed table has one line per planned row
    table = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + len(inference) + 1 + 1  # header, rows; training header, row
    assert any("| demo | 192 | 1 | fp32 |" in line for line in table)


@pytest.mark.parametrize("spec,size", [("demo", (120, 160)), ("yolact_plus_resnet50@256", (90, 130))])
def test_timed_path_equals_predict(spec, size):
    """The benchmark's on-device path (batched upload, resize and normalise as a batch, the
    package's post-processing) gives exactly model.predict's detections on the CPU."""
    bench = load_bench()
    model = bench.build_model(spec)
    rng = np.random.default_rng(3)
    images = [make_image(rng, *size)[0] for _ in range(2 if spec == "demo" else 1)]
    timed = bench._infer_to_host(model, images)
    expected = model.predict(images, score_threshold=0, top_k=100)
    for got, ref in zip(timed, expected):
        assert len(ref) == 100
        assert np.array_equal(got["boxes"], ref.boxes)
        assert np.array_equal(got["labels"], ref.labels)
        assert np.array_equal(got["scores"], ref.scores)
        assert np.array_equal(got["masks"], ref.masks)


def test_a_failing_row_is_reported_and_the_run_goes_on(tmp_path, monkeypatch, capsys):
    bench = load_bench()

    def broken(*args, **kwargs):
        raise RuntimeError("no kernel image is available\nsecond line")

    monkeypatch.setattr(bench, "set_precision", broken)  # every non-fp32 row fails
    out = tmp_path / "b.json"
    bench.main(["--device", "cpu", "--quick", "--json", str(out), "--train", "none", "--batches", "1",
                "--budget", "240", "--hard-limit", "280"])
    rows = {r["mode"]: r for r in json.loads(out.read_text())["rows"]}
    assert rows["bf16"]["status"] == "failed"
    assert rows["bf16"]["note"] == "RuntimeError: no kernel image is available"
    assert rows["fp32"]["status"] == "ok"
    assert "failed: RuntimeError: no kernel image is available |" in capsys.readouterr().out


def test_time_budget_skips_rows(tmp_path):
    bench = load_bench()
    out = tmp_path / "b.json"
    bench.main(["--device", "cpu", "--quick", "--json", str(out), "--budget", "0", "--hard-limit", "280"])
    rows = json.loads(out.read_text())["rows"]
    runnable = [r for r in rows if r["mode"] in ("fp32", "bf16", "amp bf16")]
    assert runnable and all(r["status"] == "skipped" and r["note"].startswith("time budget") for r in runnable)


def test_hard_limit_ends_the_run_and_keeps_the_json(tmp_path):
    """The watchdog ends a run that would overrun (a compile that never finishes, on a GPU):
    the row in progress reads failed, the rest skipped, and the JSON and table are written."""
    out = tmp_path / "bench.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--json", str(out),
                           "--budget", "240", "--hard-limit", "2", "--iters", "1000", "--max-seconds", "600"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "hard time limit of 2 s reached" in proc.stderr
    doc = json.loads(out.read_text())
    assert doc["stopped_at_hard_limit"] is True
    statuses = {r["status"] for r in doc["rows"]}
    assert "pending" not in statuses and "ok" not in statuses  # 1000 calls per figure cannot finish
    for r in doc["rows"]:
        if r["status"] == "failed":
            assert r["note"] == "stopped at the hard limit (2 s)"
    assert "| demo | 192 | 1 | fp32 |" in proc.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_a_one_line_error():
    with pytest.raises(SystemExit) as exc:
        load_bench().main(["--device", "cuda"])
    assert str(exc.value).startswith("error: --device cuda: no CUDA device is available")


# ---------------------------------------------------------------------------------------------
# benchmarks/gpu_verify.py: the short GPU check of the 2026-12-04 fixes
# ---------------------------------------------------------------------------------------------

VERIFY = ROOT / "benchmarks" / "gpu_verify.py"


def load_verify():
    return load_benchmark("gpu_verify")


def test_verify_before_switch_is_the_same_rule_with_more_launches():
    verify = load_verify()
    import yolact.model.postprocess as post
    from yolact.ops.nms import fast_nms_keep

    g = torch.Generator().manual_seed(0)
    xy = torch.rand(80, 200, 2, generator=g)
    cand = torch.cat([xy, xy + 0.3 * torch.rand(80, 200, 2, generator=g)], -1)
    assert torch.equal(verify.fast_nms_keep_chunked(cand, 0.5), fast_nms_keep(cand, 0.5))
    after = verify.ops_per_image()
    with verify.chunked_nms():
        assert post.fast_nms_keep is verify.fast_nms_keep_chunked
        before = verify.ops_per_image()
    assert post.fast_nms_keep is fast_nms_keep
    assert after < 150 < 300 < before, (after, before)


@pytest.mark.slow
def test_verify_quick_cpu_run(tmp_path):
    out = tmp_path / "verify.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, str(VERIFY), "--device", "cpu", "--quick", "--json", str(out),
                           "--budget", "1200"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {r["check"]: r for r in json.loads(out.read_text())["rows"]}
    assert rows["device"]["status"] == "ok"
    assert rows["train amp bf16"]["status"] == "ok", rows["train amp bf16"]
    assert rows["inference bf16"]["status"] == "ok", rows["inference bf16"]
    batch = [r for k, r in rows.items() if k.startswith("batch ") and "dbolya" not in k]
    assert len(batch) == 2 and all(r["status"] == "ok" for r in batch), batch
    assert "| device |" in proc.stdout
