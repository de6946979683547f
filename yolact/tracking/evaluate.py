"""Tracking metrics on MOTChallenge text files with TrackEval, the MOTChallenge benchmark's own
evaluation code: HOTA, CLEAR (MOTA, ID switches, MT/ML, FP, FN) and Identity (IDF1), box IoU
>= 0.5 for CLEAR and Identity.

TrackEval reads the files itself (its ``MotChallenge2DBox`` dataset), so a file that scores
here is a valid MOTChallenge file. It is in the ``track`` extra, installed without its
dependencies: it asks for opencv-python, which would clash with this package's
opencv-python-headless, and uses nothing of OpenCV for these metrics. (motmetrics 1.4.0, the
other well-known library, calls ``np.asfarray`` and fails under NumPy 2.)
"""
from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path
from typing import Dict, Optional, Sequence

from ..errors import YolactError

SUMMARY = ("mota", "idf1", "hota", "num_switches", "mostly_tracked", "mostly_lost", "num_false_positives",
           "num_misses")


def _trackeval():
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # it prints about optional datasets on import
            import trackeval
    except ImportError:
        raise YolactError("tracking metrics need TrackEval: pip install 'yolact[track]' "
                          "and pip install --no-deps trackeval") from None
    return trackeval


def mot_lines(frame: int, res) -> str:
    """One frame of MOTChallenge tracker output: frame,id,x,y,w,h,score,-1,-1,-1 per track."""
    return "".join(f"{frame},{int(tid)},{b[0]:.1f},{b[1]:.1f},{b[2] - b[0]:.1f},{b[3] - b[1]:.1f},{s:.4f},-1,-1,-1\n"
                   for tid, b, s in zip(res.track_ids, res.boxes, res.box_scores))


def write_mot(path, frames) -> Path:
    """Write ``frames`` ((frame number from 1, Results with track_ids) pairs) as MOTChallenge
    tracker output."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w") as f:
        for n, res in frames:
            f.write(mot_lines(n, res))
    return p


def evaluate_tracks(gt_dir, pred_dir, seqs: Optional[Sequence[str]] = None) -> Dict[str, Dict[str, float]]:
    """Score every sequence of ``gt_dir`` (MOTChallenge layout: SEQ/gt/gt.txt, SEQ/seqinfo.ini)
    against ``pred_dir``/SEQ.txt, or only the sequences named in ``seqs`` (COMBINED_SEQ then covers
    those alone). -> {sequence or 'COMBINED_SEQ': {metric: value}}. A named sequence without ground
    truth raises YolactError."""
    te = _trackeval()
    gt_dir, pred_dir = Path(gt_dir), Path(pred_dir)
    found = sorted(p.name for p in gt_dir.iterdir() if (p / "gt" / "gt.txt").exists()) if gt_dir.is_dir() else []
    if not found:
        raise YolactError(f"{gt_dir}: no sequences (SEQ/gt/gt.txt) found")
    if seqs is not None:
        unknown = [s for s in seqs if s not in found]
        if unknown or not seqs:
            raise YolactError(f"{gt_dir}: no ground truth (SEQ/gt/gt.txt) for sequence(s) {', '.join(unknown) or '(none given)'}; "
                              f"it has {', '.join(found)}")
        found = [s for s in found if s in set(seqs)]
    seqs = found
    missing = [s for s in seqs if not (pred_dir / f"{s}.txt").exists()]
    if missing:
        raise YolactError(f"{pred_dir}: no tracker output for {', '.join(missing)} (expected SEQ.txt per sequence)")
    for s in seqs:
        if not (gt_dir / s / "seqinfo.ini").exists():
            raise YolactError(f"{gt_dir / s}: seqinfo.ini is missing (it gives the sequence length)")
    dataset_cfg = {"GT_FOLDER": str(gt_dir), "TRACKERS_FOLDER": str(pred_dir.parent), "TRACKERS_TO_EVAL": [pred_dir.name],
                   "TRACKER_SUB_FOLDER": "", "SKIP_SPLIT_FOL": True, "SEQ_INFO": {s: None for s in seqs},
                   "PRINT_CONFIG": False, "OUTPUT_FOLDER": None, "BENCHMARK": "MOT17"}
    with tempfile.TemporaryDirectory() as tmp:
        eval_cfg = {"USE_PARALLEL": False, "PRINT_RESULTS": False, "PRINT_CONFIG": False, "TIME_PROGRESS": False,
                    "OUTPUT_SUMMARY": False, "OUTPUT_DETAILED": False, "PLOT_CURVES": False,
                    "BREAK_ON_ERROR": True, "LOG_ON_ERROR": str(Path(tmp) / "error_log.txt"),
                    "DISPLAY_LESS_PROGRESS": True}
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                evaluator = te.Evaluator(eval_cfg)
                dataset = te.datasets.MotChallenge2DBox(dataset_cfg)
                metrics = [te.metrics.HOTA(), te.metrics.CLEAR({"THRESHOLD": 0.5, "PRINT_CONFIG": False}),
                           te.metrics.Identity({"THRESHOLD": 0.5, "PRINT_CONFIG": False})]
                results, _ = evaluator.evaluate([dataset], metrics)
        except te.utils.TrackEvalException as e:
            raise YolactError(f"{pred_dir}: {e}") from None
    per_seq = results["MotChallenge2DBox"][pred_dir.name]
    out = {}
    for seq, by_class in per_seq.items():
        r = by_class["pedestrian"]
        out[seq] = {"hota": float(r["HOTA"]["HOTA"].mean()), "mota": float(r["CLEAR"]["MOTA"]),
                    "idf1": float(r["Identity"]["IDF1"]), "num_switches": int(r["CLEAR"]["IDSW"]),
                    "mostly_tracked": int(r["CLEAR"]["MT"]), "mostly_lost": int(r["CLEAR"]["ML"]),
                    "num_false_positives": int(r["CLEAR"]["CLR_FP"]), "num_misses": int(r["CLEAR"]["CLR_FN"])}
    return out


def format_tracking(metrics: Dict[str, Dict[str, float]]) -> str:
    """The metrics of :func:`evaluate_tracks` as a text table, one row per sequence: HOTA, MOTA and
    IDF1 in percent, then counts of identity switches, mostly tracked/lost tracks, FP and FN."""
    lines = [f"{'sequence':<14}{'HOTA':>7}{'MOTA':>7}{'IDF1':>7}{'IDsw':>6}{'MT':>5}{'ML':>5}{'FP':>6}{'FN':>6}"]
    for name, m in metrics.items():
        lines.append(f"{name[:14]:<14}{100 * m['hota']:7.1f}{100 * m['mota']:7.1f}{100 * m['idf1']:7.1f}"
                     f"{m['num_switches']:6d}{m['mostly_tracked']:5d}{m['mostly_lost']:5d}"
                     f"{m['num_false_positives']:6d}{m['num_misses']:6d}")
    return "\n".join(lines)
