"""Experiment configurations: `default.py` holds the defaults, one JSON file per experiment."""
