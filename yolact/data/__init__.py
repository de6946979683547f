"""Datasets, image I/O, augmentation and synthetic data."""
