"""The meta-training loop (collection schedule, training, evaluation) and the run logger."""
