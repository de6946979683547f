"""Typed predictors: one interface from images to :class:`~yolact.results.Results` for every backend.

:class:`Predictor` declares what every backend has (``backend``, ``cfg``, ``precision``,
``path``, ``tracker``) and implements ``predict``, ``predict_batch`` and ``track`` once:

    sources -> images (BGR uint8) -> YolactTransform.resize -> backend._detect -> PostProcess
            -> PostProcess.to_image -> Results

A backend only says how it turns resized images into detections on the model grid
(``_detect``). :class:`TorchPredictor` is the PyTorch one: the network itself (a
:class:`~yolact.model.yolact.Yolact` subclass, so its state dict is the official one) with its
precision and compilation as explicit state. ONNX Runtime and OpenVINO are in
:mod:`yolact.deploy`.
"""
from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..config import YolactConfig
from ..errors import YolactError
from ..model.postprocess import NMS_KINDS, Detections, PostProcess
from ..model.transform import YolactTransform
from ..model.yolact import Decoded, Yolact, decode_heads
from ..results import Results
from .sources import is_collection, load_sources

COMPILE_MODES = ("default", "max-autotune", "reduce-overhead")
# Sliced prediction skips its whole-image pass beyond this aspect ratio (the square network
# input would squash the picture more than 2:1).
MAX_SQUASH = 2.0
_OVERLAP_0_SAID = False  # the note on slice overlap 0 is said once a process
_PANORAMA_SAID = False  # and the one on a panorama's skipped whole-image pass
_DTYPES = {"fp32": torch.float32, "fp32-fused": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class PredictOptions:
    """What to keep of one image's detections (the controls of ``predict``).

    ``score_threshold``: class scores above it (0 keeps all). ``top_k``: at most this many.
    ``nms``: 'fast', 'cross_class' (class-agnostic) or 'classic'. ``iou``: NMS IoU threshold
    (None: the config's 0.5). ``classes``: 0-based class ids to keep (None: all).
    ``keep_image``/``keep_proto``: attach the image / the prototypes and coefficients.
    ``slice``: (tile side in pixels, overlap fraction) for sliced inference (None: the whole
    image at once); ``slice_full``: with ``slice``, also run the whole image (large objects).
    """
    score_threshold: float = 0.15
    top_k: int = 100
    nms: str = "fast"
    iou: Optional[float] = None
    classes: Optional[Tuple[int, ...]] = None
    keep_image: bool = True
    keep_proto: bool = False
    slice: Optional[Tuple[int, float]] = None
    slice_full: bool = True


class Predictor(ABC):
    """The interface of every backend. Subclasses set the declared attributes and implement
    :meth:`_detect`."""

    backend: str = "?"                      # 'torch', 'onnxruntime' or 'openvino'
    cfg: YolactConfig
    precision: str = "fp32"                 # fp32, fp32-fused, bf16, fp16, int8
    path: Optional[Path] = None             # the file it was loaded from
    tracker: Optional[Any] = None           # the persistent Tracker of track(persist=True)

    @property
    def class_names(self) -> Tuple[str, ...]:
        """The foreground class names, index = 0-based class id (``cfg.class_names``)."""
        return self.cfg.class_names

    @property
    def device(self) -> torch.device:
        """Where the input tensors go: the CPU for runtimes (ONNX Runtime, OpenVINO)."""
        return torch.device("cpu")

    # ------------------------------------------------------------------ the backend's part
    @abstractmethod
    def _detect(self, images: torch.Tensor, options: Sequence[PredictOptions]) -> List[Detections]:
        """Resized BGR float32 images [N, 3, S, S] (0..255) -> per image Detections on the model
        grid (relative boxes, soft masks) already limited by that image's options."""

    # ------------------------------------------------------------------ shared
    def options(self, score_threshold: float = 0.15, top_k: Optional[int] = None, nms: str = "fast",
                iou: Optional[float] = None, classes=None, agnostic_nms: bool = False,
                max_det: Optional[int] = None, keep_image: bool = True, keep_proto: bool = False,
                slice=None, slice_full: bool = True) -> PredictOptions:
        """Validated :class:`PredictOptions`. ``classes``: names or 0-based ids. ``agnostic_nms``
        selects the class-agnostic Fast NMS; ``max_det`` is an alias of ``top_k``; neither given:
        the config's ``max_num_detections`` (100 in every preset; an exported graph's K). ``slice``: a
        tile side (overlap 0.2) or (tile, overlap). Raises YolactError for an unknown class, NMS
        kind, an out-of-range threshold or slice, or ``keep_proto`` with ``slice``."""
        if agnostic_nms:
            nms = "cross_class"
        if nms not in NMS_KINDS:
            raise YolactError(f"unknown nms '{nms}' ({', '.join(NMS_KINDS)})")
        for what, v in (("iou", iou), ("score threshold", score_threshold)):
            if isinstance(v, (float, np.floating)) and np.isnan(v):  # not "out of range": not a number at all
                raise YolactError(f"{what} {v}: not a number (expected a value in [0, 1])")
        if iou is not None and not 0 < iou <= 1:
            raise YolactError(f"iou {iou}: expected a value in (0, 1]")
        if not 0 <= score_threshold <= 1:
            raise YolactError(f"score threshold {score_threshold}: expected a value in [0, 1]")
        top_k = max_det if max_det is not None else top_k
        top_k = int(self.cfg.max_num_detections if top_k is None else top_k)
        if top_k < 1:  # 0 would give an empty result (and an AP of 0) without a word
            raise YolactError(f"max detections {top_k}: expected at least 1")
        if slice is not None:
            from .slicing import tile_windows

            try:
                tile, overlap = (slice, 0.2) if isinstance(slice, (int, np.integer)) else tuple(slice)
                tile, overlap = float(tile), float(overlap)
            except (TypeError, ValueError):
                raise YolactError(f"slice {slice!r}: expected a tile side in pixels or (tile, overlap)") from None
            if int(tile) != tile:
                raise YolactError(f"slice tile {tile}: expected a whole number of pixels")
            slice = (int(tile), overlap)
            tile_windows(1, 1, *slice)  # validates
            global _OVERLAP_0_SAID
            if overlap == 0 and not _OVERLAP_0_SAID:
                _OVERLAP_0_SAID = True
                print("note: slice overlap 0: an object cut by a tile border is seen only in pieces (merged by "
                      "their masks) or by the whole-image pass; small objects on a border can be missed "
                      "(default overlap 0.2)", file=sys.stderr, flush=True)
            if keep_proto:
                raise YolactError("keep_proto does not combine with slice (each tile has its own prototypes)")
        return PredictOptions(float(score_threshold), top_k, nms, iou, self.class_ids(classes), keep_image, keep_proto,
                              slice, bool(slice_full))

    def class_ids(self, classes) -> Optional[Tuple[int, ...]]:
        """Class names or 0-based ids (or a comma-separated string of them) -> sorted ids."""
        if classes is None:
            return None
        if isinstance(classes, (str, int, np.integer)):
            classes = [c.strip() for c in classes.split(",")] if isinstance(classes, str) else [classes]
        ids = set()
        for c in classes:
            if isinstance(c, str) and c in self.class_names:
                ids.add(self.class_names.index(c))
            elif isinstance(c, (int, np.integer)) or (isinstance(c, str) and c.isdigit()):
                i = int(c)
                if not 0 <= i < len(self.class_names):
                    raise YolactError(f"class id {i}: the model has classes 0..{len(self.class_names) - 1}")
                ids.add(i)
            else:
                raise YolactError(f"unknown class '{c}'; the model's classes: {', '.join(self.class_names)}")
        return tuple(sorted(ids))

    def transform(self, img_size: Optional[int] = None) -> YolactTransform:
        """The pre-processing of this model, at ``img_size`` (default: the trained size)."""
        return YolactTransform.from_config(self.cfg, img_size)

    def predict(self, source, score_threshold: Optional[float] = None, top_k: Optional[int] = None, nms: str = "fast",
                keep_image: bool = True, keep_proto: bool = False, stream: bool = False, batch_size: int = 4,
                classes=None, iou: Optional[float] = None, agnostic_nms: bool = False,
                max_det: Optional[int] = None, img_size: Optional[int] = None, slice=None, slice_full: bool = True,
                conf: Optional[float] = None):
        """Segment images: a path, a BGR uint8 array (OpenCV's convention), an http(s) URL, or
        several (a list, a folder searched recursively, a glob, a ``.txt`` list: see
        :mod:`yolact.prediction.sources`), in one batched forward. Returns one
        :class:`~yolact.results.Results` for a single image, a list for several. ``stream=True`` returns a generator of Results, one frame at a time,
        for a video file, a webcam index, a folder of frames, an image or a list
        (``batch_size`` frames per forward pass; decoding and inference run in threads).

        Controls: ``score_threshold``/``conf`` (class score, 0..1), ``top_k``/``max_det`` (at most this
        many; default the config's ``max_num_detections``, 100 in every preset), ``classes`` (names or ids to keep), ``iou`` (NMS IoU threshold, default 0.5),
        ``agnostic_nms`` (one NMS over all classes), ``nms`` ('fast', 'cross_class',
        'classic'), ``img_size`` (network input side, a multiple of 32; default the trained
        size). Raises YolactError for unreadable images and invalid controls; ValueError when
        ``conf`` and ``score_threshold`` (or ``max_det`` and ``top_k``) are both given and differ.

        Sliced inference, for objects under about 2% of the image side: ``slice=(tile,
        overlap)`` (or a tile side, overlap 0.2) runs overlapping ``tile`` x ``tile`` pixel
        tiles, each resized to the model's input, in batches, plus the whole image unless
        ``slice_full=False``, and merges the duplicates by their masks
        (:func:`yolact.prediction.slicing.merge_results`). Results are in full-image pixels.
        """
        # Ultralytics' names beside this package's: both given with different values is a
        # contradiction (one would be silently ignored), refused.
        score_threshold = _one_of("score_threshold", score_threshold, "conf", conf, 0.15)
        top_k = _one_of("top_k", top_k, "max_det", max_det, None)  # None: the config's cap (options)
        max_det = None
        opts = self.options(score_threshold, top_k, nms, iou, classes, agnostic_nms, max_det, keep_image, keep_proto,
                            slice, slice_full)
        if stream:
            from .stream import stream as stream_results
            return stream_results(self, source, batch_size=batch_size, score_threshold=opts.score_threshold,
                                  top_k=opts.top_k, keep_image=keep_image, nms=opts.nms, keep_proto=keep_proto,
                                  classes=opts.classes, iou=opts.iou, img_size=img_size, slice=opts.slice,
                                  slice_full=opts.slice_full)
        single = not is_collection(source)
        items = load_sources(source)
        results = self.predict_batch([img for img, _ in items], opts, img_size)
        for r, (_, path) in zip(results, items):
            r.path = path
        return results[0] if single else results

    @torch.no_grad()
    def predict_batch(self, images: Sequence[np.ndarray], options: Union[PredictOptions, Sequence[PredictOptions]],
                      img_size: Optional[int] = None) -> List[Results]:
        """BGR uint8 HxWx3 images -> one Results each, in one batched forward. ``options``: one
        for all images or one per image (the server gives each request its own)."""
        if len(images) == 0:
            return []
        opts = [options] * len(images) if isinstance(options, PredictOptions) else list(options)
        if any(o.slice is not None for o in opts):
            whole = [i for i, o in enumerate(opts) if o.slice is None]
            out: List[Optional[Results]] = [None] * len(images)
            for i, r in zip(whole, self.predict_batch([images[i] for i in whole], [opts[i] for i in whole], img_size)):
                out[i] = r
            for i, o in enumerate(opts):
                if o.slice is not None:
                    out[i] = self._predict_sliced(images[i], o, img_size)
            return out
        dets = self.detect(images, opts, img_size, crops=True)
        return [self._results(det, img, o) for det, img, o in zip(_to_host(dets), images, opts)]

    @torch.no_grad()
    def detect(self, images: Sequence[np.ndarray], options: Union[PredictOptions, Sequence[PredictOptions]] =
               PredictOptions(), img_size: Optional[int] = None, crops: bool = False) -> List[Detections]:
        """BGR uint8 HxWx3 images -> per image Detections in image pixels (integer boxes, bool
        masks [D, H, W], or with ``crops`` a MaskCrops on the host) on the model's device, not
        copied to the host: the GPU path's end point. On CUDA they are fixed-size with ``valid``
        set (no host synchronisation); ``det.compact()`` keeps the valid ones."""
        if len(images) == 0:
            return []
        opts = [options] * len(images) if isinstance(options, PredictOptions) else list(options)
        x = self.transform(img_size).resize(images, self.device)
        return [PostProcess.to_image(d, img.shape[0], img.shape[1], crops, self.cfg.mask_interpolation)
                for d, img in zip(self._detect(x, opts), images)]

    def _predict_sliced(self, image: np.ndarray, opts: PredictOptions, img_size: Optional[int],
                        batch: int = 8) -> Results:
        """One image by tiles (``opts.slice``), ``batch`` tiles per forward, plus the whole
        image (``opts.slice_full``), merged in full-image coordinates."""
        from .slicing import merge_results, shift_results, tile_windows

        h, w = image.shape[:2]
        # Square tiles: a side past the image's short side would make tiles that the square
        # network input squashes (a 640 px tile on a 160 px tall panorama).
        tile = max(32, min(opts.slice[0], h, w))
        windows = tile_windows(h, w, tile, opts.slice[1])
        tile_opts = replace(opts, slice=None, keep_image=False, keep_proto=False)
        parts = []
        for k in range(0, len(windows), batch):
            group = windows[k:k + batch]
            tiles = [image[y0:y1, x0:x1] for x0, y0, x1, y1 in group]
            for (x0, y0, _, _), r in zip(group, self.predict_batch(tiles, tile_opts, img_size)):
                parts.append(shift_results(r, x0, y0, (h, w)))
        whole = self._whole_image_pass(image, tile_opts, img_size) if opts.slice_full and len(windows) > 1 else None
        if whole is not None:
            parts.append(whole)
        res = merge_results(parts, (h, w), top_k=opts.top_k)
        if not res.class_names:
            res.class_names = self.class_names
        res.category_ids = self.cfg.label_category_ids()
        res.image = image if opts.keep_image else None
        return res

    def _whole_image_pass(self, image: np.ndarray, opts: PredictOptions, img_size: Optional[int]):
        """The whole image for sliced prediction (large objects), or None for a panorama: the
        network's input is square, so an image longer than ``MAX_SQUASH`` times its width would
        be squashed out of shape (or, letterboxed, shrunk to a strip) and give wide false
        detections spanning several objects. Objects larger than a tile are then found by
        merging their pieces across tiles; a note says so once."""
        h, w = image.shape[:2]
        if max(h, w) <= MAX_SQUASH * min(h, w):
            return self.predict_batch([image], opts, img_size)[0]
        global _PANORAMA_SAID
        if not _PANORAMA_SAID:
            _PANORAMA_SAID = True
            from tqdm import tqdm  # above a running progress bar, not on its line

            tqdm.write(f"note: {w}x{h} is a panorama ({max(h, w) / min(h, w):.1f}:1): sliced prediction skips the "
                       "whole-image pass (it would squash the picture); objects larger than a tile are merged from "
                       "their pieces", file=sys.stderr)
        return None

    def _results(self, det: Detections, image: np.ndarray, opts: PredictOptions) -> Results:
        h, w = image.shape[:2]
        det = det.compact()
        proto = det.proto
        masks = det.masks.numpy() if isinstance(det.masks, torch.Tensor) else det.masks  # or MaskCrops
        return Results(boxes=det.boxes.numpy(), scores=det.scores.float().numpy(),
                       labels=det.classes.long().numpy(), masks=masks,
                       class_names=self.class_names, box_scores=det.box_scores.float().numpy(),
                       image_shape=(h, w), image=image if opts.keep_image else None,
                       proto=proto.numpy() if opts.keep_proto and proto is not None else None,
                       coeffs=det.coeffs.numpy() if opts.keep_proto else None,
                       category_ids=self.cfg.label_category_ids())

    def track(self, source, tracker: str = "bytetrack", persist: bool = False, config=None,
              agnostic: bool = False, **kwargs):
        """Track instances through a video, webcam, folder of frames or list of frames: a
        generator of per-frame Results with ``track_ids``. ``tracker``: 'bytetrack', 'mask'
        (adds mask IoU to the association) or 'iou' (a naive baseline). ``persist=True`` keeps
        the tracker in ``self.tracker`` between calls (e.g. one frame per call). Other keyword
        arguments go to :func:`yolact.prediction.stream.run_tracker` and ``predict``."""
        from ..tracking import build_tracker
        from .stream import run_tracker

        trk = build_tracker(tracker, config, agnostic)
        if persist and type(self.tracker) is type(trk) and self.tracker.cfg == trk.cfg:
            trk = self.tracker
        if persist:
            self.tracker = trk
        return run_tracker(self, source, trk, **kwargs)

    def info(self, img_size: Optional[int] = None, verbose: bool = True) -> dict:
        """Preset, classes, input size, layers, parameters, GFLOPs at the input size (PyTorch),
        backend, precision and the file's origin (official, trained by ``yolact train``,
        exported); printed when ``verbose``. See :func:`yolact.prediction.info.model_info`."""
        from .info import format_info, model_info

        d = model_info(self, self.path, img_size)
        d.update(backend=self.backend, precision=self.precision)
        if verbose:
            print(format_info(d))
        return d


def _to_host(dets: List[Detections]) -> List[Detections]:
    """Every image's detections on the host: from CUDA, one pinned non-blocking copy of all
    their tensors, then one synchronisation for the batch."""
    if not dets or all(d.boxes.device.type == "cpu" for d in dets):
        return dets
    cuda = any(d.boxes.device.type == "cuda" for d in dets)
    out = [Detections(*(t.to("cpu", non_blocking=cuda) if isinstance(t, torch.Tensor) else t for t in d))
           for d in dets]
    if cuda:
        torch.cuda.synchronize()
    return out


class TorchPredictor(Yolact, Predictor):
    """The network run by PyTorch, with ``predict``. ``yolact.load`` and ``yolact.build``
    return one; its state dict is the network's (official key names).

    ``precision``: 'fp32' (exact: the original's arithmetic, bit for bit), 'fp32-fused' (BN
    folded, channels-last), 'bf16' or 'fp16' (weights and activations; post-processing in fp32).
    Set with :meth:`set_precision` after the weights are loaded. ``compile_mode``: None or a
    ``torch.compile`` mode for the network (:meth:`set_compile`).
    """

    backend = "torch"

    def __init__(self, cfg: YolactConfig, criterion: Optional[torch.nn.Module] = None):
        Yolact.__init__(self, cfg, criterion)
        self.precision = "fp32"
        self.compile_mode: Optional[str] = None
        self.path: Optional[Path] = None
        self.load_report = None  # KeyReport of the loaded file: keys missing, unexpected or re-shaped
        self.tracker = None
        self._input_dtype = torch.float32
        self._compiled_heads = None

    @classmethod
    def from_file(cls, path, config=None, device=None, strict: bool = True, precision: Optional[str] = None,
                  compile: Optional[str] = None) -> "TorchPredictor":
        """Load a checkpoint (official ``.pth`` or one written by ``yolact train``; see
        :func:`yolact.checkpoint.load_model`) in eval mode, then set its precision (None: the
        model's default, :func:`yolact.config.default_precision`) and compilation. Raises
        YolactError naming the file and the keys that do not fit."""
        from ..checkpoint import load_model
        from ..config import default_precision

        model, report = load_model(path, config=config, device=device, strict=strict, build=cls)
        model.path, model.load_report = Path(path), report
        precision = default_precision(model.cfg) if precision is None else precision
        if precision != "fp32":
            model.set_precision(precision)
        if compile:
            model.set_compile(compile)
        return model

    @classmethod
    def from_network(cls, net: Yolact) -> "TorchPredictor":
        """A predictor sharing ``net``'s modules and parameters (no copy); ``net`` itself if it
        is one already."""
        if isinstance(net, cls):
            return net
        pred = cls.__new__(cls)
        pred.__dict__.update(net.__dict__)
        pred.__dict__.update(_modules=dict(net._modules), _parameters=dict(net._parameters),
                             _buffers=dict(net._buffers))
        pred.precision, pred.compile_mode, pred.path, pred.load_report, pred.tracker = "fp32", None, None, None, None
        pred._input_dtype = next(net.parameters()).dtype
        pred._compiled_heads = None
        return pred

    @property
    def device(self) -> torch.device:
        """The device of the network's parameters (inputs are moved there)."""
        return next(self.parameters()).device

    def set_precision(self, precision: str, channels_last: bool = True) -> "TorchPredictor":
        """Convert in place for fast inference (eval mode): BN folded into the convolutions,
        weights in ``precision``'s type, channels-last memory. Raises YolactError for an unknown
        precision, fp16 on a CPU, or a model already converted to another precision that would
        have to be undone ('fp32' after any conversion, anything after bf16/fp16: reload)."""
        from ..model.fuse import fold_batchnorm

        if precision == "int8":
            raise YolactError("int8 runs through ONNX Runtime or OpenVINO: yolact export --quantize int8 "
                              "or --format openvino --int8, then load the exported file")
        if precision not in _DTYPES:
            raise YolactError(f"unknown precision '{precision}' ({', '.join(_DTYPES)})")
        if precision == "fp16" and self.device.type == "cpu":
            raise YolactError("fp16 is for GPUs; on CPU use bf16")
        if precision == self.precision:
            return self
        # a converted model has no BatchNorm left (and bf16/fp16 rounded its weights): it can
        # only be narrowed further (fp32-fused -> bf16/fp16), never made exact again
        if self.precision != "fp32" and (precision == "fp32" or self.precision in ("bf16", "fp16")):
            raise YolactError(f"this model is already converted to {self.precision} (BatchNorm folded"
                              + (", weights rounded" if self.precision in ("bf16", "fp16") else "")
                              + f"); for {precision}, load it again: yolact.load(path, precision='{precision}')")
        self.eval()
        fold_batchnorm(self)
        self.to(dtype=_DTYPES[precision])
        if channels_last:
            self.to(memory_format=torch.channels_last)
        # "fp32" never gets here: a no-op on an exact model, refused on a converted one
        self.precision, self._input_dtype = precision, _DTYPES[precision]
        return self

    def set_compile(self, mode: Optional[str] = "default") -> "TorchPredictor":
        """``torch.compile`` the network (backbone to heads) for ``predict``; post-processing
        stays eager because its shapes change with every image. 'reduce-overhead' adds CUDA
        graphs on a GPU. The first call of each input size compiles (tens of seconds)."""
        if mode is None:
            self.compile_mode, self._compiled_heads = None, None
            return self
        if mode not in COMPILE_MODES:
            raise YolactError(f"unknown compile mode '{mode}' ({', '.join(COMPILE_MODES)})")
        self.eval()
        self.compile_mode = mode
        self._compiled_heads = torch.compile(self.forward_heads, mode=mode, dynamic=False)
        return self

    @property
    def input_dtype(self) -> torch.dtype:
        """The dtype the network takes (float32, or bfloat16/float16 after set_precision)."""
        return self._input_dtype

    def heads(self, x: torch.Tensor) -> Decoded:
        """The network in eval mode on a normalised input [N, 3, S, S] of ``input_dtype``, through
        the compiled forward when there is one, decoded (:func:`yolact.model.yolact.decode_heads`:
        float32 boxes, softmax scores, coefficients, prototypes)."""
        if self._compiled_heads is None:
            out = self.forward_heads(x)
        else:
            if self.compile_mode == "reduce-overhead" and x.device.type == "cuda":
                torch.compiler.cudagraph_mark_step_begin()  # earlier graph outputs may be overwritten
            out = self._compiled_heads(x)
        return decode_heads(out)

    def _detect(self, images: torch.Tensor, options: Sequence[PredictOptions]) -> List[Detections]:
        was_training = self.training
        # eval() and train() walk every module (~0.6 ms a prediction for the slim preset): only
        # when some module is in training mode
        switch = was_training or any(m.training for m in self.modules())
        if switch:
            self.eval()
        try:
            x = YolactTransform(images.shape[-1], self.cfg.normalize).normalize(images).to(self._input_dtype)
            if self.precision != "fp32" and x.device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            out = self.heads(x)
            dets = []
            for i, o in enumerate(options):
                post = PostProcess(self.cfg, self.maskiou_net, o.nms, o.iou, o.top_k)
                # On a GPU the fixed-size path: no host synchronisation until the copy to the host.
                run = post.forward_static if x.device.type == "cuda" and o.nms == "fast" else post
                det = run(out.boxes[i], out.scores[i], out.coef[i], out.proto[i], o.score_threshold, o.top_k,
                          o.classes)
                dets.append(det._replace(proto=out.proto[i]) if o.keep_proto else det)
        finally:
            if switch:
                self.train(was_training)
        return dets


def _one_of(name: str, value, alias: str, alias_value, default):
    """The value of an option with two names (``name`` and its alias): the given one, ``default``
    when neither is. Raises ValueError naming both when both are given with different values."""
    if value is not None and alias_value is not None and value != alias_value:
        raise ValueError(f"{name}={value} and {alias}={alias_value} contradict each other: give one of them")
    return value if value is not None else alias_value if alias_value is not None else default
