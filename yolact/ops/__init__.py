"""Tensor operations shared by inference, training and export: boxes, priors, NMS, masks."""
