"""predict --save-parquet (yolact.prediction.parquet): one row per detection, the same
detections as results.json, read back by pyarrow (and pandas / DuckDB where installed)."""
import json

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow", reason="--save-parquet needs pyarrow (yolact[scale])")
import pyarrow.parquet as pq  # noqa: E402
from pycocotools import mask as mask_utils  # noqa: E402

from yolact.cli import main  # noqa: E402
from yolact.prediction.parquet import PARQUET_COLUMNS  # noqa: E402


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    import shutil

    from yolact.data.synth import generate

    root = tmp_path_factory.mktemp("pq")
    generate(root / "gen", n_train=4, n_val=0, size=160, seed=7, max_objects=4, style="simple")
    out = root / "out"
    assert main(["predict", str(root / "gen" / "train"), "-q", "--save-json", "--save-parquet", "--conf", "0.05",
                 "--out", str(out)]) == 0
    shutil.rmtree(root / "gen" / "val", ignore_errors=True)
    return out


def test_parquet_rows_are_the_json_records(run_folder):
    records = json.loads((run_folder / "results.json").read_text())
    table = pq.read_table(run_folder / "predictions.parquet")
    assert tuple(table.column_names) == PARQUET_COLUMNS and table.num_rows == len(records) > 3
    rows = table.to_pylist()
    for row, rec in zip(rows, records):
        assert (row["file_name"], row["image_id"], row["label"], row["category_id"], row["class_name"]) == \
               (rec["file_name"], rec["image_id"], rec["label"], rec["category_id"], rec["class_name"])
        assert (row["score"], row["box_score"], row["box"]) == (rec["score"], rec["box_score"], rec["box"])
        assert row["source"].endswith(rec["file_name"]) and row["video"] is None and row["frame"] is None
        assert [row["height"], row["width"]] == row["rle_size"] == rec["segmentation"]["size"]
        mask = mask_utils.decode({"size": row["rle_size"], "counts": row["rle_counts"].encode()})
        assert mask.shape == tuple(row["rle_size"]) and np.array_equal(mask, mask_utils.decode(
            {"size": rec["segmentation"]["size"], "counts": rec["segmentation"]["counts"].encode()}))
    assert not (run_folder / "parts").exists()


def test_parquet_read_by_pandas_and_duckdb(run_folder):
    pd = pytest.importorskip("pandas", reason="pandas is not installed")
    frame = pd.read_parquet(run_folder / "predictions.parquet")
    assert len(frame) == len(json.loads((run_folder / "results.json").read_text()))
    duckdb = pytest.importorskip("duckdb", reason="duckdb is not installed")
    n = duckdb.sql(f"select count(*) from '{run_folder / 'predictions.parquet'}'").fetchall()[0][0]
    assert n == len(frame)


def test_parquet_only_sink_and_no_detections(tmp_path):
    from test_outputs import _results
    from yolact.prediction import Frame
    from yolact.prediction.parts import ParquetSink

    sink = ParquetSink(tmp_path / "d.parquet")
    r = _results()
    sink.add(r, Frame(source="a/0.jpg", path="a/0.jpg", image_id=1))
    sink.add(r[:0] if hasattr(r, "__getitem__") else r, Frame(source="a/1.jpg", path="a/1.jpg", image_id=2))
    assert sink.close() == [tmp_path / "d.parquet"] and not (tmp_path / "results.json").exists()
    table = pq.read_table(tmp_path / "d.parquet")
    assert table.num_rows >= len(r) and set(table.column("image_id").to_pylist()) <= {1, 2}
