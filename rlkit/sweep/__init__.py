"""Sweeps over seeds and configs on Ray Tune (sweep.py), and their summaries."""
