"""The demographic two-tower model (cold start).

``model`` (torch network), ``train`` (train/save/load) and ``evaluate``
(cold-start HR/NDCG vs most popular; import it from
``recsys_embedder.twotower.evaluate`` - it is not imported here, so serving
never pulls in evaluation code).
"""

from recsys_core.demographics import age_bracket, gender_index

from recsys_embedder.twotower.model import TwoTower, TwoTowerConfig, TwoTowerNet
from recsys_embedder.twotower.train import load_two_tower, save_two_tower, train_two_tower

__all__ = [
    "TwoTower",
    "TwoTowerConfig",
    "TwoTowerNet",
    "age_bracket",
    "gender_index",
    "load_two_tower",
    "save_two_tower",
    "train_two_tower",
]
