"""The model's classes matched to the categories of an annotation file: by name (any order,
any ids; the file may have a subset of the model's classes) or, on request, by position."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

from ..errors import YolactError


def model_category_ids(class_names: Sequence[str], data: Dict, ann_file,
                       by_position: bool = False) -> List[Optional[int]]:
    """The ground-truth category id of each model class, None for a class the file does not
    have: matched by name (the file may list its categories in any order, with any ids, and
    may have only some of the model's classes), or, with ``by_position``, the file's k-th
    category for the model's k-th class (the counts must agree). Raises YolactError (one line,
    both lists) when the file has a name the model lacks, repeats a name, or has no categories."""
    cats = data["categories"]
    names = [str(c.get("name", c["id"])) for c in cats]
    model = [str(n) for n in class_names]
    if by_position:
        if len(cats) != len(model):
            raise YolactError(f"{ann_file}: {len(cats)} categories but the model has {len(model)} classes")
        return [int(c["id"]) for c in cats]
    if not names:
        raise YolactError(f"{ann_file}: no categories; the model's classes: {', '.join(model)}")
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise YolactError(f"{ann_file}: category name(s) {', '.join(dup)} appear more than once; "
                          "classes are matched by name")
    only_file = [n for n in names if n not in model]
    if only_file:
        only_model = [n for n in model if n not in names]
        raise YolactError(f"{ann_file}: category names differ from the model's classes (model: {', '.join(model)}; "
                          f"file: {', '.join(names)}; only in the file: {', '.join(only_file)}; "
                          f"only in the model: {', '.join(only_model) or '-'}); "
                          "to pair them by order instead, use --map-classes-by-position")
    by_name = {n: int(c["id"]) for n, c in zip(names, cats)}
    return [by_name.get(n) for n in model]


def class_subset_note(class_names: Sequence[str], category_ids: Sequence[Optional[int]], ann_file,
                      list_limit: int = 10) -> Optional[str]:
    """One line saying which of the model's classes the file has and that the detections of the
    others are left out; None when it has them all. The others are named up to ``list_limit``."""
    kept = [str(n) for n, c in zip(class_names, category_ids) if c is not None]
    other = [str(n) for n, c in zip(class_names, category_ids) if c is None]
    if not other:
        return None
    names = f" ({', '.join(other)})" if len(other) <= list_limit else ""
    return (f"{ann_file} has {len(kept)} of the model's {len(class_names)} classes ({', '.join(kept)}); "
            f"detections of the other {len(other)}{names} are left out")
