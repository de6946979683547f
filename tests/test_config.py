"""yolact.config: the category id each class writes (#27 item 4)."""
import pytest

from yolact.config import COCO_CATEGORY_IDS, YolactConfig, get_config


def test_label_category_ids_stored_coco_or_index_plus_one():
    coco = get_config("yolact_base")
    assert coco.category_ids is None and coco.label_category_ids() == COCO_CATEGORY_IDS
    assert coco.label_category_ids()[-1] == 90 and 12 not in coco.label_category_ids()  # COCO's gaps
    own = get_config("yolact_resnet18", class_names=["a", "b", "c"])
    assert own.label_category_ids() == (1, 2, 3)  # nothing known: index + 1
    gapped = get_config("yolact_resnet18", class_names=["a", "b", "c"], category_ids=[3, 7, 12])
    assert gapped.label_category_ids() == (3, 7, 12)
    # stored in the checkpoint's config dict and read back
    assert YolactConfig.from_dict(gapped.to_dict()).label_category_ids() == (3, 7, 12)
    # other classes drop the old ids (they named the old classes)
    assert gapped.replace(class_names=("x", "y")).label_category_ids() == (1, 2)
    assert gapped.replace(max_size=256).category_ids == (3, 7, 12)
    with pytest.raises(ValueError, match="2 ids for 3 classes"):
        own.replace(category_ids=(1, 2))


def test_mask_inference_options_default_to_the_originals_and_are_checked():
    for name in ("yolact_base", "yolact_plus_base", "yolact_resnet18_slim"):
        cfg = get_config(name)
        assert (cfg.mask_score, cfg.mask_interpolation) == ("class", "bilinear")
    cfg = get_config("yolact_resnet18").replace(mask_score="maskness", mask_interpolation="bicubic")
    assert YolactConfig.from_dict(cfg.to_dict()) == cfg
    # a checkpoint's config from before the fields existed reads as the original's
    old = {k: v for k, v in cfg.to_dict().items() if k not in ("mask_score", "mask_interpolation")}
    assert YolactConfig.from_dict(old).mask_score == "class"
    with pytest.raises(ValueError, match="mask_score 'iou': expected one of class, maskness"):
        cfg.replace(mask_score="iou")
    with pytest.raises(ValueError, match="mask_interpolation 'area': expected one of bilinear, bicubic"):
        cfg.replace(mask_interpolation="area")
