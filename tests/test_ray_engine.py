"""predict --engine ray (yolact.prediction.ray_engine): a local Ray with 2 CPUs and 2 actors
gives the local engine's files; RayPredictor on a user's own dataset."""
import json
import shutil

import pytest

ray = pytest.importorskip("ray", reason="--engine ray needs Ray Data (yolact[scale])")
pytest.importorskip("ray.data", reason="--engine ray needs Ray Data (yolact[scale])")

from yolact.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from yolact.data.synth import generate

    root = tmp_path_factory.mktemp("ray")
    generate(root / "gen", n_train=9, n_val=0, size=160, seed=31, max_objects=4, style="simple")
    (root / "images").mkdir()
    for p in sorted((root / "gen" / "train").glob("*.jpg")):
        shutil.copy(p, root / "images" / p.name)
    (root / "images" / "0004_bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return root / "images"


def test_ray_two_actors_equal_local(local_ray, folder, tmp_path, capsys):
    """Same results.json, Parquet file, YOLO labels and overlays as the local engine; the bad
    image is skipped with a line naming it."""
    pytest.importorskip("pyarrow", reason="needs pyarrow")
    flags = ["-q", "--save-json", "--save-parquet", "--save-txt", "--save-coco", "--conf", "0.05"]
    assert main(["predict", str(folder), *flags, "--out", str(tmp_path / "local")]) == 0
    capsys.readouterr()
    assert main(["predict", str(folder), *flags, "--out", str(tmp_path / "ray"), "--engine", "ray",
                 "--actors", "2"]) == 0
    assert "0004_bad.jpg" in capsys.readouterr().err
    a, b = tmp_path / "local", tmp_path / "ray"
    assert json.loads((a / "results.json").read_text()) == json.loads((b / "results.json").read_text())
    assert (a / "predictions.parquet").read_bytes() == (b / "predictions.parquet").read_bytes()
    assert (a / "annotations.json").read_bytes() == (b / "annotations.json").read_bytes()
    names = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()) and len(names) > 10
    for n in names:
        if n.suffix == ".txt":
            assert (a / n).read_text() == (b / n).read_text()


def test_ray_predictor_on_a_users_dataset(local_ray, folder):
    import functools

    import yolact
    from yolact.prediction.ray_engine import RayPredictor

    paths = sorted(str(p) for p in folder.glob("*.jpg"))
    ds = ray.data.from_items([{"path": p} for p in paths]).map_batches(
        RayPredictor, fn_constructor_kwargs={"load": functools.partial(yolact.load, yolact.demo_weights_path()),
                                             "score_threshold": 0.05},
        batch_size=4, concurrency=1, batch_format="numpy")
    rows = {r["path"]: r for r in ds.iter_rows()}
    assert sorted(rows) == paths
    bad = str(folder / "0004_bad.jpg")
    assert "0004_bad.jpg" in rows[bad]["error"] and not rows[bad]["result"]
    assert sum(len(json.loads(r["records"])) for r in rows.values()) > 5


@pytest.mark.slow
def test_ray_resumes_a_local_run(local_ray, folder, tmp_path):
    """A local run stopped after 3 images, resumed with --engine ray: the uninterrupted file."""
    from test_parts import _interrupted

    flags = ["-q", "--save-json", "--conf", "0.05"]
    assert main(["predict", str(folder), *flags, "--out", str(tmp_path / "local")]) == 0
    _interrupted(folder, tmp_path / "ray", 3)
    assert main(["predict", str(folder), *flags, "--out", str(tmp_path / "ray"), "--engine", "ray",
                 "--actors", "2", "--resume"]) == 0
    assert json.loads((tmp_path / "local" / "results.json").read_text()) == \
           json.loads((tmp_path / "ray" / "results.json").read_text())
