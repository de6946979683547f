"""COCO evaluation: box and mask AP through pycocotools, per-class precision, recall and F1, a
confusion matrix and precision-recall curves.

``evaluate(model, ann_file, image_dir)`` is the entry point; :mod:`.classes` matches the
model's classes to the file's categories, :mod:`.predictions` runs the model over the set,
:mod:`.coco` scores with pycocotools, :mod:`.metrics` computes and draws what AP does not say."""
from .classes import class_subset_note, model_category_ids
from .coco import METRIC_NAMES, coco_eval, evaluate, format_metrics
from .metrics import confusion_matrix, pr_curves, precision_recall_at, save_eval_plots
from .predictions import predict_dataset

__all__ = ["METRIC_NAMES", "class_subset_note", "coco_eval", "confusion_matrix", "evaluate", "format_metrics",
           "model_category_ids", "pr_curves", "precision_recall_at", "predict_dataset", "save_eval_plots"]
