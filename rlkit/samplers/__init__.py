"""Rollouts: many task slots stepped together with one batched policy call per step."""
