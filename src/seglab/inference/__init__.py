"""Prediction with a trained model: pre-processing, forward pass, probabilities and masks."""

from seglab.inference.predictor import Prediction, Predictor

__all__ = ["Prediction", "Predictor"]
