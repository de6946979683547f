"""The model's detections on every image of a COCO set, as COCO result dicts, with the images
read ahead on a thread and the set sharded across DDP ranks."""
from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch.distributed as dist
from tqdm import tqdm

from ..data.coco import CocoDataset
from ..data.images import read_image

_DONE = object()


def is_dist() -> bool:
    """True inside an initialised torch.distributed process group."""
    return dist.is_available() and dist.is_initialized()


def _read_ahead(items: Iterable[Tuple[object, Path]], depth: int = 4) -> Iterator[Tuple[object, np.ndarray]]:
    """(image_id, upright BGR uint8 image) for each (image_id, path) of ``items``, in their order,
    read (:func:`yolact.data.images.read_image`) by one thread at most ``depth`` images ahead of
    the consumer. A read error is raised here, in its place in the order; closing the generator
    early stops the thread."""
    q: "queue.Queue" = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:  # False once the consumer has gone
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def reader() -> None:
        for image_id, path in items:
            try:
                item = (image_id, read_image(path), None)
            except Exception as e:  # noqa: BLE001 -- handed to the consumer, raised there
                item = (image_id, None, e)
            if not put(item) or item[2] is not None:
                return
        put(_DONE)

    thread = threading.Thread(target=reader, name="yolact-eval-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            image_id, img, err = item
            if err is not None:
                raise err
            yield image_id, img
    finally:
        stop.set()
        thread.join()


def _batches(it: Iterator, size: int) -> Iterator[List]:
    batch = []
    for x in it:
        batch.append(x)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def predict_dataset(model, dataset: CocoDataset, score_threshold: float = 0.0, top_k: int = 100,
                    batch_size: int = 1, progress: bool = True,
                    category_ids: Optional[Sequence[Optional[int]]] = None, **predict_kwargs) -> List[Dict]:
    """COCO result dicts (one per detection, 'bbox' and 'segm' fields) for this rank's share
    (every world-size-th image from the rank's first), gathered on every rank: rank 0's in
    image order, then rank 1's, and so on.
    ``category_ids``: the file's category id of each model class, None for a class the file
    lacks, whose detections are left out (default: the dataset's categories in order, see
    :func:`yolact.evaluation.classes.model_category_ids`). ``predict_kwargs`` go to
    ``model.predict`` (classes, iou, agnostic_nms, max_det, img_size)."""
    rank, world = (dist.get_rank(), dist.get_world_size()) if is_dist() else (0, 1)
    infos = [dataset.image_info(i) for i in range(rank, len(dataset), world)]
    ids = list(category_ids) if category_ids is not None else list(dataset.category_ids)
    kept = [k for k, c in enumerate(ids) if c is not None]
    cats = [-1 if c is None else c for c in ids]  # -1: never written, those detections are dropped
    results: List[Dict] = []
    bar = tqdm(total=len(infos), desc="eval", unit="img", disable=not progress or rank != 0, leave=False)
    images = _read_ahead((info["id"], dataset.image_dir / info["file_name"]) for info in infos)
    try:
        for batch in _batches(images, max(1, batch_size)):
            preds = model.predict([img for _, img in batch], score_threshold=score_threshold, top_k=top_k,
                                  keep_image=False, **predict_kwargs)
            for (image_id, _), res in zip(batch, preds):
                if len(kept) < len(ids):
                    res = res.subset(np.isin(res.labels, kept))
                results += res.to_coco(image_id, cats, kind="both")
            bar.update(len(batch))
    finally:
        images.close()
        bar.close()
    if world > 1:
        gathered: List[Optional[List[Dict]]] = [None] * world
        dist.all_gather_object(gathered, results)
        results = [r for part in gathered for r in part]
    return results
