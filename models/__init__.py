"""Emotion models: encoders, fused text+speech architectures, checkpoints, training and evaluation."""

from emomon.models.labels import EMOTIONS

__all__ = ["EMOTIONS"]
