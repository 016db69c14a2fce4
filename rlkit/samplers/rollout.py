"""Synchronous rollouts over task slots: one env per slot, one batched policy call per step.

A call runs one trajectory in every given slot (up to `max_path_length` steps, shorter where
the env terminates). The schedules of data collection and evaluation (rlkit/core) are built
from such waves, choosing z for each slot between them.
"""

from collections.abc import Callable, Sequence

import numpy as np
import torch

from rlkit.data_management.path import Path
from rlkit.torch.agent import PEARLAgent


def rollout(
    envs: Sequence,
    agent: PEARLAgent,
    z: torch.Tensor,
    max_path_length: int,
    deterministic: bool = False,
    on_step: Callable[[int, object], None] | None = None,
) -> list[Path]:
    """One trajectory in each env, the slots acting together; z (slots, latent).

    `on_step(slot, env)` is called after the reset and after every step of each slot.
    """
    slots = len(envs)
    if slots == 0:
        return []
    device = z.device
    first = [np.asarray(env.reset()[0]) for env in envs]
    # float32 numbers, or a pixel run's uint8 frame stacks in their shape
    if first[0].dtype == np.uint8:
        obs_shape, obs_dtype = first[0].shape, np.uint8
    else:
        obs_shape, obs_dtype = (first[0].size,), np.float32
    action_dim = envs[0].action_space.shape[0]
    observations = np.zeros((slots, max_path_length + 1, *obs_shape), dtype=obs_dtype)
    actions = np.zeros((slots, max_path_length, action_dim), dtype=np.float32)
    rewards = np.zeros((slots, max_path_length), dtype=np.float32)
    sparse = np.zeros((slots, max_path_length), dtype=np.float32)
    terminals = np.zeros((slots, max_path_length), dtype=np.float32)
    successes = np.zeros((slots, max_path_length), dtype=np.float32)
    lengths = np.zeros(slots, dtype=np.int64)
    observations[:, 0] = np.stack(first)
    if on_step is not None:
        for s, env in enumerate(envs):
            on_step(s, env)
    alive = np.ones(slots, dtype=bool)
    for t in range(max_path_length):
        live = np.flatnonzero(alive)
        if live.size == 0:
            break
        obs_t = torch.from_numpy(observations[live, t]).to(device)
        acts = agent.act(obs_t, z[live], deterministic=deterministic).cpu().numpy()
        for k, s in enumerate(live):
            next_obs, reward, terminated, truncated, info = envs[s].step(acts[k])
            observations[s, t + 1] = next_obs
            actions[s, t] = acts[k]
            rewards[s, t] = reward
            sparse[s, t] = info.get("sparse_reward", 0.0)
            terminals[s, t] = float(terminated)
            successes[s, t] = info.get("success", 0.0)
            lengths[s] = t + 1
            if on_step is not None:
                on_step(s, envs[s])
            if terminated or truncated:
                alive[s] = False
    return [
        Path(
            observations=observations[s, :n].copy(),
            actions=actions[s, :n].copy(),
            rewards=rewards[s, :n].copy(),
            sparse_rewards=sparse[s, :n].copy(),
            next_observations=observations[s, 1 : n + 1].copy(),
            terminals=terminals[s, :n].copy(),
            successes=successes[s, :n].copy(),
        )
        for s, n in enumerate(lengths)
    ]
