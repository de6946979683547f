"""Streamed prediction outputs: part files, a resume ledger, torchrun shards (issue #29): what
``yolact predict --save-json`` writes as it runs, what ``--resume`` reads back, and how ranks of
``torchrun`` share a folder.

Layout of ``<out>/parts/``:

- ``run.json``: the run's fingerprint (model, options, sorted source list); ``--resume`` refuses
  a folder whose fingerprint differs (one-line :class:`YolactError`);
- ``part-<rank>.jsonl``: one line per finished image, ``{"index": i, "path": str, "records":
  [...]}`` (``index``: the image's position in the sorted input list), flushed and fsynced as
  written, so a kill (SIGKILL included) loses at most the line being written; a torn last line
  is ignored on resume. With ``--save-coco`` a line also has ``"coco": {"image": {...},
  "annotations": [...]}``, the image's COCO entries (polygons computed once, as it finishes);
- ``progress-<rank>.json`` (torchrun): each rank's count of images handled, for rank 0's bar.

:func:`merge_records` writes ``results.json`` and :func:`merge_coco` ``annotations.json`` from the
parts in input order, one image at a time (memory: one int offset per image, never the records).
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


class RunComplete(YolactError):
    """``resume`` of a folder whose run finished (its parts merged into results.json and removed):
    nothing to do. ``yolact predict --resume`` prints the message and exits 0."""


def rank_world() -> Tuple[int, int]:
    """(rank, world_size) from torchrun's ``RANK``/``WORLD_SIZE`` environment; (0, 1) alone."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def rank_device(name: Optional[str]) -> Optional[str]:
    """The device a torchrun rank predicts on: ``cuda:<LOCAL_RANK>`` (modulo the GPUs there)
    when ``name`` asks for CUDA without an index (None, '', 'auto' or 'cuda') and CUDA is
    there; ``name`` itself otherwise (one process, CPU, or an explicit ``cuda:N``)."""
    if rank_world()[1] == 1 or name not in (None, "", "auto", "cuda"):
        return name
    import torch

    if not torch.cuda.is_available():
        return name
    return f"cuda:{int(os.environ.get('LOCAL_RANK', 0)) % torch.cuda.device_count()}"


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


GIVEN = "given"  # run.json's record of the sources as named: told, not compared


def fingerprint(model: str, options: Dict, paths: Sequence[str], given: Optional[Sequence[str]] = None) -> Dict:
    """The run's identity: model name, prediction options, and a sha256 of the sorted image
    paths. ``given``: the sources as the user named them (folders, globs, lists), recorded
    beside the identity so a refused ``--resume`` can name them; not compared."""
    digest = hashlib.sha256("\n".join(sorted(str(p) for p in paths)).encode()).hexdigest()
    fp = {"model": str(model), "options": json.loads(json.dumps(options, sort_keys=True, default=str)),
          "sources": digest, "count": len(paths)}
    if given is not None:
        fp[GIVEN] = [str(g) for g in given]
    return fp


def _named(sources: Optional[Sequence[str]], count, unnamed: str) -> str:
    """'imgs/, a.jpg (12 images)' for a message (the first three names; ``unnamed`` without)."""
    shown = ", ".join(sources[:3]) + (f", ... ({len(sources) - 3} more)" if len(sources) > 3 else "") \
        if sources else unnamed
    return f"{shown} ({count} images)"


def sources_differ(run_json: Path, old: Dict, fp: Dict) -> YolactError:
    """The one-line refusal of resuming ``run_json``'s run (``old``) with other sources (``fp``):
    names the recorded and the given sources and says how to predict them instead."""
    folder = run_json.parent.parent
    also = sorted(k for k in {*old, *fp} - {GIVEN, "sources", "count"} if old.get(k) != fp.get(k))
    recorded = _named(old.get(GIVEN), old.get("count"), "its images")
    given = _named(fp.get(GIVEN), fp.get("count"), "these")
    return YolactError(f"{run_json}: cannot resume: this run predicts {recorded}, not {given}"
                       + (f" (and differs in {', '.join(also)})" if also else "")
                       + f"; resume it with its own sources, or predict these without --resume (into a new folder; "
                       f"with --out {folder} over this run)")


def _model_change(old: Optional[str], new: Optional[str]) -> str:
    """'' when the model is the same; else what it was and is, and, when only the precision
    (the run id's last field) differs, the flag that resumes it."""
    if old == new:
        return ""
    text = f" (model was {old}, now {new}"
    old_parts, new_parts = str(old).rsplit(":", 1), str(new).rsplit(":", 1)
    if len(old_parts) == len(new_parts) == 2 and old_parts[0] == new_parts[0]:
        text += f": add --precision {old_parts[1]}"
    return text + ")"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def open_run(folder, fp: Dict, resume: bool, clear: bool = True) -> Path:
    """Make (or, with ``resume``, check) ``<folder>/parts`` and its ``run.json``. Raises
    YolactError when resuming a folder of another run (fingerprint differs) or none;
    :class:`RunComplete` when resuming a folder whose run finished (results.json,
    predictions.parquet or annotations.json there, no parts).
    ``clear``: a new run removes the part files of an earlier one (under torchrun only rank 0
    does, before a barrier)."""
    parts = Path(folder) / "parts"
    run_json = parts / "run.json"
    if resume and run_json.exists():
        old = json.loads(run_json.read_text())
        changed = sorted(k for k in {*old, *fp} - {GIVEN} if old.get(k) != fp.get(k))
        if "sources" in changed or "count" in changed:
            raise sources_differ(run_json, old, fp)
        if changed:
            raise YolactError(f"{run_json}: cannot resume, this run differs in {', '.join(changed)}"
                              + _model_change(old.get("model"), fp.get("model")))
        return parts
    if resume:
        finished = [n for n in ("results.json", "predictions.parquet", "annotations.json")
                    if (Path(folder) / n).is_file()]
        if finished:
            raise RunComplete(f"{folder}: the run is complete ({', '.join(finished)} written there), nothing to "
                              f"resume; to predict again leave out --resume: with --out {folder} it writes over "
                              "this folder, without --out into a new one")
        raise YolactError(f"{run_json}: nothing to resume (no run.json)")
    parts.mkdir(parents=True, exist_ok=True)
    if clear:
        for old_part in [*parts.glob("part-*.jsonl"), *parts.glob("progress-*.json")]:
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

    def add(self, index: int, path: str, records: List[Dict], coco: Optional[Dict] = None) -> None:
        """Write one image's records (and its COCO entries, ``coco``) durably (flush + fsync)."""
        line = {"index": int(index), "path": str(path), "records": records}
        if coco is not None:
            line["coco"] = coco
        self._f.write(json.dumps(line) + "\n")
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
    among the written images, 1-based, the line). Memory: 10 bytes per image (an offset and a
    part number in flat arrays indexed by the image's index; a million images, 10 MB). Raises
    YolactError when an index is written twice."""
    from array import array

    parts = Path(parts)
    files: List[Path] = []
    offsets, part_of = array("q"), array("h")  # by image index; -1: not written
    for part, offset, line in _lines(parts):
        if not files or files[-1] != part:
            files.append(part)
        index = line["index"]
        if index >= len(offsets):
            grow = index + 1 - len(offsets)
            offsets.extend([-1] * grow)
            part_of.extend([-1] * grow)
        if offsets[index] >= 0:
            raise YolactError(f"{part}: image {line['path']} written twice")
        offsets[index], part_of[index] = offset, len(files) - 1
    handles: Dict[int, object] = {}
    try:
        place = 0
        for index, offset in enumerate(offsets):
            if offset < 0:
                continue
            place += 1
            k = part_of[index]
            h = handles.get(k) or handles.setdefault(k, open(files[k], "rb"))
            h.seek(offset)
            yield place, json.loads(h.readline())
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


def coco_categories(writer) -> List[Dict]:
    """The ``categories`` of ``writer``'s annotations.json (a PredictionWriter): its classes with
    their COCO ids (``writer.category_ids`` where it has them, else class index + 1)."""
    ids = getattr(writer, "category_ids", None) or range(1, len(writer.class_names) + 1)
    return [{"id": int(k), "name": n} for k, n in zip(ids, writer.class_names)]


def merge_coco(parts, out, categories: List[Dict]) -> Path:
    """Write ``out``, a COCO instances file, from the ``coco`` entries of the part files: images in
    input order with ids 1, 2, ... and file names relative to their common folder (recorded in
    ``info.image_root``), annotations with ids 1, 2, ... in the same order; the bytes
    :class:`yolact.prediction.PredictionWriter` writes for an uninterrupted run. Reads the parts
    three times, one image at a time (memory does not grow with the run). Atomic."""
    root = None
    for _, line in ordered_lines(parts):
        if "coco" in line:
            folder = os.path.dirname(line["coco"]["image"]["file_name"])
            root = folder if root is None else os.path.commonpath([root, folder])
    root = Path(root) if root is not None else Path(".")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w") as f:
        f.write("{" + json.dumps("info") + ": " + json.dumps({"description": "yolact predictions",
                                                             "image_root": str(root)}) + ", \"images\": [")
        n = 0
        for _, line in ordered_lines(parts):
            if "coco" in line:
                n += 1
                image = line["coco"]["image"]
                image = dict(image, id=n, file_name=os.path.relpath(image["file_name"], root))
                f.write(("" if n == 1 else ", ") + json.dumps(image))
        f.write("], \"annotations\": [")
        n = k = 0
        for _, line in ordered_lines(parts):
            if "coco" in line:
                n += 1
                for ann in line["coco"]["annotations"]:
                    k += 1
                    f.write(("" if k == 1 else ", ") + json.dumps(dict(ann, id=k, image_id=n)))
        f.write("], \"categories\": " + json.dumps(categories) + "}")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out)
    return out


class WholeRunBar:
    """One progress bar for a torchrun run (issue #29: rank 0 shows every rank's images): each
    rank writes its count of images handled (predicted or skipped) to
    ``<parts>/progress-<rank>.json`` at most twice a second; rank 0's tqdm bar has the whole run's
    total and adds up the counts. :meth:`finish` (rank 0) waits until every rank has written its
    last count, so the bar ends at the total. Other ranks show nothing."""

    def __init__(self, parts, rank: int, world: int, total: int, disable: bool = False):
        from tqdm import tqdm

        self.parts, self.rank, self.world = Path(parts), rank, world
        self.count, self.last = 0, 0.0
        self.skipped = 0  # this rank's unreadable images (the caller keeps it up to date)
        self.bar = tqdm(total=total, desc="images", unit="img", disable=disable or rank != 0)

    def _write(self, done: bool) -> None:
        _write_atomic(self.parts / f"progress-{self.rank}.json",
                      json.dumps({"count": self.count, "skipped": self.skipped, "done": done}))

    def _read(self) -> Tuple[int, bool, int]:
        count, finished, skipped = 0, True, 0
        for r in range(self.world):
            try:
                got = json.loads((self.parts / f"progress-{r}.json").read_text())
            except (OSError, ValueError):
                got = {"count": 0, "skipped": 0, "done": False}
            count += got["count"]
            skipped += got["skipped"]
            finished &= got["done"]
        return count, finished, skipped

    def update(self, n: int = 1) -> None:
        """This rank handled ``n`` more images."""
        import time

        self.count += n
        now = time.monotonic()
        if now - self.last >= 0.5:
            self.last = now
            self._write(False)
            if self.rank == 0:
                self.bar.update(self._read()[0] - self.bar.n)

    def finish(self) -> int:
        """This rank is done; rank 0 follows the others until they are too, then closes the bar.
        -> the unreadable images of the whole run (rank 0), or of this rank (the others)."""
        import time

        self._write(True)
        skipped = self.skipped
        if self.rank == 0:
            while True:
                count, finished, skipped = self._read()
                self.bar.update(count - self.bar.n)
                if finished:
                    break
                time.sleep(0.5)
        self.bar.close()
        return skipped


class StreamedRecordSink(RecordSink):
    """``results.json`` like :class:`RecordSink`, but each image's records go to
    ``<out>/parts/part-<rank>.jsonl`` as it finishes (durably) and ``close`` assembles the JSON
    list from the parts, so memory does not grow with the run. The file equals RecordSink's.
    ``parquet``: also that Parquet file, one row per detection
    (:data:`yolact.prediction.parquet.PARQUET_COLUMNS`); ``json`` False: the Parquet file only.

    It is also the run's ledger: :func:`yolact.prediction.run` calls :meth:`start` with the
    run's fingerprint, and gets back the images already written (``resume``). Under torchrun
    every rank writes its own part and rank 0 merges after a barrier.

    ``coco``: a :class:`yolact.prediction.PredictionWriter` made with ``save_coco=True``; this sink
    takes its ``annotations.json`` over (the writer no longer collects it): each image's COCO
    entries go into its part line, and ``close`` assembles the file (:func:`merge_coco`), the
    same bytes as the writer's, under resume and torchrun too."""

    def __init__(self, path, category_ids: Optional[Sequence[int]] = None, parquet=None, json: bool = True,
                 coco=None):
        super().__init__(path, category_ids)
        self.coco = coco if coco is not None and coco.save_coco else None
        if self.coco is not None:
            self.coco.save_coco = False  # annotations.json is written here, from the parts
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
        if fp is not None and self.coco is not None:  # parts without COCO entries cannot make annotations.json
            fp = dict(fp, coco=True)
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
        entry = None
        if self.coco is not None and frame.path is not None:  # the writer's own COCO entries, taken as made
            self.coco._add_coco(res, Path(frame.path))
            entry = {"image": self.coco.coco_images.pop(), "annotations": list(self.coco.coco_annotations)}
            self.coco.coco_annotations.clear()
        self.writer.add(index, frame.source, self.records[before:], entry)
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
        if self.coco is not None:
            written.append(merge_coco(self.parts, self.coco.out_dir / "annotations.json",
                                      coco_categories(self.coco)))
        # the parts are only for a run that was killed; a finished folder looks as it always did
        for part in [*self.parts.glob("part-*.jsonl"), *self.parts.glob("progress-*.json"),
                     self.parts / "run.json"]:
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
