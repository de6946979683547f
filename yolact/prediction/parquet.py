"""``predict --save-parquet``: the run's detections as a Parquet file, one row per detection
(pyarrow; readable by pyarrow, pandas, DuckDB, Spark). Written from the streamed part files of
``yolact.prediction.parts`` in input order, a row group per ``rows_per_group`` detections, so
memory does not grow with the run; resume and torchrun give the same file as one process.

Columns (:data:`PARQUET_COLUMNS`; meanings as in the JSON detection record,
:meth:`yolact.results.Results.to_records`):

- ``source`` (the image path as given), ``file_name``, ``image_id`` (1, 2, ... as in
  results.json), ``video`` and ``frame`` (0-based; null for images), ``width``, ``height`` (pixels);
- ``label`` (0-based class index), ``category_id`` (COCO id), ``class_name``;
- ``score`` (mask score), ``box_score`` (class score), float64 as in the JSON (5 decimals);
- ``box``: [x1, y1, x2, y2] in pixels, 4 float64;
- ``rle_counts`` (COCO compressed RLE string) and ``rle_size`` ([height, width]): the mask, for
  ``pycocotools.mask.decode({"size": rle_size, "counts": rle_counts})``.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import YolactError

PARQUET_COLUMNS = ("source", "file_name", "image_id", "video", "frame", "width", "height", "label", "category_id",
                   "class_name", "score", "box_score", "box", "rle_counts", "rle_size")


def _schema():
    import pyarrow as pa

    return pa.schema([("source", pa.string()), ("file_name", pa.string()), ("image_id", pa.int64()),
                      ("video", pa.string()), ("frame", pa.int64()), ("width", pa.int32()), ("height", pa.int32()),
                      ("label", pa.int32()), ("category_id", pa.int32()), ("class_name", pa.string()),
                      ("score", pa.float64()), ("box_score", pa.float64()), ("box", pa.list_(pa.float64(), 4)),
                      ("rle_counts", pa.string()), ("rle_size", pa.list_(pa.int32(), 2))])


def require_pyarrow() -> None:
    """Raise YolactError (one line: how to install it) when pyarrow is missing."""
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise YolactError("--save-parquet needs pyarrow: pip install 'yolact[scale]'") from None


def write_parquet(lines, out, rows_per_group: int = 65536) -> Path:
    """Write ``out`` from ``lines``, the part files' lines in input order with each image's place
    (:func:`yolact.prediction.parts.ordered_lines`): one row per detection, columns
    :data:`PARQUET_COLUMNS`. Atomic. Raises YolactError without pyarrow."""
    require_pyarrow()
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _schema()
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    rows = {name: [] for name in PARQUET_COLUMNS}

    def flush(writer) -> None:
        writer.write_table(pa.table(rows, schema=schema))
        for column in rows.values():
            column.clear()

    with pq.ParquetWriter(tmp, schema) as writer:
        for place, line in lines:
            for rec in line["records"]:
                seg = rec.get("segmentation") or {}
                size = seg.get("size") or [None, None]
                values = {"source": line["path"], "file_name": rec.get("file_name"), "image_id": place,
                          "video": rec.get("video"), "frame": rec.get("frame"), "width": size[1], "height": size[0],
                          "label": rec["label"], "category_id": rec["category_id"], "class_name": rec["class_name"],
                          "score": rec["score"], "box_score": rec["box_score"], "box": rec["box"],
                          "rle_counts": seg.get("counts"), "rle_size": seg.get("size")}
                for name, value in values.items():
                    rows[name].append(value)
            if len(rows["label"]) >= rows_per_group:
                flush(writer)
        flush(writer)  # the rest (a run without detections still gets a file with the columns)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, out)
    return out
