"""Training: the run (`run.train`), its inputs, the Lightning tasks and trainer, tracking,
threshold tuning, comparisons and cross-validation. Everything here may import Lightning and
MLflow; nothing below it (inference, models, objectives, data) imports this package."""
