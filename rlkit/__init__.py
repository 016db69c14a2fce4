"""PEARL: probabilistic embeddings for actor-critic meta-RL (Rakelly et al., ICML 2019)."""
