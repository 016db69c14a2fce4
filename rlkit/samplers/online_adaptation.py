"""Online adaptation, PEARL's evaluation protocol (SPEC section 4), shared by the training loop's
evaluation and sim_policy.py.

Every slot starts from the prior and accumulates its own context; once it has
`num_exp_traj` trajectories the posterior is inferred from all its context so far, and it is
re-inferred after every later trajectory. z is re-sampled from the slot's current belief
before every trajectory. All slots act together, one trajectory each per wave.
"""

from collections.abc import Callable, Sequence

import numpy as np
import torch

from rlkit.data_management.path import Path
from rlkit.samplers.rollout import rollout
from rlkit.torch.agent import PEARLAgent
from rlkit.torch.pixels import PixelContext


def context_from(obs, actions, rewards, next_obs, use_next_obs: bool) -> np.ndarray:
    """Context rows (o, a, r) or (o, a, r, o'); rewards have no feature axis."""
    parts = [obs, actions, rewards[..., None]]
    if use_next_obs:
        parts.append(next_obs)
    return np.concatenate(parts, axis=-1).astype(np.float32)


def pixel_context_from(obs, actions, rewards, next_obs, device: torch.device) -> PixelContext:
    """A pixel run's context of transitions (tasks, n, ...): the frames as they are (the trunk
    reads them), the actions and rewards as numbers; `next_obs` None leaves o' out."""

    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(device)

    numbers = np.concatenate([actions, rewards[..., None]], axis=-1).astype(np.float32)
    return PixelContext(
        tensor(obs), tensor(numbers), None if next_obs is None else tensor(next_obs)
    )


def concat_paths(paths: Sequence[Path]) -> Path:
    """One Path holding the transitions of `paths` in order."""
    return Path(
        **{
            name: np.concatenate([getattr(p, name) for p in paths])
            for name in Path.__dataclass_fields__
        }
    )


def right_padded(arrays: Sequence[np.ndarray], longest: int) -> np.ndarray:
    """The arrays (n_i, ...) right-padded with zeros to (len(arrays), longest, ...)."""
    out = np.zeros((len(arrays), longest, *arrays[0].shape[1:]), dtype=arrays[0].dtype)
    for i, array in enumerate(arrays):
        out[i, : len(array)] = array
    return out


def path_context(
    paths: Sequence[Path], sparse_rewards: bool, use_next_obs: bool, device: torch.device
) -> tuple[torch.Tensor | PixelContext, torch.Tensor]:
    """Right-padded contexts (slots, longest, context_dim) of the paths, and their lengths; a
    pixel run's PixelContext, its frames padded the same way."""
    lengths = np.array([len(p) for p in paths], dtype=np.int64)
    longest = int(lengths.max())
    if paths[0].observations.dtype == np.uint8:

        def padded(name: str) -> np.ndarray:
            return right_padded([getattr(p, name) for p in paths], longest)

        rewards = padded("sparse_rewards" if sparse_rewards else "rewards")
        next_obs = padded("next_observations") if use_next_obs else None
        context = pixel_context_from(
            padded("observations"), padded("actions"), rewards, next_obs, device
        )
        return context, torch.from_numpy(lengths).to(device)
    rows = [
        context_from(
            p.observations,
            p.actions,
            p.sparse_rewards if sparse_rewards else p.rewards,
            p.next_observations,
            use_next_obs,
        )
        for p in paths
    ]
    context = torch.from_numpy(right_padded(rows, longest)).to(device)
    return context, torch.from_numpy(lengths).to(device)


@torch.no_grad()
def adapt_online(
    envs: Sequence,
    agent: PEARLAgent,
    *,
    max_path_length: int,
    num_exp_traj: int,
    sparse_rewards: bool,
    use_next_obs: bool,
    max_steps: int | None = None,
    max_trajs: int | None = None,
    deterministic: bool = True,
    on_step: Callable[[int, int, object], None] | None = None,
) -> tuple[list[list[Path]], torch.Tensor, torch.Tensor]:
    """Run the protocol in every env (each already set to its task) until it has `max_steps`
    transitions (the training loop's num_steps_per_eval) or `max_trajs` trajectories.

    `on_step(slot, trajectory, env)` is called after every reset and env step (for videos).
    Returns the trajectories of every slot and the final posterior mean, var (slots, latent).
    """
    if (max_steps is None) == (max_trajs is None):
        raise ValueError("give exactly one of max_steps and max_trajs")
    n = len(envs)
    device = next(agent.parameters()).device
    mean, var = agent.prior(n)
    slot_paths: list[list[Path]] = [[] for _ in range(n)]
    counts = np.zeros(n, dtype=np.int64)

    def unfinished() -> np.ndarray:
        if max_steps is not None:
            return np.flatnonzero(counts < max_steps)
        return np.flatnonzero([len(p) < max_trajs for p in slot_paths])

    while (active := unfinished()).size:
        z = agent.sample_z(mean, var)
        hook = None
        if on_step is not None:

            def hook(k: int, env, active=active) -> None:
                on_step(int(active[k]), len(slot_paths[active[k]]), env)

        paths = rollout(
            [envs[s] for s in active],
            agent,
            z[active],
            max_path_length,
            deterministic=deterministic,
            on_step=hook,
        )
        for s, path in zip(active, paths, strict=True):
            slot_paths[s].append(path)
            counts[s] += len(path)
        ready = [s for s in active if len(slot_paths[s]) >= num_exp_traj]
        if ready:
            joined = [concat_paths(slot_paths[s]) for s in ready]
            context, lengths = path_context(joined, sparse_rewards, use_next_obs, device)
            post_mean, post_var, _ = agent.posterior(context, lengths=lengths)
            mean[ready], var[ready] = post_mean, post_var
    return slot_paths, mean, var
