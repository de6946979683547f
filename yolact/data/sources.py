"""One entry point for every annotation source: COCO JSON, YOLO data.yaml, LabelMe folders and
mask-PNG folders. Non-COCO sources are converted to a COCO file once and read by
:class:`~yolact.data.coco.CocoDataset`."""
from __future__ import annotations

from pathlib import Path
from typing import List, NamedTuple, Optional, Sequence

from ..errors import YolactError

# The data formats table: --format value -> what a source of it is (help texts read it).
FORMAT_SOURCES = {
    "coco": "a COCO folder (train.json + train/, and val.json + val/; `yolact data synth` writes one)",
    "yolo": "a YOLO data.yaml or its folder",
    "labelme": "a LabelMe folder",
    "masks": "a mask-PNG folder (images/ + masks/)",
}
FORMATS = ("auto",) + tuple(FORMAT_SOURCES)


def formats_help(joiner: str = ", ") -> str:
    """The sources of the data formats table in words, for help texts."""
    items = list(FORMAT_SOURCES.values())
    return joiner.join(items[:-1]) + " or " + items[-1]


def _coco_folder(p: Path, split: str = "train") -> bool:
    """A folder holding ``<split>.json`` and its image folder ``<split>/`` (COCO, as synth writes)."""
    return (p / f"{split}.json").is_file() and (p / split).is_dir()


class Split(NamedTuple):
    """One split of a dataset as the COCO reader takes it: the instances file, its image folder
    and what the conversion to COCO skipped (empty for a COCO source)."""
    ann: str                 # COCO instances file
    images: str              # its image folder (file names may also be absolute)
    problems: List[str]      # what the conversion skipped, with file and object


def detect_format(src) -> str:
    """The format of ``src``: "yolo" (a data.yaml, or a folder holding one), "coco" (a .json
    file, or a folder with train.json + train/), "masks" (images/ + masks/), "labelme" (LabelMe
    .json files), or that of its train/ subfolder. Raises :class:`YolactError` for a missing path or none of these."""
    from .labelme import labelme_files
    from .maskpng import is_mask_dataset

    p = Path(src)
    if p.is_file():
        if p.suffix.lower() in (".yaml", ".yml"):
            return "yolo"
        if p.suffix.lower() == ".json":
            return "coco"
        raise YolactError(f"{p}: not a data.yaml or a COCO .json file")
    if not p.is_dir():
        raise YolactError(f"{p}: no such file or folder")
    if (p / "data.yaml").exists():
        return "yolo"
    if _coco_folder(p):
        return "coco"
    if is_mask_dataset(p):
        return "masks"
    if labelme_files(p):
        return "labelme"
    if (p / "train").is_dir():  # train/ and val/ subfolders of one format
        return detect_format(p / "train")
    raise YolactError(f"{p}: no data.yaml, train.json + train/, images/ + masks/, or LabelMe .json files found")


def convert_to_coco(src, out_json, fmt: str = "auto", split: str = "train",
                    classes: Optional[Sequence[str]] = None, images: Optional[str] = None,
                    hole_label: str = "hole") -> Split:
    """Read ``src`` in format ``fmt`` (detected when "auto") as a COCO file at ``out_json``."""
    fmt = detect_format(src) if fmt == "auto" else fmt
    if fmt == "coco":
        if Path(src).is_dir() and not images:  # a COCO folder: <split>.json and <split>/
            if not _coco_folder(Path(src), split):
                raise YolactError(f"{src}: a COCO folder holds {split}.json and {split}/")
            return Split(str(Path(src) / f"{split}.json"), str(Path(src) / split), [])
        if not images:
            raise YolactError(f"{src}: a COCO file needs its image folder (--images)")
        return Split(str(src), str(images), [])
    if fmt == "yolo":
        from .yolo import yolo_split_dir, yolo_to_coco

        yml = Path(src) / "data.yaml" if Path(src).is_dir() else Path(src)
        img_dir = yolo_split_dir(yml, split)
        path, problems = yolo_to_coco(yml, split, out_json)
        return Split(str(path), str(img_dir), problems)
    if fmt == "labelme":
        from .labelme import labelme_to_coco

        path, problems = labelme_to_coco(src, out_json, classes, hole_label)
    elif fmt == "masks":
        from .maskpng import mask_pngs_to_coco

        path, problems = mask_pngs_to_coco(src, out_json, classes)
    else:
        raise YolactError(f"unknown data format '{fmt}' ({', '.join(FORMATS[1:])})")
    return Split(str(path), str(Path(src)), problems)


def split_source(src, fmt: str, split: str) -> tuple:
    """(what to read, the split argument of :func:`convert_to_coco`) for one split of ``src`` as
    :func:`dataset_splits` reads it: a COCO or YOLO source names its splits itself; a LabelMe
    or mask-PNG folder with train/ and val/ subfolders is read one subfolder at a time."""
    root = Path(src)
    if fmt not in ("coco", "yolo") and root.is_dir() and (root / "train").is_dir() and (root / "val").is_dir():
        return root / split, "train"
    return src, split


def has_val_split(src, fmt: str, images: Optional[str] = None) -> bool:
    """Whether ``train --data src`` would validate on a val split of ``src``."""
    root = Path(src)
    if images or not root.exists():
        return False
    if fmt == "yolo":
        try:
            from .yolo import yolo_split_dir

            return yolo_split_dir(root / "data.yaml" if root.is_dir() else root, "val").is_dir()
        except YolactError:
            return False
    if fmt == "coco":
        return root.is_dir() and _coco_folder(root, "val")
    return root.is_dir() and (root / "train").is_dir() and (root / "val").is_dir()


def dataset_splits(src, out_dir, fmt: str = "auto", classes: Optional[Sequence[str]] = None,
                   hole_label: str = "hole"):
    """-> (train Split, val Split or None). A folder source with train/ and val/ subfolders of
    its format gives both; otherwise the whole source trains. YOLO uses its yaml's splits."""
    fmt = detect_format(src) if fmt == "auto" else fmt
    if classes is not None and fmt in ("coco", "yolo"):  # it would be ignored: a silent wrong class list
        raise YolactError(f"{src}: a {fmt.upper()} dataset names its own classes; --classes (a classes.txt) orders "
                          "and filters LabelMe and mask-PNG folders only")
    out = Path(out_dir)
    if fmt == "yolo":
        train = convert_to_coco(src, out / "train.json", "yolo", "train")
        try:
            val = convert_to_coco(src, out / "val.json", "yolo", "val")
        except YolactError:
            val = None
        return train, val
    root = Path(src)
    if fmt == "coco" and root.is_dir():
        return (convert_to_coco(root, None, "coco", "train"),
                convert_to_coco(root, None, "coco", "val") if _coco_folder(root, "val") else None)
    if root.is_dir() and (root / "train").is_dir() and (root / "val").is_dir():
        train = convert_to_coco(root / "train", out / "train.json", fmt, classes=classes, hole_label=hole_label)
        if classes is None:  # val takes train's classes, in train's order
            from .coco import read_coco_json
            classes = [c["name"] for c in read_coco_json(train.ann)["categories"]]
        return train, convert_to_coco(root / "val", out / "val.json", fmt, classes=classes, hole_label=hole_label)
    return convert_to_coco(src, out / "train.json", fmt, classes=classes, hole_label=hole_label), None
