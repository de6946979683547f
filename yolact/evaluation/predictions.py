"""The model's detections on every image of a COCO set, as COCO result dicts: the images go
through the prediction runner (:func:`yolact.prediction.run`: read ahead on a thread, batched),
the set sharded across DDP ranks."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
import torch.distributed as dist

from ..data.coco import CocoDataset
from ..prediction import CallbackSink, run

def is_dist() -> bool:
    """True inside an initialised torch.distributed process group."""
    return dist.is_available() and dist.is_initialized()


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
    preds: List = []

    def stop(err):  # an unreadable image stops the evaluation: its AP would silently be wrong
        raise err

    # The prediction runner: images read ahead on a thread, batch_size per forward, in order.
    run(model, [str(dataset.image_dir / info["file_name"]) for info in infos],
        [CallbackSink(lambda res, frame: preds.append(res))], batch_size=max(1, batch_size),
        score_threshold=score_threshold, top_k=top_k, progress=progress and rank == 0, on_skip=stop,
        sequence=False, shard=False, keep_image=False, **predict_kwargs)  # sharded here, by rank
    results: List[Dict] = []
    for info, res in zip(infos, preds):
        if len(kept) < len(ids):
            res = res.subset(np.isin(res.labels, kept))
        results += res.to_coco(info["id"], cats, kind="both")
    if world > 1:
        gathered: List[Optional[List[Dict]]] = [None] * world
        dist.all_gather_object(gathered, results)
        results = [r for part in gathered for r in part]
    return results
