"""The exported graphs, and the predictor base of the runtimes that run them.

Two graphs, both starting from ``images`` float32 [N, 3, S, S]: BGR, 0..255, already resized
to S x S (:meth:`YolactTransform.resize`):

* core (default): normalisation + network + box decoding. Outputs ``boxes`` [N, P, 4]
  (relative x1, y1, x2, y2), ``scores`` [N, P, C+1] (softmax, background first), ``coefs``
  [N, P, K], ``proto`` [N, Hp, Wp, K]. Post-processing runs in PyTorch (:class:`PostProcess`).
* with post-processing (batch 1): the same, then :class:`PostProcess` itself, traced: the
  candidate threshold, per-class Fast NMS, mask assembly and YOLACT++ re-scoring. Outputs
  ``det_boxes`` [D, 4] relative, ``det_scores`` [D] (YOLACT++: re-scored), ``det_classes``
  [D] (0-based), ``det_box_scores`` [D] (class scores), ``det_masks`` [D, Hp, Wp] soft masks
  cropped to their boxes; D may be 0.

The edge formats (LiteRT, ExecuTorch, Core ML) write a third, :class:`EdgeGraph`: the whole
pipeline at a fixed K (:meth:`PostProcess.forward_static`), uint8 [1, S, S, 3] in, ``EDGE_OUTPUTS``
out (boxes in pixels of the S x S input, scores, class_scores, labels, masks, count).
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

from ..config import YolactConfig
from ..prediction.predictor import PredictOptions, Predictor
from ..errors import YolactError, warn
from ..model.postprocess import Detections, PostProcess
from ..model.transform import YolactTransform
from ..model.yolact import decode_heads

CORE_OUTPUTS = ["boxes", "scores", "coefs", "proto"]
POST_OUTPUTS = ["det_boxes", "det_scores", "det_classes", "det_box_scores", "det_masks"]


class CoreGraph(nn.Module):
    """Normalisation + network + box decoding: the core graph's module (traced on a copy of the
    network, so export never changes the caller's model)."""

    def __init__(self, net: nn.Module, size: int):
        super().__init__()
        self.net = net
        self.transform = YolactTransform(size, net.cfg.normalize)
        with torch.no_grad():
            probe = net.forward_heads(torch.zeros(1, 3, size, size))
        self.register_buffer("priors", probe.priors.float().clone())

    def heads(self, images: torch.Tensor):
        """BGR float32 images [N, 3, S, S] (0..255, resized) -> (boxes [N, P, 4] relative x1, y1,
        x2, y2, scores [N, P, C+1] softmax with background first, coefs [N, P, K], proto [N, Hp, Wp, K])."""
        return tuple(decode_heads(self.net.forward_heads(self.transform.normalize(images)), self.priors))

    def forward(self, images: torch.Tensor):
        """The core graph's outputs (``CORE_OUTPUTS``): see :meth:`heads`."""
        return self.heads(images)


class PostGraph(CoreGraph):
    """The core graph followed by :class:`PostProcess` (Fast NMS, masks, re-scoring), batch 1."""

    def __init__(self, net: nn.Module, size: int):
        super().__init__(net, size)
        self.post = PostProcess(net.cfg, net.maskiou_net, "fast")

    def forward(self, images: torch.Tensor):
        """One image [1, 3, S, S] -> ``POST_OUTPUTS``: det_boxes [D, 4] relative, det_scores [D],
        det_classes [D] int64 0-based, det_box_scores [D], det_masks [D, Hp, Wp] soft masks; at most
        ``cfg.max_num_detections``, score threshold 0 (D may be 0)."""
        boxes, scores, coef, proto = self.heads(images)
        det = self.post(boxes[0], scores[0], coef[0], proto[0], 0.0, self.net.cfg.max_num_detections)
        return det.boxes, det.scores, det.classes, det.box_scores, det.masks


EDGE_INPUT = "image"
# the formats whose export writes the whole pipeline (EdgeGraph) unless --no-include-postprocess
EDGE_PIPELINE_BACKENDS = ("litert", "executorch", "coreml")
EDGE_OUTPUTS = ["boxes", "scores", "class_scores", "labels", "masks", "count"]


class EdgeGraph(CoreGraph):
    """The whole pipeline at a fixed size, for the edge formats (LiteRT, ExecuTorch, Core ML):
    normalisation, network, box decoding, then :meth:`PostProcess.forward_static` (candidate
    threshold, per-class Fast NMS, top-K, mask assembly and crop, YOLACT++ re-scoring).

    Input ``image`` uint8 [1, S, S, 3]: one BGR image already resized to S x S (NHWC, as a
    camera frame or ``cv2.resize`` gives it). Outputs (``EDGE_OUTPUTS``), K = ``max_num_detections``
    rows in descending class score, the first ``count`` valid and the rest zeros:

    * ``boxes`` float32 [K, 4]: x1, y1, x2, y2 in pixels of the S x S input (multiply by
      W / S and H / S for the original image);
    * ``scores`` float32 [K]: the mask scores (YOLACT++: class score x predicted mask IoU; a
      ``--recipe fast`` model: class score x maskness);
    * ``class_scores`` float32 [K]: the class scores (what score thresholds compare; equal to
      ``scores`` for YOLACT);
    * ``labels`` int32 [K]: 0-based class index;
    * ``masks`` float32 [K, Hp, Wp]: soft masks (0..1) on the prototype grid (S / 4), already
      cropped to their boxes: resize to the image (bilinearly; bicubically for a model whose
      config has ``mask_interpolation='bicubic'``, as ``--recipe fast`` trains), then > 0.5;
    * ``count`` int32 [1]: the number of valid rows.

    ``nhwc_uint8=False`` takes float32 [1, 3, S, S] BGR 0..255 instead (NCNN, whose blobs are float)."""

    def __init__(self, net: nn.Module, size: int, nhwc_uint8: bool = True):
        super().__init__(net, size)
        self.size = size
        self.nhwc_uint8 = nhwc_uint8
        self.post = PostProcess(net.cfg, net.maskiou_net, "fast")

    def forward(self, image: torch.Tensor):
        x = image.permute(0, 3, 1, 2).float() if self.nhwc_uint8 else image
        boxes, scores, coef, proto = self.heads(x)
        det = self.post.forward_static(boxes[0], scores[0], coef[0], proto[0])
        valid = det.valid
        v = valid.float()
        # with no threshold and no class filter the valid rows are a prefix (descending scores)
        return (det.boxes * (self.size * v[:, None]), det.scores * v, det.box_scores * v,
                (det.classes * valid.long()).to(torch.int32), det.masks * v[:, None, None],
                valid.sum().to(torch.int32).reshape(1))


def edge_graph(model: nn.Module, size: Optional[int], max_det: Optional[int] = None, nhwc_uint8: bool = True):
    """The eval-mode :class:`EdgeGraph` of an :func:`export_copy` of ``model`` at input ``size``
    keeping K = ``max_det`` detections (default the preset's, 100); returns (graph, the copied
    network, the input side)."""
    net = export_copy(model, size)
    net.cfg = PostProcess.graph_caps(net.cfg, max_det)
    size = net.cfg.max_size
    return EdgeGraph(net, size, nhwc_uint8).eval(), net, size


def edge_dummy(size: int, nhwc_uint8: bool = True) -> torch.Tensor:
    """An input to trace or export an :class:`EdgeGraph` with (some structure in it)."""
    x = torch.zeros(1, 3, size, size)
    x[:, :, size // 4: size // 2, size // 4: size // 2] = 200
    return x.permute(0, 2, 3, 1).to(torch.uint8).contiguous() if nhwc_uint8 else x


def export_copy(model: nn.Module, size: Optional[int]) -> nn.Module:
    """A float32, eval-mode copy of the network to trace, at input ``size``; the caller's
    model is left as it is. Raises YolactError for a size that is not a multiple of 32."""
    # A compiled forward (TorchPredictor.set_compile) is not copied: the copy is traced eagerly.
    memo = {id(v): None for k, v in vars(model).items() if k == "_compiled_heads" and v is not None}
    net = copy.deepcopy(model, memo).eval().float()
    size = size or net.cfg.max_size
    YolactTransform.from_config(net.cfg, size)  # validates the size
    if size != net.cfg.max_size:
        # Another input size of the same trained network: anchors keep their pixel size
        # (Yolact.priors_for), so only max_size changes; not with_input_size, which is for training.
        net.cfg = net.cfg.replace(max_size=size)
        net._prior_cache.clear()
    return net


def export_core_graph(model: nn.Module, size: Optional[int], graph_cls=None):
    """The eval-mode core graph (``graph_cls``, default :class:`CoreGraph`) of an
    :func:`export_copy` of ``model`` at input ``size``, for a format that writes the core graph
    only; returns (graph, the copied network, the input side). Warns once that a YOLACT++
    graph's scores are the class scores (its mask re-scoring needs the assembled masks)."""
    import warnings

    net = export_copy(model, size)
    size = net.cfg.max_size
    if net.cfg.use_maskiou:
        warnings.warn("YOLACT++ core graph: the mask re-scoring net needs the assembled masks, so its scores "
                      "leave out the predicted IoU", stacklevel=3)
    return (graph_cls or CoreGraph)(net, size).eval(), net, size


class GraphPredictor(Predictor):
    """A predictor whose network is an exported graph run by a runtime. Subclasses set
    ``cfg``, ``include_postprocess``, ``precision``, ``path`` and implement :meth:`run_each`."""

    include_postprocess: bool = False
    edge_outputs: bool = False  # the file is an EdgeGraph: uint8 NHWC in, EDGE_OUTPUTS out
    _cap_said = False  # the post-processing graph's fixed cap is said once

    def run_each(self, images: np.ndarray) -> List[list]:
        """Resized images [N, 3, S, S] float32 -> per image the graph's outputs (numpy arrays,
        batch axis dropped)."""
        raise NotImplementedError

    def file_io(self) -> Dict[str, Dict[str, list]]:
        """The file's ``inputs`` and ``outputs`` as its runtime reads them (name -> shape, e.g.
        ``masks`` [K, Hp, Wp]); {} where the runtime does not say (subclasses that can)."""
        return {}

    def describe(self) -> Dict:
        """What ``yolact info`` says of the file beside its config: ``graph`` ('whole pipeline',
        'post-processing graph' or 'core graph'), ``max_det`` (K, the rows or detections it
        keeps at most; None for a core graph, whose NMS runs on the host: any --max-det),
        ``stored`` (precision of its network: 'fp32' or 'int8'), and :meth:`file_io`'s
        ``inputs``/``outputs`` when the runtime reads them. K is read from the output shapes
        where they are fixed (the whole pipeline), else from the file's metadata."""
        io = self.file_io()
        post = self.edge_outputs or self.include_postprocess
        k = None
        if post:
            masks = io.get("outputs", {}).get("masks") or io.get("outputs", {}).get("det_masks")
            k = int(masks[0]) if masks and isinstance(masks[0], int) and masks[0] > 0 else self.cfg.max_num_detections
        kind = "whole pipeline" if self.edge_outputs else "post-processing graph" if post else "core graph"
        return {"graph": kind, "max_det": k, "stored": "int8" if self.precision == "int8" else "fp32", **io}

    def _per_image(self, outs: list) -> list:
        """One batch-1 run's outputs without the batch axis (the post-processing graph has none)."""
        return outs if self.include_postprocess else [o[0] for o in outs]

    @staticmethod
    def edge_input(image: np.ndarray) -> np.ndarray:
        """One resized image float32 [3, S, S] (BGR 0..255) -> an :class:`EdgeGraph`'s input,
        uint8 [1, S, S, 3] (rounded to the nearest integer: what a camera frame or
        ``cv2.resize`` gives the file on a device)."""
        return np.clip(np.rint(image), 0, 255).astype(np.uint8).transpose(1, 2, 0)[None].copy()

    def transform(self, img_size: Optional[int] = None) -> YolactTransform:
        """The pre-processing at the graph's fixed input size. Raises YolactError when ``img_size``
        differs from the size the graph was exported at."""
        if img_size is not None and img_size != self.cfg.max_size:
            YolactTransform.from_config(self.cfg, img_size)  # a size no export takes is refused as such
            raise YolactError(f"{self.path}: this graph was exported at {self.cfg.max_size} px; for {img_size} px "
                              f"{self.export_hint(img_size=img_size)}")
        return super().transform()

    def export_hint(self, **changes) -> str:
        """'export it again: <command>' (:meth:`export_command`)."""
        # WEIGHTS: the file does not record the checkpoint it came from
        calib = "; add --calib DIR, a folder of your images, to calibrate on them" if self.precision == "int8" else ""
        return f"export it again: {self.export_command(**changes)} (WEIGHTS: the .pt/.pth it was exported from{calib})"

    def export_command(self, **changes) -> str:
        """The ``yolact export`` command line that writes a file like this one (same format,
        graph, precision, input size and K) from its PyTorch weights (``WEIGHTS``), with
        ``changes`` (``img_size``, ``max_det``) applied: what a hint prints. Every flag is one
        export accepts for this format (``tests/test_hints.py`` parses and validates it)."""
        from ..formats import FORMATS

        fmt = FORMATS[self.backend]
        words = ["yolact", "export", "--weights", "WEIGHTS", "--format", fmt.format_name]
        post = self.edge_outputs or self.include_postprocess
        if self.include_postprocess and not self.edge_outputs:  # ONNX and OpenVINO: off by default
            words.append("--include-postprocess")
        elif not post and self.backend in EDGE_PIPELINE_BACKENDS:  # the whole pipeline is their default
            words.append("--no-include-postprocess")
        if self.precision == "int8":
            words += ["--quantize", "int8"] if self.backend == "onnxruntime" else ["--int8"]
        flags = {"img_size": self.cfg.max_size, **({"max_det": self.cfg.max_num_detections} if post else {})}
        flags.update(changes)
        for name, value in flags.items():
            words += [f"--{name.replace('_', '-')}", str(value)]
        return " ".join(words)

    def _detect(self, images: torch.Tensor, options: Sequence[PredictOptions]) -> List[Detections]:
        outs = self.run_each(images.cpu().numpy())
        dets = []
        for out, o in zip(outs, options):
            t = [torch.from_numpy(np.asarray(a)) for a in out]
            if self.edge_outputs:
                dets.append(self._from_edge_graph(t, o))
            elif self.include_postprocess:
                dets.append(self._from_post_graph(t, o))
            else:
                post = PostProcess(self.cfg, None, o.nms, o.iou, o.top_k)
                det = post(t[0].float(), t[1].float(), t[2].float(), t[3].float(), o.score_threshold, o.top_k,
                           o.classes)
                dets.append(det._replace(proto=t[3].float()) if o.keep_proto else det)
        return dets

    def _from_edge_graph(self, t: List[torch.Tensor], o: PredictOptions) -> Detections:
        """An :class:`EdgeGraph`'s outputs (``EDGE_OUTPUTS``) -> the first ``count`` rows as the
        post-processing graph's (relative boxes), limited by the options as there."""
        boxes, scores, class_scores, labels, masks, count = t
        n = int(count.reshape(-1)[0])
        return self._from_post_graph([boxes[:n].float() / self.cfg.max_size, scores[:n], labels[:n],
                                      class_scores[:n], masks[:n]], o)

    def _from_post_graph(self, t: List[torch.Tensor], o: PredictOptions) -> Detections:
        """The post-processing graph's outputs, limited by the options. Its NMS ran inside the
        graph (per-class Fast NMS at the exported IoU), so other NMS settings are refused, and
        ``classes`` is applied after NMS."""
        if o.nms != "fast" or (o.iou is not None and o.iou != self.cfg.nms_thresh):
            raise YolactError(f"{self.path}: this graph has per-class Fast NMS at IoU {self.cfg.nms_thresh} "
                              f"inside; export the core graph ({self._core_flag}) for other NMS settings")
        if o.keep_proto:
            raise YolactError(f"{self.path}: a post-processing graph has no prototypes; export the core graph "
                              f"({self._core_flag})")
        cap = self.cfg.max_num_detections  # the graph's K, also the default top_k: more is only what was asked
        if o.top_k > cap and not self._cap_said:
            self._cap_said = True
            warn(f"{self.path}: this graph keeps at most {self.cfg.max_num_detections} detections "
                 f"(asked: {o.top_k}); {self.export_hint(max_det=o.top_k)}")
        boxes, scores, classes, box_scores, masks = t
        classes = classes.long()
        keep = PostProcess.limit(box_scores, classes, o.score_threshold, o.top_k, o.classes)
        return Detections(boxes[keep].float(), scores[keep].float(), classes[keep], box_scores[keep].float(),
                          masks[keep].float(), torch.zeros((len(keep), self.cfg.mask_dim)))


    @property
    def _core_flag(self) -> str:
        """How the core graph of this format is exported."""
        return "--no-include-postprocess" if self.edge_outputs else "no --include-postprocess"


def read_metadata(path: Path, meta: Optional[dict]) -> tuple:
    """(config, include_postprocess) from an exported file's yolact metadata."""
    if meta is None:
        raise YolactError(f"{path}: no yolact metadata; export it with `yolact export`")
    try:
        return YolactConfig.from_dict(meta["yolact_config"]), bool(meta["include_postprocess"])
    except (KeyError, TypeError, ValueError) as e:
        raise YolactError(f"{path}: unreadable yolact metadata ({e})") from None


def refuse_compile(path, compile: Optional[str], backend: str) -> None:
    """The loaders of exported graphs take no --compile: a YolactError when it is set."""
    if compile:
        raise YolactError(f"{path}: --compile is for PyTorch weights, not {backend}")


def edge_postprocess(options) -> bool:
    """Whether an edge format's export writes the whole pipeline (:class:`EdgeGraph`): yes
    unless ``--no-include-postprocess`` (``options.include_postprocess`` False; None: default)."""
    return getattr(options, "include_postprocess", None) is not False


def refuse_core_only_options(options, fmt: str, unit: str = "model", full_graph: bool = False,
                             why: str = "", int8: bool = False) -> None:
    """The ``yolact export`` flags an edge export cannot honour: one-line YolactError naming
    ``fmt``. ``full_graph``: the format also writes the whole pipeline (:class:`EdgeGraph`, the
    default), so --include-postprocess and --max-det are accepted there; otherwise it writes the
    core graph only (``why``: the reason, for the message). ``int8``: the format writes int8 too
    (``--int8``; ``--quantize`` is ONNX's)."""
    if not full_graph and getattr(options, "include_postprocess", False):
        raise YolactError(f"--format {fmt} exports the core graph; post-processing (Fast NMS, masks) runs "
                          f"on the host{why}: drop --include-postprocess")
    if getattr(options, "dynamic_batch", False):
        raise YolactError(f"--format {fmt} exports a batch-1 {unit}: drop --dynamic-batch")
    if (getattr(options, "int8", None) and not int8) or getattr(options, "quantize", None):
        raise YolactError(f"--format {fmt} exports fp32 only (no int8 yet)")
    if getattr(options, "max_det", None) is not None and not (full_graph and edge_postprocess(options)):
        raise YolactError(f"--max-det is baked into post-processing graphs only; a --format {fmt} core graph "
                          "takes --max-det when it predicts")
