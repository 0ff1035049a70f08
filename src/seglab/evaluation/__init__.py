"""Evaluation: scores, per-image tables, figures and reports for every kind of model
(binary and multi-class images, volumes, classification)."""
