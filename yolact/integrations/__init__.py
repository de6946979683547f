"""Pre-labelling in annotation tools (issue #31): CVAT auto-annotation functions
(:mod:`yolact.integrations.cvat`). Each module speaks its tool's own protocol through that tool's
SDK, an optional extra (``pip install yolact[cvat]``)."""
