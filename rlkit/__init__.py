"""PEARL: probabilistic embeddings for actor-critic meta-RL (Rakelly et al., ICML 2019).

`rlkit.train(config, overrides=None, seed=None)` runs an experiment and returns its folder;
`rlkit.load_run(run_dir, itr=None)` gives its trained agent with its task family (rlkit.api).
"""

__all__ = ["train", "load_run"]


def __getattr__(name: str):
    # imported on first use: the command-line scripts import rlkit's config module before
    # torch and the envs, to answer --help and bad input at once
    if name in __all__:
        from rlkit import api

        return getattr(api, name)
    raise AttributeError(f"module 'rlkit' has no attribute {name!r}")
