"""PinSage network (plain torch) and item features, shared by training and serving."""

from recsys_embedder.model.features import FeatureSpec, movie_features, title_words
from recsys_embedder.model.pinsage import USER_FORMS, ModelConfig, PinSageConv, PinSageNet

__all__ = [
    "USER_FORMS",
    "FeatureSpec",
    "ModelConfig",
    "PinSageConv",
    "PinSageNet",
    "movie_features",
    "title_words",
]
