"""Streamed part files, resume ledger and torchrun sharding (yolact.prediction.parts)."""
import json
import os
import signal
import subprocess
import sys

import pytest

from yolact.errors import YolactError
from yolact.prediction.parts import (PartWriter, done_indices, fingerprint, merge_records, open_run,
                                     shard)


def _records(i):
    return [{"label": i % 3, "score": round(0.5 + i / 1000, 5), "file_name": f"{i:04d}.jpg"}] * (i % 2 + 1)


def _reference(paths):
    out = []
    for i, p in enumerate(sorted(paths)):
        out += [dict(r, image_id=i + 1) for r in _records(i)]
    return out


def test_shard_disjoint_and_complete():
    paths = [f"d/{i:03d}.jpg" for i in range(11)][::-1]
    got = [shard(paths, r, 3) for r in range(3)]
    flat = sorted(i for g in got for i, _ in g)
    assert flat == list(range(11))
    assert [p for _, p in sorted(x for g in got for x in g)] == sorted(paths)
    with pytest.raises(ValueError):
        shard(paths, 3, 3)


def test_two_ranks_merge_equals_single(tmp_path):
    paths = [f"{i:04d}.jpg" for i in range(9)]
    fp = fingerprint("yolact_base", {"conf": 0.15}, paths)
    single = open_run(tmp_path / "a", fp, resume=False)
    with PartWriter(single) as w:
        for i, p in shard(paths, 0, 1):
            w.add(i, p, _records(i))
    ranked = open_run(tmp_path / "b", fp, resume=False)
    for rank in (1, 0):
        with PartWriter(ranked, rank) as w:
            for i, p in shard(paths, rank, 2):
                w.add(i, p, _records(i))
    a = json.loads(merge_records(single, tmp_path / "a.json").read_text())
    b = json.loads(merge_records(ranked, tmp_path / "b.json").read_text())
    assert a == b == _reference(paths)


def test_resume_refuses_other_run(tmp_path):
    paths = ["a.jpg", "b.jpg"]
    open_run(tmp_path, fingerprint("m", {"conf": 0.1}, paths), resume=False)
    with pytest.raises(YolactError, match="differs in options"):
        open_run(tmp_path, fingerprint("m", {"conf": 0.2}, paths), resume=True)
    with pytest.raises(YolactError, match="nothing to resume"):
        open_run(tmp_path / "new", fingerprint("m", {}, paths), resume=True)


_CHILD = """
import sys, time
from yolact.prediction.parts import PartWriter, fingerprint, open_run, shard, done_indices
paths = [f"{i:04d}.jpg" for i in range(200)]
parts = open_run(sys.argv[1], fingerprint("m", {}, paths), resume=sys.argv[2] == "1")
done = done_indices(parts)
with PartWriter(parts) as w:
    for i, p in shard(paths, 0, 1):
        if i in done:
            continue
        w.add(i, p, [{"label": i % 3, "score": round(0.5 + i / 1000, 5), "file_name": p}] * (i % 2 + 1))
        print(i, flush=True)
        if sys.argv[2] == "0":
            time.sleep(0.01)
"""


def test_sigkill_then_resume_identical(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path), "0"], stdout=subprocess.PIPE, env=env)
    for _ in range(20):  # let it write some images, then kill it without warning
        child.stdout.readline()
    child.send_signal(signal.SIGKILL)
    child.wait()
    done = done_indices(tmp_path / "parts")
    assert 20 <= len(done) < 200
    with open(tmp_path / "parts" / "part-0.jsonl", "a") as f:  # a torn line, as a kill mid-write leaves
        f.write('{"index": 199, "path": "01')
    subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path), "1"], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    got = json.loads(merge_records(tmp_path / "parts", tmp_path / "results.json").read_text())
    paths = [f"{i:04d}.jpg" for i in range(200)]
    assert got == [dict(r, file_name=p, image_id=i + 1) for i, p in enumerate(paths) for r in
                   [{"label": i % 3, "score": round(0.5 + i / 1000, 5)}] * (i % 2 + 1)]


def test_streamed_sink_equals_in_memory(tmp_path):
    import numpy as np

    from test_outputs import _results
    from yolact.prediction import Frame, RecordSink
    from yolact.prediction.parts import StreamedRecordSink

    sinks = [RecordSink(tmp_path / "a" / "results.json"), StreamedRecordSink(tmp_path / "b" / "results.json")]
    for n in range(5):
        r = _results()
        r.scores = r.scores * np.float32(0.9 ** n)
        for s in sinks:
            s.add(r, Frame(source=f"d/{n}.jpg", path=f"d/{n}.jpg", image_id=n + 1))
        assert sinks[1].records == []  # nothing held in memory
    a, b = [s.close()[0].read_text() for s in sinks]
    assert json.loads(a) == json.loads(b) and len(json.loads(a)) > 5
    assert not (tmp_path / "b" / "parts").exists()  # a finished run leaves only results.json


# ---------------------------------------------------------------------------- through yolact predict
@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Fourteen images of the demo model's distribution, and one truncated JPEG among them."""
    import shutil

    from yolact.data.synth import generate

    root = tmp_path_factory.mktemp("scale")
    generate(root / "gen", n_train=14, n_val=0, size=192, seed=29, max_objects=4, style="simple")
    (root / "images").mkdir()
    for p in sorted((root / "gen" / "train").glob("*.jpg")):
        shutil.copy(p, root / "images" / p.name)
    (root / "images" / "0005_bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return root / "images"


def _predict(*args):
    from yolact.cli import main

    return main(["predict", *map(str, args), "-q", "--save-json", "--conf", "0.05"])


@pytest.fixture(scope="module")
def reference(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "one"
    assert _predict(folder, "--out", out) == 0
    data = json.loads((out / "results.json").read_text())
    assert len({r["file_name"] for r in data}) >= 10 and not (out / "parts").exists()
    return data


def test_cli_sigkill_then_resume_identical(folder, reference, tmp_path):
    """A `yolact predict` process killed without warning, then run again with --resume: the
    same results.json as the uninterrupted run; the finished images are not predicted again."""
    import time

    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    cmd = [sys.executable, "-m", "yolact", "predict", str(folder), "-q", "--save-json", "--conf", "0.05",
           "--out", str(out)]
    child = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL)
    part = out / "parts" / "part-0.jsonl"
    while child.poll() is None and not (part.exists() and part.read_bytes().count(b"\n") >= 4):
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()
    done = done_indices(out / "parts")
    assert 4 <= len(done) < 14 and not (out / "results.json").exists()
    r = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "results.json").read_text()) == reference
    assert not (out / "parts").exists()


def test_cli_resume_refuses_another_run(folder, tmp_path, capsys):
    """--resume on a folder of a run with other controls: one line, exit 2, nothing touched."""
    from yolact.prediction.parts import fingerprint

    out = tmp_path / "run"
    open_run(out, fingerprint("other", {}, ["x.jpg"]), resume=False)
    assert _predict(folder, "--out", out, "--resume") == 2
    err = capsys.readouterr().err.strip()
    assert "cannot resume" in err and "run.json" in err and len(err.splitlines()) == 1
    assert _predict(folder, "--out", tmp_path / "none", "--resume") == 2
    assert "nothing to resume" in capsys.readouterr().err
    from yolact.cli import main
    assert main(["predict", str(folder), "-q", "--resume", "--out", str(tmp_path / "x")]) == 2
    assert "--save-json" in capsys.readouterr().err
    assert _predict(folder, "--out", tmp_path / "x", "--resume", "--save-coco") == 2
    assert "--save-coco is not streamed" in capsys.readouterr().err
    assert _predict(folder, "--out", tmp_path / "x", "--actors", "0") == 2
    assert "--actors" in capsys.readouterr().err


def test_library_run_resume(folder, reference, tmp_path):
    """run(..., resume=True) with a StreamedRecordSink continues a ledger written by a run that
    stopped early, and predicts only the images not yet written."""
    import yolact
    from yolact.prediction import run
    from yolact.prediction.parts import StreamedRecordSink

    model = yolact.load(yolact.demo_weights_path())
    images = sorted(str(p) for p in folder.glob("*.jpg"))
    opts = dict(score_threshold=0.05, run_id="demo", progress=False)
    sink = StreamedRecordSink(tmp_path / "b" / "results.json")
    # stop after 6 images: the sink's ledger is what a kill leaves behind
    from yolact.prediction.sinks import Sink

    class Stop(Sink):
        n = 0

        def add(self, res, frame):
            Stop.n += 1
            if Stop.n == 6:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(model, [folder], [sink, Stop()], **opts)
    sink.writer.close()
    again = StreamedRecordSink(tmp_path / "b" / "results.json")
    summary = run(model, [folder], [again], resume=True, **opts)
    assert summary.resumed == 6 and summary.images == len(images) - 1 - 6  # one image is unreadable
    assert json.loads((tmp_path / "b" / "results.json").read_text()) == reference


def _torchrun(folder, out, *extra):
    """`torchrun --standalone --nproc-per-node 2 -m yolact predict` on CPU (gloo), each process
    with this process's torch thread count, so its numbers are the in-process reference's."""
    import torch

    env = dict(os.environ, PYTHONPATH=os.getcwd(), OMP_NUM_THREADS=str(torch.get_num_threads()))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "yolact",
           "predict", str(folder), "-q", "--save-json", "--conf", "0.05", "--out", str(out), *extra]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_torchrun_two_processes_equal_one(folder, reference, tmp_path):
    """Two gloo ranks, each its share of the images, rank 0 merging: the one-process results.json,
    with the truncated image skipped by the rank that had it."""
    r = _torchrun(folder, tmp_path / "tr")
    assert json.loads((tmp_path / "tr" / "results.json").read_text()) == reference
    assert not (tmp_path / "tr" / "parts").exists()
    assert "0005_bad.jpg" in r.stderr
    assert len(list((tmp_path / "tr").glob("*.png"))) == 14  # every overlay, from both ranks


@pytest.mark.slow
def test_torchrun_resumes_a_single_process_run(folder, reference, tmp_path):
    """A one-process run stopped after 5 images, resumed by two torchrun ranks: the same file."""
    _interrupted(folder, tmp_path / "tr", 5)
    _torchrun(folder, tmp_path / "tr", "--resume")
    assert json.loads((tmp_path / "tr" / "results.json").read_text()) == reference


def _interrupted(folder, out, after):
    """What a run killed after ``after`` images leaves in ``out`` (the CLI's run id for the demo)."""
    import yolact
    from yolact.prediction import run
    from yolact.prediction.parts import StreamedRecordSink
    from yolact.prediction.sinks import Sink

    class Stop(Sink):
        n = 0

        def add(self, res, frame):
            Stop.n += 1
            if Stop.n == after:
                raise KeyboardInterrupt

    sink = StreamedRecordSink(out / "results.json")
    with pytest.raises(KeyboardInterrupt):
        run(yolact.load(yolact.demo_weights_path()), [str(folder)], [sink, Stop()], score_threshold=0.05,
            run_id="demo:fp32", progress=False)
    sink.writer.close()


def test_resume_without_out_takes_the_last_run_folder(folder, reference, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "predict").mkdir(parents=True)
    _interrupted(folder, tmp_path / "runs" / "predict2", 3)
    assert _predict(folder, "--resume") == 0
    assert json.loads((tmp_path / "runs" / "predict2" / "results.json").read_text()) == reference
    assert not (tmp_path / "runs" / "predict3").exists()
