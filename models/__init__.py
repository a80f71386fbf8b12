"""Emotion models: encoders, fused text+speech architectures, checkpoints, training and evaluation."""

from emomon.labels import EMOTIONS

__all__ = ["EMOTIONS"]
