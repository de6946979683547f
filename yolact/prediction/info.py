"""A model's summary: preset, classes, layers, parameters, GFLOPs at its input size, and where
its file came from (``model.info()``, ``yolact info --weights W``)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional, Union

import torch

from ..errors import YolactError


def file_origin(path: Union[str, os.PathLike]) -> str:
    """Where a weights file came from, in words: an export (ONNX, OpenVINO IR: the ``origin`` of
    its row in the formats table, :mod:`yolact.formats`), else, read from a PyTorch file: an
    official release file, a file written by ``yolact train`` (with its iteration), a
    torch-fp16 export, or another state dict. Reads a PyTorch file (weights_only); raises
    YolactError for an unreadable one."""
    from ..checkpoint import infer_config_from_name, read_checkpoint, split_checkpoint
    from ..formats import format_for

    p = Path(path)
    origin = format_for(p).origin
    if origin is not None:
        return origin
    sd, meta = split_checkpoint(read_checkpoint(p), str(p))
    if meta is None:
        if infer_config_from_name(p):
            return "official YOLACT release (original state dict, config from the file name)"
        return "original-format state dict (no config inside; config inferred from the tensor shapes)"
    if "iteration" in meta:
        recipe = _recipe_name(meta.get("recipe"))
        what = f"trained by `yolact train`{f' --recipe {recipe}' if recipe else ''} (iteration {int(meta['iteration'])}"
        best = meta.get("best_ap")
        if isinstance(best, (int, float)) and best >= 0:
            # the run's best, which is this file's AP only for best.pt (last.pt: the weights at its end)
            whose = {"best": "this file's", "last": "the run's best (best.pt)"}.get(meta.get("saved_as"), "the run's best")
            what += f"; {whose} val mask AP {best:.3f}"
        return what + ")"
    if any(v.dtype == torch.float16 for v in sd.values() if isinstance(v, torch.Tensor)):
        return "exported by `yolact export --format torch-fp16` (fp16 weights, config inside)"
    return "yolact checkpoint (config inside, no training state)"


def _recipe_name(stored) -> Optional[str]:
    """The recipe's name from a checkpoint's ``recipe`` entry (its fields as JSON); None if none."""
    import json

    try:
        value = json.loads(stored) if isinstance(stored, str) else stored
    except ValueError:
        return None
    name = value.get("name") if isinstance(value, dict) else None
    return name if isinstance(name, str) else None


def model_info(model, path: Optional[Union[str, os.PathLike]] = None, img_size: Optional[int] = None) -> Dict:
    """A dict describing ``model`` (a PyTorch Yolact, or an exported model with ``cfg``):
    ``preset``, ``classes`` (names), ``num_classes``, ``category_ids`` (each class's id in
    every output: :meth:`YolactConfig.label_category_ids`), ``input_size`` (pixels, square),
    ``layers`` (modules without children), ``parameters`` (count), ``gflops`` (one forward pass
    at ``input_size``, 2 x multiply-adds, None for exported graphs), ``precision`` (weight
    dtype), ``predicts_at`` (a PyTorch predictor's precision: fp32, fp32-fused, bf16...), ``file`` and ``origin`` (see :func:`file_origin`) when ``path`` is given; an
    exported graph adds its ``describe()``: ``graph`` (whole pipeline, post-processing or core
    graph), ``max_det`` (K), ``stored`` (fp32/int8) and, where its runtime reads them,
    ``inputs``/``outputs`` (name -> shape).
    ``mask_score`` and ``mask_interpolation``: the config's inference options; ``mask_iou_net``:
    YOLACT++'s re-scoring of the masks.
    ``img_size``: count the FLOPs at this input size instead of the preset's."""
    cfg = model.cfg
    size = int(img_size or cfg.max_size)
    info: Dict = {"preset": cfg.name, "classes": list(cfg.class_names), "num_classes": len(cfg.class_names),
                  "category_ids": list(cfg.label_category_ids()),  # what every output writes as category_id
                  "input_size": size, "layers": None, "parameters": None, "gflops": None, "precision": None,
                  # how masks are scored and upsampled (--recipe fast's models differ from the original's)
                  "mask_score": cfg.mask_score, "mask_interpolation": cfg.mask_interpolation,
                  "mask_iou_net": cfg.use_maskiou}
    if isinstance(model, torch.nn.Module):
        from ..model.flops import count_flops

        info["layers"] = sum(1 for m in model.modules() if not list(m.children()))
        params = list(model.parameters())
        info["parameters"] = int(sum(p.numel() for p in params))
        info["precision"] = str(params[0].dtype).replace("torch.", "") if params else None
        if isinstance(getattr(model, "precision", None), str):  # a TorchPredictor: fp32, fp32-fused, bf16...
            info["predicts_at"] = model.precision
        if size % 32:
            raise YolactError(f"input size {size}: must be a multiple of 32")
        was_training = model.training
        model.eval()
        try:
            info["gflops"] = count_flops(model, size) / 1e9
        finally:
            model.train(was_training)
    else:
        if hasattr(model, "count_parameters"):  # an exported graph that can count its weights (ONNX)
            try:
                info["parameters"] = model.count_parameters()
            except ImportError:
                pass
        if callable(getattr(model, "describe", None)):  # an exported graph: its kind, K, precision, I/O
            info.update(model.describe())
    if path is not None:
        info["file"] = str(path)
        info["origin"] = file_origin(path)
        stored = stored_precision(path)  # read from the file where this module can (ONNX, OpenVINO, PyTorch)
        if stored is not None or "stored" not in info:
            info["stored"] = stored
    return info


def stored_precision(path: Union[str, os.PathLike]) -> Optional[str]:
    """The precision a weights file stores: 'int8' (quantised: ONNX Q/DQ or integer ops, OpenVINO
    FakeQuantize or i8/u8 weights), 'fp16', 'bf16' or 'fp32'; None when it cannot be told (an
    ONNX file without the onnx package). What it runs in is ``model_info``'s ``precision``."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".onnx":
        try:
            import onnx
        except ImportError:
            return None
        graph = onnx.load(str(p), load_external_data=False).graph
        if any(n.op_type in ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger",
                             "MatMulInteger") for n in graph.node):
            return "int8"
        types = {t.data_type for t in graph.initializer}
        return "fp16" if onnx.TensorProto.FLOAT16 in types else "fp32"
    if suffix == ".xml":
        text = p.read_text(errors="replace")
        if "FakeQuantize" in text or 'element_type="i8"' in text or 'element_type="u8"' in text:
            return "int8"
        return "fp16" if 'element_type="f16"' in text else "fp32"
    from ..checkpoint import read_checkpoint, split_checkpoint
    from ..formats import DEFAULT_FORMAT, format_for

    if format_for(p).name != DEFAULT_FORMAT:  # another export (.pte, .tflite, an NCNN folder): not told
        return None
    sd, _ = split_checkpoint(read_checkpoint(p), str(p))
    dtypes = {v.dtype for v in sd.values() if isinstance(v, torch.Tensor) and v.is_floating_point()}
    return "fp16" if torch.float16 in dtypes else "bf16" if torch.bfloat16 in dtypes else "fp32"


def format_info(info: Dict) -> str:
    """:func:`model_info`'s dict as the lines ``yolact info`` prints."""
    names = info["classes"]
    shown = ", ".join(names[:12]) + (f", ... ({len(names) - 12} more)" if len(names) > 12 else "")
    rows = []
    if "file" in info:
        rows += [("file", info["file"]), ("origin", info["origin"])]
    ids = info.get("category_ids") or []
    plain = ids == list(range(1, len(names) + 1))
    rows += [("preset", info["preset"]), ("classes", f"{info['num_classes']}: {shown}")]
    if ids and not plain:  # ids other than index + 1: say which the outputs write
        rows.append(("category ids", ", ".join(map(str, ids[:12])) + (", ..." if len(ids) > 12 else "")))
    rows.append(("input", f"{info['input_size']} x {info['input_size']} pixels"))
    if info.get("mask_score"):
        score = "class score" + (" x maskness" if info["mask_score"] == "maskness" else "") + \
            (" x predicted IoU" if info.get("mask_iou_net") else "")
        how = {"bilinear": "bilinearly", "bicubic": "bicubically"}.get(info["mask_interpolation"],
                                                                       info["mask_interpolation"])
        rows.append(("masks", f"scored by {score}, upsampled {how}"))
    if info.get("layers") is not None:
        rows.append(("layers", f"{info['layers']}"))
    if info.get("parameters") is not None:
        rows.append(("parameters", f"{info['parameters']:,} ({info['parameters'] / 1e6:.2f} M)"))
    if info.get("graph"):  # an exported graph: what it holds, and K for one with NMS inside
        rows.append(("graph", info["graph"] + (" (NMS and masks inside)" if info["graph"] != "core graph"
                                               else " (NMS and masks on the host)")))
        if info.get("max_det"):
            rows.append(("max det", f"{info['max_det']} (K: at most this many detections; more: export "
                                    "again with --max-det)"))
    if info.get("stored"):
        rows.append(("stored", info["stored"]))
    if info.get("precision"):  # the loaded model's dtype (an fp16 file loads into float32)
        rows.append(("runs in", info["precision"]))
    if info.get("predicts_at"):
        rows.append(("predicts at", info["predicts_at"] + (" (BatchNorm folded; --precision fp32: exact)"
                                                           if info["predicts_at"] == "fp32-fused" else "")))
    rows.append(("GFLOPs", f"{info['gflops']:.2f} at {info['input_size']} x {info['input_size']}"
                 if info.get("gflops") is not None else "not counted (exported graph)"))
    for key in ("inputs", "outputs"):  # an export described from its file (formats table: describe)
        if info.get(key):
            rows.append((key, ", ".join(f"{n} {v}" for n, v in info[key].items())))
    if info.get("note"):
        rows.append(("note", info["note"]))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)

