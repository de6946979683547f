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
    # a run of another precision (e.g. before the light presets defaulted to fp32-fused) says which flag resumes it
    open_run(tmp_path / "p", fingerprint("demo:fp32", {}, paths), resume=False)
    with pytest.raises(YolactError, match=r"differs in model \(model was demo:fp32, now demo:fp32-fused: "
                                          r"add --precision fp32\)"):
        open_run(tmp_path / "p", fingerprint("demo:fp32-fused", {}, paths), resume=True)
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
def reference_out(folder, tmp_path_factory):
    """An uninterrupted one-process run with --save-json and --save-coco."""
    out = tmp_path_factory.mktemp("ref") / "one"
    assert _predict(folder, "--out", out, "--save-coco") == 0
    return out


@pytest.fixture(scope="module")
def reference(reference_out):
    data = json.loads((reference_out / "results.json").read_text())
    assert len({r["file_name"] for r in data}) >= 10 and not (reference_out / "parts").exists()
    return data


@pytest.fixture(scope="module")
def reference_coco(reference_out):
    """The uninterrupted run's annotations.json, as bytes."""
    data = (reference_out / "annotations.json").read_bytes()
    doc = json.loads(data)
    assert len(doc["images"]) == 14 and len(doc["annotations"]) > 10  # the truncated image is not there
    return data


def test_streamed_coco_equals_in_memory(folder, tmp_path):
    """annotations.json assembled from the parts is the in-memory PredictionWriter's file, byte
    for byte, and no COCO entry is held in memory while the run goes."""
    import yolact
    from yolact.prediction import PredictionWriter, run
    from yolact.prediction.parts import StreamedRecordSink

    model = yolact.load(yolact.demo_weights_path())
    opts = dict(score_threshold=0.05, progress=False, on_skip=lambda e: None)
    (tmp_path / "a").mkdir()
    memory = PredictionWriter(tmp_path / "a", model.cfg.class_names, save_coco=True)
    run(model, [folder], [memory], **opts)
    streamed = PredictionWriter(tmp_path / "b", model.cfg.class_names, save_coco=True)
    held = []
    from yolact.prediction import CallbackSink
    run(model, [folder], [streamed, StreamedRecordSink(tmp_path / "b" / "results.json", json=False, coco=streamed),
                          CallbackSink(lambda r, f: held.append(len(streamed.coco_images) + len(streamed.coco_annotations)))],
        **opts)
    assert set(held) == {0}
    a, b = (tmp_path / "a" / "annotations.json").read_bytes(), (tmp_path / "b" / "annotations.json").read_bytes()
    assert a == b and len(json.loads(a)["annotations"]) > 10
    assert not (tmp_path / "b" / "results.json").exists() and not (tmp_path / "b" / "parts").exists()


def test_workers_give_the_same_results(folder, reference, tmp_path, capsys):
    """--workers 2 (images decoded on two threads ahead of the model): the same results.json as
    the one reader thread, the truncated image still skipped with one line naming it and
    counted in the summary."""
    from yolact.cli import main

    assert main(["predict", str(folder), "--save-json", "--conf", "0.05", "--out", str(tmp_path / "w"),
                 "--workers", "2"]) == 0
    assert json.loads((tmp_path / "w" / "results.json").read_text()) == reference
    out, err = capsys.readouterr()
    assert "0005_bad.jpg" in err and len([x for x in err.splitlines() if "skipped" in x]) == 1
    assert "1 unreadable image(s) skipped" in out
    assert _predict(folder, "--out", tmp_path / "x", "--workers", "-1") == 2


def test_read_frames_workers_keep_order(folder):
    """read_frames with 0 and 3 decoding threads: the same frames in the same order, the same
    image skipped; leaving early stops without error."""
    import numpy as np

    from yolact.prediction.sources import read_frames

    runs = {}
    for workers in (0, 3):
        skipped = []
        got = list(read_frames(str(folder), skipped.append, workers=workers))
        runs[workers] = (got, [str(e) for e in skipped])
    (a, skip_a), (b, skip_b) = runs[0], runs[3]
    assert [p for _, p, _ in a] == [p for _, p, _ in b] and len(a) == 14
    assert all(np.array_equal(x, y) for (x, _, _), (y, _, _) in zip(a, b))
    assert skip_a == skip_b and len(skip_a) == 1 and "0005_bad.jpg" in skip_a[0]
    early = read_frames(str(folder), lambda e: None, workers=2)
    next(early)
    early.close()


def test_cli_sigkill_then_resume_identical(folder, reference, reference_coco, tmp_path):
    """A `yolact predict` process killed without warning, then run again with --resume: the
    same results.json and annotations.json (byte for byte) as the uninterrupted run; the
    finished images are not predicted again."""
    import time

    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    cmd = [sys.executable, "-m", "yolact", "predict", str(folder), "-q", "--save-json", "--save-coco",
           "--conf", "0.05", "--out", str(out)]
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
    assert (out / "annotations.json").read_bytes() == reference_coco
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
    _interrupted(folder, tmp_path / "nococo", 2)  # its parts have no COCO entries
    assert _predict(folder, "--out", tmp_path / "nococo", "--resume", "--save-coco") == 2
    assert "differs in coco" in capsys.readouterr().err
    assert _predict(folder, "--out", tmp_path / "x", "--actors", "0") == 2
    assert "--actors" in capsys.readouterr().err


def test_cli_resume_with_other_sources_names_both(folder, reference, tmp_path, capsys):
    """New-user report: --resume with other sources. Refused in one line naming the recorded and
    the given sources, exit 2, the parts untouched; a video-only resume (which cleared the
    ledger unchecked) is refused too; the same images named otherwise resume as before."""
    import shutil

    import cv2
    import numpy as np

    out = tmp_path / "run"
    _interrupted(folder, out, 3)
    assert json.loads((out / "parts" / "run.json").read_text())["given"] == [str(folder)]
    other = tmp_path / "other"
    other.mkdir()
    for p in sorted(folder.glob("*.jpg"))[:2]:
        shutil.copy(p, other / p.name)
    before = done_indices(out / "parts")
    capsys.readouterr()
    assert _predict(other, "--out", out, "--resume") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and "cannot resume" in err
    assert f"predicts {folder} (15 images), not {other} (2 images)" in err and "without --resume" in err
    video = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (64, 48))
    for _ in range(2):
        w.write(np.full((48, 64, 3), 90, np.uint8))
    w.release()
    assert _predict(video, "--out", out, "--resume") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "hold none" in err
    assert done_indices(out / "parts") == before and (out / "parts" / "part-0.jsonl").exists()
    assert _predict(f"{folder}/", "--out", out, "--resume") == 0  # the same images, named otherwise
    assert json.loads((out / "results.json").read_text()) == reference


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


def _torchrun(folder, out, *extra, quiet=True):
    """`torchrun --standalone --nproc-per-node 2 -m yolact predict` on CPU (gloo), each process
    with this process's torch thread count, so its numbers are the in-process reference's."""
    import torch

    env = dict(os.environ, PYTHONPATH=os.getcwd(), OMP_NUM_THREADS=str(torch.get_num_threads()))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "yolact",
           "predict", str(folder), *(["-q"] if quiet else []), "--save-json", "--conf", "0.05", "--out", str(out),
           *extra]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_torchrun_two_processes_equal_one(folder, reference, reference_coco, tmp_path):
    """Two gloo ranks, each its share of the images, rank 0 merging: the one-process results.json
    and annotations.json, with the truncated image skipped by the rank that had it; rank 0
    shows one bar for all 15 images (not its share) and counts the skipped image."""
    r = _torchrun(folder, tmp_path / "tr", "--save-coco", quiet=False)
    assert json.loads((tmp_path / "tr" / "results.json").read_text()) == reference
    assert (tmp_path / "tr" / "annotations.json").read_bytes() == reference_coco
    assert not (tmp_path / "tr" / "parts").exists()
    assert "0005_bad.jpg" in r.stderr
    assert len(list((tmp_path / "tr").glob("*.png"))) == 14  # every overlay, from both ranks
    assert "15/15" in r.stderr and "/8" not in r.stderr and "/7" not in r.stderr  # no bar of one rank's share
    assert "1 unreadable image(s) skipped" in r.stdout


@pytest.mark.slow
def test_torchrun_resumes_a_single_process_run(folder, reference, reference_coco, tmp_path):
    """A one-process run stopped after 5 images, resumed by two torchrun ranks: the same files."""
    _interrupted(folder, tmp_path / "tr", 5, coco=True)
    _torchrun(folder, tmp_path / "tr", "--resume", "--save-coco")
    assert json.loads((tmp_path / "tr" / "results.json").read_text()) == reference
    assert (tmp_path / "tr" / "annotations.json").read_bytes() == reference_coco


def _interrupted(folder, out, after, coco=False):
    """What a run killed after ``after`` images leaves in ``out`` (the CLI's run id for the demo);
    ``coco``: a run with --save-coco."""
    import yolact
    from yolact.prediction import PredictionWriter, run
    from yolact.prediction.parts import StreamedRecordSink
    from yolact.prediction.sinks import Sink

    class Stop(Sink):
        n = 0

        def add(self, res, frame):
            Stop.n += 1
            if Stop.n == after:
                raise KeyboardInterrupt

    model = yolact.load(yolact.demo_weights_path())
    writer = PredictionWriter(out, model.cfg.class_names, save_coco=coco)
    sink = StreamedRecordSink(out / "results.json", coco=writer)
    with pytest.raises(KeyboardInterrupt):  # the run id `yolact predict` gives: weights name and precision
        run(model, [str(folder)], [writer, sink, Stop()], score_threshold=0.05, run_id=f"demo:{model.precision}",
            progress=False)
    sink.writer.close()


def test_resume_without_out_takes_the_last_run_folder(folder, reference, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "predict").mkdir(parents=True)
    _interrupted(folder, tmp_path / "runs" / "predict2", 3)
    assert _predict(folder, "--resume") == 0
    assert json.loads((tmp_path / "runs" / "predict2" / "results.json").read_text()) == reference
    assert not (tmp_path / "runs" / "predict3").exists()


def test_whole_run_bar_counts_every_rank(tmp_path, capsys):
    """Under torchrun rank 0's one bar has the whole run's total and adds up every rank's count;
    it ends at the total only once every rank has finished; rank 1 shows nothing."""
    from yolact.prediction.parts import WholeRunBar

    bars = [WholeRunBar(tmp_path, rank, 2, total=9) for rank in (0, 1)]
    bars[1].update(4)
    bars[1].last = 0.0  # as if half a second had passed
    bars[1].update(1)
    bars[1].skipped = 2
    assert bars[1].finish() == 2
    bars[0].update(4)
    bars[0].skipped = 1
    assert bars[0].finish() == 3  # rank 0 counts every rank's unreadable images
    assert bars[0].bar.n == 9 and bars[0].bar.total == 9
    err = capsys.readouterr().err
    assert err.count("0/9") == 1 and "9/9" in err  # one bar: rank 1's is never shown


_MEMORY = """
import resource, sys
from yolact.cli import main
code = main(["predict", sys.argv[1], "-q", "--save-json", "--save-parquet", "--save-coco", "--conf", "0.05",
             "--out", sys.argv[2]])
print(code, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_run(tmp_path):
    """Issue #29: peak RSS of `yolact predict` with the streamed outputs (JSON, Parquet, COCO)
    on 240 small images and on 30 differs by less than 100 MB (each run its own process)."""
    pytest.importorskip("pyarrow", reason="--save-parquet needs pyarrow (yolact[scale])")
    import shutil

    from yolact.data.synth import generate

    generate(tmp_path / "gen", n_train=30, n_val=0, size=96, seed=5, max_objects=4, style="simple")
    few, many = tmp_path / "few", tmp_path / "many"
    few.mkdir()
    many.mkdir()
    for p in sorted((tmp_path / "gen" / "train").glob("*.jpg")):
        shutil.copy(p, few / p.name)
        for k in range(8):  # 240 files, the same pixels: only the number of images changes
            shutil.copy(p, many / f"{k}_{p.name}")
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    peak = {}
    for name, src in (("few", few), ("many", many)):
        r = subprocess.run([sys.executable, "-c", _MEMORY, str(src), str(tmp_path / f"out_{name}")], env=env,
                           capture_output=True, text=True, timeout=900)
        code, kb = r.stdout.split()[-2:]
        assert r.returncode == 0 and code == "0", r.stderr[-2000:]
        peak[name] = int(kb) / 1024  # ru_maxrss is in KiB on Linux
    assert len(json.loads((tmp_path / "out_many" / "annotations.json").read_text())["images"]) == 240
    print(f"peak RSS MB: {peak}")
    assert peak["many"] - peak["few"] < 100, peak


def test_rank_device(monkeypatch):
    """Under torchrun a rank asking for CUDA without an index gets cuda:LOCAL_RANK; CPU, an
    explicit device and a single process are left as they are."""
    import torch

    from yolact.prediction.parts import rank_device

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert rank_device(None) == rank_device("cuda") == "cuda:1"
    assert rank_device("cpu") == "cpu" and rank_device("cuda:0") == "cuda:0"
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert rank_device("auto") == "cuda:0"
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert rank_device(None) is None


def test_merge_refuses_an_image_written_twice(tmp_path):
    parts = open_run(tmp_path, fingerprint("m", {}, ["a.jpg", "b.jpg"]), resume=False)
    for rank in (0, 1):
        with PartWriter(parts, rank) as w:
            w.add(1, "b.jpg", _records(1))
    with pytest.raises(YolactError, match="b.jpg written twice"):
        merge_records(parts, tmp_path / "r.json")
    assert not (tmp_path / "r.json").exists()


def test_cli_resume_of_a_finished_run_says_it_is_complete(folder, reference_out, capsys):
    """New-user report: --resume on a finished run said "nothing to resume (no run.json)", exit 2.
    Now: one line saying the run is complete, where its files are and how to start over; exit 0;
    nothing rewritten."""
    before = (reference_out / "results.json").stat().st_mtime_ns
    assert _predict(folder, "--out", reference_out, "--save-coco", "--resume") == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    line = captured.out.strip()
    assert line.startswith(f"{reference_out}: the run is complete (results.json, annotations.json written there)")
    assert f"leave out --resume: with --out {reference_out} it writes over" in line and len(line.splitlines()) == 1
    assert (reference_out / "results.json").stat().st_mtime_ns == before
    assert not (reference_out / "parts").exists()
