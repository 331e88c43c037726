"""Training losses, one per file. Each takes tensors (scores or embeddings), never the model."""

from .margin_mse import MarginMSELoss
from .multiple_negatives_ranking import MultipleNegativesRankingLoss

__all__ = ["MarginMSELoss", "MultipleNegativesRankingLoss"]
