"""Streamed prediction outputs: part files, a resume ledger, torchrun shards (issue #29): what
``yolact predict --save-json`` writes as it runs, what ``--resume`` reads back, and how ranks of
``torchrun`` share a folder.

Layout of ``<out>/parts/``:

- ``run.json``: the run's fingerprint (model, options, sorted source list); ``--resume`` refuses
  a folder whose fingerprint differs (one-line :class:`YolactError`);
- ``part-<rank>.jsonl``: one line per finished image, ``{"index": i, "path": str, "records":
  [...]}`` (``index``: the image's position in the sorted input list), flushed and fsynced as
  written, so a kill (SIGKILL included) loses at most the line being written; a torn last line
  is ignored on resume.

:func:`merge_records` writes ``results.json`` from the parts in input order, one image at a time
(memory: one int offset per image, never the records).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from ..errors import YolactError
from ..results import Results
from .sinks import Frame, RecordSink


def rank_world() -> Tuple[int, int]:
    """(rank, world_size) from torchrun's ``RANK``/``WORLD_SIZE`` environment; (0, 1) alone."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def shard(paths: Sequence[str], rank: int, world: int) -> List[Tuple[int, str]]:
    """This rank's disjoint share of the sorted ``paths``: ``(index, path)`` pairs, index being
    the position in the sorted list, every ``world``-th from ``rank``. Raises ValueError for a
    rank outside [0, world)."""
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} outside world of {world}")
    ordered = sorted(str(p) for p in paths)
    return [(i, p) for i, p in enumerate(ordered) if i % world == rank]


def barrier() -> None:
    """Wait for every torchrun rank (a gloo group from torchrun's environment, made on first use;
    one the caller made already is used as it is). Timeout 24 h: ranks finish their shards at
    different times, and torchrun ends the others when one fails."""
    import datetime

    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=datetime.timedelta(hours=24))
    dist.barrier()


def agree(value):
    """Rank 0's ``value`` on every torchrun rank (``value`` itself in a single process), e.g. the
    output folder each rank would otherwise pick for itself."""
    if rank_world()[1] == 1:
        return value
    import torch.distributed as dist

    barrier()
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def fingerprint(model: str, options: Dict, paths: Sequence[str]) -> Dict:
    """The run's identity: model name, prediction options, and a sha256 of the sorted sources."""
    digest = hashlib.sha256("\n".join(sorted(str(p) for p in paths)).encode()).hexdigest()
    return {"model": str(model), "options": json.loads(json.dumps(options, sort_keys=True, default=str)),
            "sources": digest, "count": len(paths)}


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def open_run(folder, fp: Dict, resume: bool, clear: bool = True) -> Path:
    """Make (or, with ``resume``, check) ``<folder>/parts`` and its ``run.json``. Raises
    YolactError when resuming a folder of another run (fingerprint differs) or none.
    ``clear``: a new run removes the part files of an earlier one (under torchrun only rank 0
    does, before a barrier)."""
    parts = Path(folder) / "parts"
    run_json = parts / "run.json"
    if resume and run_json.exists():
        old = json.loads(run_json.read_text())
        if old != fp:
            changed = sorted(k for k in fp if old.get(k) != fp[k])
            raise YolactError(f"{run_json}: cannot resume, this run differs in {', '.join(changed)}")
        return parts
    if resume:
        raise YolactError(f"{run_json}: nothing to resume (no run.json)")
    parts.mkdir(parents=True, exist_ok=True)
    if clear:
        for old_part in parts.glob("part-*.jsonl"):
            old_part.unlink()
        _write_atomic(run_json, json.dumps(fp, sort_keys=True))
    return parts


def _lines(parts: Path) -> Iterator[Tuple[Path, int, Dict]]:
    for part in sorted(parts.glob("part-*.jsonl")):
        with open(part, "rb") as f:
            offset = 0
            for raw in f:
                if raw.endswith(b"\n"):  # a torn last line (killed mid-write) is not done
                    try:
                        yield part, offset, json.loads(raw)
                    except ValueError:
                        pass
                offset += len(raw)


def done_indices(parts) -> set:
    """Indices of the images whose records are fully written in ``parts``."""
    return {line["index"] for _, _, line in _lines(Path(parts))}


class PartWriter:
    """Appends one line per finished image to ``<parts>/part-<rank>.jsonl``; a torn last line
    from a killed run is cut off first. Use as a context manager."""

    def __init__(self, parts, rank: int = 0):
        self.path = Path(parts) / f"part-{rank}.jsonl"
        if self.path.exists():
            data = self.path.read_bytes()
            keep = data[: data.rfind(b"\n") + 1]
            if len(keep) != len(data):
                with open(self.path, "r+b") as f:
                    f.truncate(len(keep))
        self._f = open(self.path, "a")

    def add(self, index: int, path: str, records: List[Dict]) -> None:
        """Write one image's records durably (flush + fsync)."""
        self._f.write(json.dumps({"index": int(index), "path": str(path), "records": records}) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def ordered_lines(parts) -> Iterator[Tuple[int, Dict]]:
    """Each written image's line of the part files, in input order, one at a time: (its place
    among the written images, 1-based, the line). Memory: one int offset per image. Raises
    YolactError when an index is written twice."""
    parts = Path(parts)
    where: Dict[int, Tuple[Path, int]] = {}
    for part, offset, line in _lines(parts):
        if line["index"] in where:
            raise YolactError(f"{part}: image {line['path']} written twice")
        where[line["index"]] = (part, offset)
    handles: Dict[Path, object] = {}
    try:
        for place, index in enumerate(sorted(where)):
            part, offset = where[index]
            h = handles.get(part) or handles.setdefault(part, open(part, "rb"))
            h.seek(offset)
            yield place + 1, json.loads(h.readline())
    finally:
        for h in handles.values():
            h.close()


def merge_records(parts, out, renumber: bool = True) -> Path:
    """Write ``out`` (a JSON list of all records, images in input order) from the part files,
    reading one image's line at a time. ``renumber``: each record's ``image_id`` becomes the
    image's place among the written images (1, 2, ...: what one uninterrupted process numbers,
    unreadable images skipped), else it is kept. Raises YolactError when an index is written
    twice. Atomic: ``out`` appears complete or not at all."""
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w") as f:
        f.write("[")
        first = True
        for place, line in ordered_lines(parts):
            for rec in line["records"]:
                if renumber:
                    rec = dict(rec, image_id=place)
                f.write(("" if first else ", ") + json.dumps(rec))
                first = False
        f.write("]")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out)
    return out


class StreamedRecordSink(RecordSink):
    """``results.json`` like :class:`RecordSink`, but each image's records go to
    ``<out>/parts/part-<rank>.jsonl`` as it finishes (durably) and ``close`` assembles the JSON
    list from the parts, so memory does not grow with the run. The file equals RecordSink's.
    ``parquet``: also that Parquet file, one row per detection
    (:data:`yolact.prediction.parquet.PARQUET_COLUMNS`); ``json`` False: the Parquet file only.

    It is also the run's ledger: :func:`yolact.prediction.run` calls :meth:`start` with the
    run's fingerprint, and gets back the images already written (``resume``). Under torchrun
    every rank writes its own part and rank 0 merges after a barrier."""

    def __init__(self, path, category_ids: Optional[Sequence[int]] = None, parquet=None, json: bool = True):
        super().__init__(path, category_ids)
        self.parquet = None if parquet is None else Path(parquet)  # also this Parquet file (needs pyarrow)
        self.json = json  # False: only the Parquet file (``path`` still names the folder of the parts)
        self.parts = Path(path).parent / "parts"
        self.writer: Optional[PartWriter] = None
        self.rank, self.world = 0, 1
        self.next = 0  # the index of a record without an input position (video frames): after the images

    def start(self, fp: Optional[Dict], resume: bool = False, rank: int = 0, world: int = 1) -> set:
        """Open this rank's part file for run ``fp``; -> the indices already written (empty unless
        ``resume``). Raises YolactError when resuming another run's folder, or none."""
        self.rank, self.world = rank, world
        if fp is None:  # a library caller outside run(): no ledger, just the streamed file
            self.parts.mkdir(parents=True, exist_ok=True)
            for old in self.parts.glob("part-*.jsonl"):
                old.unlink()
        else:
            open_run(self.parts.parent, fp, resume, clear=not resume and rank == 0)
            if world > 1:
                barrier()  # rank 0 has cleared an earlier run's parts before anyone writes
        self.writer = PartWriter(self.parts, rank)
        return done_indices(self.parts) if resume else set()

    def add(self, res: Results, frame: Frame) -> None:
        """Write this image's or frame's records to the part file."""
        if self.writer is None:
            self.start(None)
        before = len(self.records)
        super().add(res, frame)
        index = frame.order if frame.order is not None else self.next
        self.next = max(self.next, index + 1)
        self.writer.add(index, frame.source, self.records[before:])
        del self.records[before:]

    def close(self) -> List[Path]:
        """Assemble ``results.json`` from the parts (under torchrun: rank 0, after every rank has
        finished; the others return []). -> [its path]."""
        if self.writer is None:
            self.start(None)
        self.writer.close()
        if self.world > 1:
            barrier()  # every rank's part is complete
            if self.rank != 0:
                return []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        written = [merge_records(self.parts, self.path)] if self.json else []
        if self.parquet is not None:
            from .parquet import write_parquet

            written.append(write_parquet(ordered_lines(self.parts), self.parquet))
        # the parts are only for a run that was killed; a finished folder looks as it always did
        for part in [*self.parts.glob("part-*.jsonl"), self.parts / "run.json"]:
            with contextlib.suppress(OSError):
                part.unlink()
        with contextlib.suppress(OSError):
            self.parts.rmdir()
        return written


class ParquetSink(StreamedRecordSink):
    """The detections as a Parquet file at ``path`` only (one row per detection, see
    :mod:`yolact.prediction.parquet`; needs pyarrow), streamed through part files in ``path``'s
    folder. For results.json too, use one ``StreamedRecordSink(json_path, parquet=path)`` (two
    sinks in one folder would share the parts)."""

    def __init__(self, path, category_ids: Optional[Sequence[int]] = None):
        super().__init__(Path(path).parent / "results.json", category_ids, parquet=path, json=False)
