"""The networks (plain torch) and item features, shared by training and serving: PinSage
(``pinsage``, ``features``) and the demographic two-tower model (``two_tower``)."""

from recsys_embedder.model.features import FeatureSpec, movie_features, title_words
from recsys_embedder.model.pinsage import USER_FORMS, ModelConfig, PinSageConv, PinSageNet
from recsys_embedder.model.two_tower import TwoTower, TwoTowerConfig, TwoTowerNet

__all__ = [
    "USER_FORMS",
    "FeatureSpec",
    "ModelConfig",
    "PinSageConv",
    "PinSageNet",
    "TwoTower",
    "TwoTowerConfig",
    "TwoTowerNet",
    "movie_features",
    "title_words",
]
