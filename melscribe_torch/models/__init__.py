"""Encoder models: pooling, backbone loading, the bi-encoder and the cross-encoder."""

from .backbone import ModelNotFoundError, load_backbone, resolve_model_path
from .bi_encoder import BiEncoder
from .cross_encoder import CrossEncoder
from .device import pick_device
from .pooling import POOLING_MODES, pool

__all__ = [
    "POOLING_MODES",
    "BiEncoder",
    "CrossEncoder",
    "ModelNotFoundError",
    "load_backbone",
    "pick_device",
    "pool",
    "resolve_model_path",
]
