"""``yolact predict --engine ray``: the same prediction as a Ray Data pipeline (needs
``yolact[scale]``). The image list becomes a dataset, :class:`RayPredictor` (one model per actor)
runs :func:`yolact.prediction.stream.stream` on each batch, and the driver hands every Results,
in input order, to the same sinks as the local engine, so every output flag works and the
files are the same.

Users with their own Ray dataset of image paths can use the class directly::

    import ray, yolact
    from yolact.prediction.ray_engine import RayPredictor
    ds = ray.data.from_items([{"path": p} for p in paths])
    out = ds.map_batches(RayPredictor, fn_constructor_kwargs={"load": functools.partial(yolact.load, "w.pth")},
                         batch_size=4, concurrency=2)   # columns: path, records, error, result

Ray is started locally when none runs (``RAY_NUM_CPUS`` caps it); ``RAY_ADDRESS`` points it at
a cluster (Ray's own variable).
"""
from __future__ import annotations

import json
import os
import pickle
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np

from ..errors import YolactError


class RayPredictor:
    """A callable class for ``Dataset.map_batches``: ``load()`` (a picklable callable returning a
    Predictor, e.g. ``functools.partial(yolact.load, path)``) runs once per actor; each batch
    (column ``path``: image files) goes through ``stream`` with ``controls`` (``score_threshold``,
    ``top_k``, ``batch_size``, the prediction controls). Returns the columns ``path``,
    ``records`` (JSON list of the detection records, RLE masks, :meth:`Results.to_records`),
    ``error`` (the one-line reason an image was skipped, else ''), ``result`` (the pickled
    Results, empty when skipped) and any other input column unchanged."""

    def __init__(self, load: Callable, **controls):
        self.model = load()
        self.controls = controls

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, list]:
        from .stream import stream

        paths = [str(p) for p in batch["path"]]
        skipped: List[str] = []
        results = {}
        try:
            for res in stream(self.model, paths, on_skip=lambda e: skipped.append(str(e)), **self.controls):
                results[res.path] = res
        except YolactError as e:  # a batch of one unreadable image, or of unreadable images only
            if results:
                raise
            skipped = [str(e)] * len(paths)
        reasons = iter(skipped)
        out = {k: list(v) for k, v in batch.items()}
        out.update(records=[], error=[], result=[])
        for p in paths:
            res = results.get(p)
            out["records"].append(json.dumps(res.to_records("rle")) if res is not None else "[]")
            out["error"].append("" if res is not None else next(reasons, f"{p}: unreadable"))
            out["result"].append(pickle.dumps(res) if res is not None else b"")
        return out


def _init_ray() -> None:
    try:
        import ray
    except ImportError:
        raise YolactError("--engine ray needs Ray Data: pip install 'yolact[scale]'") from None
    if not ray.is_initialized():
        cpus = os.environ.get("RAY_NUM_CPUS")
        local = not os.environ.get("RAY_ADDRESS")
        ray.init(num_cpus=int(cpus) if cpus and local else None, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)


def ray_stream(load: Callable, todo: List[Tuple[int, object]], actors: int = 1,
               on_skip: Optional[Callable[[YolactError], None]] = None, **controls) -> Iterator:
    """Yield the Results of the images ``todo`` ((index, path) pairs), in that order, predicted
    by ``actors`` Ray actors each holding ``load()`` (one GPU each when CUDA is there). Unreadable
    images go to ``on_skip``. Raises YolactError without Ray."""
    _init_ray()
    import ray
    import torch

    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # the sinks get the images in input order
    context.enable_progress_bars = False  # the runner's bar counts the images
    ds = ray.data.from_items([{"index": int(i), "path": str(p)} for i, p in todo])
    ds = ds.map_batches(RayPredictor, fn_constructor_kwargs=dict(load=load, **controls),
                        batch_size=controls.get("batch_size", 4), concurrency=actors,
                        num_gpus=1 if torch.cuda.is_available() else 0, batch_format="numpy")
    for row in ds.iter_rows():
        if row["error"]:
            if on_skip is not None:
                on_skip(YolactError(row["error"]))
            continue
        yield pickle.loads(row["result"])
