"""Metrics over features (image.py), the feature networks (features.py), the domain
classifier (classifier.py) and `gankit eval` (evaluate.py)."""
from .image import METRICS, accuracy, fid, inception_score, kid, precision_recall

__all__ = ["METRICS", "accuracy", "fid", "inception_score", "kid", "precision_recall"]
