"""Prediction: the predictors, the one source resolver, streaming, sliced inference, output
sinks and the runner that ties them (``run(model, sources, sinks)``: what ``yolact predict``
and ``yolact track`` call)."""
from .predictor import PredictOptions, Predictor, TorchPredictor
from .runner import RunSummary, run
from .sinks import (CallbackSink, Frame, JsonLinesSink, MotSink, OverlaySink, PredictionWriter, RecordSink,
                    Sink)
from .sources import count_frames, is_collection, load_sources, read_frames, resolve_sources
from .stream import run_tracker, stream

__all__ = ["PredictOptions", "Predictor", "TorchPredictor", "RunSummary", "run", "CallbackSink", "Frame",
           "JsonLinesSink", "MotSink", "OverlaySink", "PredictionWriter", "RecordSink", "Sink", "count_frames",
           "is_collection", "load_sources", "read_frames", "resolve_sources", "run_tracker", "stream"]
