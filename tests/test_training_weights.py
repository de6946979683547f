"""Fine-tuning maps the class head by class name (#27 item 4)."""
import torch

from yolact.training.weights import CLASS_DEPENDENT, class_order, remap_class_rows


def test_class_order_only_for_same_names_in_another_order():
    assert class_order(["a", "b"], ["a", "b"]) is None
    assert class_order(["a", "b"], ["a", "c"]) is None
    assert class_order([], ["a"]) is None
    assert class_order(["a", "b", "c"], ["c", "a", "b"]) == [2, 0, 1]


def test_remap_class_rows_follows_names():
    old, new = ["circle", "square", "tri"], ["tri", "circle", "square"]
    priors, c = 2, 3
    conf = torch.arange(priors * (c + 1), dtype=torch.float32).view(-1, 1, 1, 1)
    seg = torch.arange(c, dtype=torch.float32).view(-1, 1, 1, 1)
    sd = {CLASS_DEPENDENT[0] + "weight": conf.clone(), CLASS_DEPENDENT[0] + "bias": conf.flatten().clone(),
          CLASS_DEPENDENT[1] + "weight": seg.clone(), "other.weight": seg.clone()}
    done = remap_class_rows(sd, old, new)
    assert sorted(done) == sorted(k for k in sd if k != "other.weight")
    # per prior: background stays first, then tri (old 2), circle (old 0), square (old 1)
    assert sd[CLASS_DEPENDENT[0] + "bias"].tolist() == [0, 3, 1, 2, 4, 7, 5, 6]
    assert sd[CLASS_DEPENDENT[1] + "weight"].flatten().tolist() == [2, 0, 1]
    assert torch.equal(sd["other.weight"], seg)
    assert remap_class_rows(sd, new, new) == []


def test_finetune_from_checkpoint_with_names_in_another_order(tmp_path):
    from yolact.checkpoint import save_checkpoint
    from yolact.config import get_config
    from yolact.training.weights import build_model

    old_cfg = get_config("yolact_resnet18_slim", class_names=["circle", "square", "tri"])
    src, _ = build_model(old_cfg, seed=1)
    path = tmp_path / "old.pth"
    save_checkpoint(path, src)
    new_cfg = get_config("yolact_resnet18_slim", class_names=["tri", "circle", "square"])
    dst, reports = build_model(new_cfg, seed=2, weights=str(path))
    assert reports["weights"]["remapped"]
    a, b = src.state_dict(), dst.state_dict()
    key = "prediction_layers.0.conf_layer.weight"
    c1 = a[key].shape[0] // 4
    old = a[key].view(c1, 4, *a[key].shape[1:])
    new = b[key].view(c1, 4, *b[key].shape[1:])
    assert torch.equal(new[:, 0], old[:, 0])          # background
    assert torch.equal(new[:, 1], old[:, 3])          # tri
    assert torch.equal(new[:, 2], old[:, 1])          # circle
    assert torch.equal(new[:, 3], old[:, 2])          # square
    assert torch.equal(b["semantic_seg_conv.weight"][0], a["semantic_seg_conv.weight"][2])
