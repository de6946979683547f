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
