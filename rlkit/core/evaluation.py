"""The evaluation protocols; the training loop (rlkit.core.pearl_algorithm) decides when each
runs and what its row records.

- **Buffer posterior** (`buffer_posterior_eval`, the column AverageTrainReturn): train tasks,
  z from the posterior of fresh encoder-buffer context, re-sampled before every trajectory.
- **PEARL online** (`online_eval`, AverageReturn_*, SuccessRate_*): each run of a task starts
  from the prior and infers the posterior from its own trajectories (SPEC section 4,
  rlkit.samplers.online_adaptation).
- **Meta-World's own** (`metaworld_evaluation`, MetaWorld*): the benchmark's
  `metaworld.evaluation.metalearning_evaluation`, run by the package itself on gymnasium
  vector envs of the run's eval tasks, the PEARL agent seen through its MetaLearningAgent
  protocol (`PEARLMetaLearningAgent`).

How the Meta-World evaluator works (metaworld 3.1.1): `num_evals` rounds; each round every
env draws one of its tasks, the agent is reset to its prior (`init`) and acts for
`adaptation_episodes` episodes per env (`adapt_action`, `step`), then fixes its posterior
(`adapt`) and plays `evaluation_episodes` episodes per class that end on success
(`eval_action`). A class's success rate is the fraction of successful episodes among the
first `evaluation_episodes` of its envs' episodes to end in each round, averaged over the
rounds; the headline is the mean over classes. With several envs per class the first
episodes to end are the successful ones (an episode ends at success, a failure runs the full
length), which raises the rate; one env per class (`metaworld_eval_envs_per_class`, our
default) counts every env's episodes in order.

The evaluator sums its per-class figures in the order of a Python `set` of class names, and
a set of `str` is ordered by the process's string-hash seed (PYTHONHASHSEED, random per
process): the same agent scored in two processes could differ in the last bit of
MetaWorldReturn, so a resumed run would not equal an uninterrupted one. The names it sees
here hash by their CRC-32 (`ClassName`), which fixes that order in every process.
"""

import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from unittest import mock

import numpy as np
import torch

from rlkit.data_management.path import Path
from rlkit.samplers.online_adaptation import adapt_online, context_from, right_padded
from rlkit.samplers.rollout import rollout
from rlkit.torch.agent import PEARLAgent


def returns_of(paths: Sequence[Path], sparse_rewards: bool) -> list[float]:
    return [p.episode_return(sparse_rewards) for p in paths]


# ---------------------------------------------------------------------- buffer posterior
@torch.no_grad()
def buffer_posterior_eval(
    envs: Sequence,
    agent: PEARLAgent,
    sample_context: Callable[[], object],
    *,
    num_trajs: int,
    max_path_length: int,
    sparse_rewards: bool,
) -> tuple[float, float]:
    """`num_trajs` deterministic trajectories in each env (one task each), z drawn before each
    from the posterior of a fresh `sample_context()` (one row per env). Returns the mean
    return and the fraction of trajectories that succeeded (NaN, NaN when num_trajs is 0)."""
    returns, successes = [], []
    for _ in range(num_trajs):
        mean, var, _ = agent.posterior(sample_context())
        z = agent.sample_z(mean, var)
        paths = rollout(envs, agent, z, max_path_length, deterministic=True)
        returns.append(returns_of(paths, sparse_rewards))
        successes.append([p.succeeded() for p in paths])
    if not returns:
        return float("nan"), float("nan")
    return float(np.mean(returns)), float(np.mean(successes))


# ---------------------------------------------------------------------- PEARL online
def final_and_online(values: list[list[float]], n_tasks: int, num_evals: int):
    """From one value per trajectory of every slot (num_evals slots per task, in task order):
    per task, the mean over its runs of the last trajectory's value; and the mean over tasks
    and runs of each trajectory index's value (up to the shortest run)."""
    final, online = [], []
    for i in range(n_tasks):
        runs = values[i * num_evals : (i + 1) * num_evals]
        final.append(float(np.mean([r[-1] for r in runs])))
        k = min(len(r) for r in runs)
        online.append(np.mean([r[:k] for r in runs], axis=0))
    k = min(len(r) for r in online)
    return final, np.mean([r[:k] for r in online], axis=0)


@dataclass
class OnlineResult:
    """PEARL's online protocol on some tasks: per task the final value (mean over its runs of
    the last trajectory's) and per trajectory index the mean value, for the return and the
    success; every slot's trajectories; the last slot's posterior."""

    final_returns: list[float]
    online_returns: np.ndarray
    final_success: list[float]
    online_success: np.ndarray
    slot_paths: list[list[Path]]
    z_mean: torch.Tensor
    z_var: torch.Tensor


def online_eval(
    envs: Sequence,
    agent: PEARLAgent,
    n_tasks: int,
    *,
    num_evals: int,
    max_path_length: int,
    num_exp_traj: int,
    sparse_rewards: bool,
    use_next_obs: bool,
    max_steps: int,
) -> OnlineResult:
    """`num_evals` runs per task, one env slot each (slots in task order, each set to its
    task): from the prior, accumulating the run's own context; after `num_exp_traj`
    trajectories the posterior of all the context so far, re-inferred after every later
    trajectory, until `max_steps` transitions."""
    slot_paths, mean, var = adapt_online(
        envs,
        agent,
        max_path_length=max_path_length,
        num_exp_traj=num_exp_traj,
        sparse_rewards=sparse_rewards,
        use_next_obs=use_next_obs,
        max_steps=max_steps,
    )
    returns = [returns_of(paths, sparse_rewards) for paths in slot_paths]
    successes = [[float(p.succeeded()) for p in paths] for paths in slot_paths]
    final_returns, online_returns = final_and_online(returns, n_tasks, num_evals)
    final_success, online_success = final_and_online(successes, n_tasks, num_evals)
    return OnlineResult(
        final_returns, online_returns, final_success, online_success, slot_paths, mean[-1], var[-1]
    )


# ---------------------------------------------------------------------- Meta-World's own
class PEARLMetaLearningAgent:
    """A PEARL agent as Meta-World's `MetaLearningAgent` (metaworld.evaluation), one belief
    per env of the vector env it is scored on.

    - `init`: every env back to the prior, its context emptied, z drawn from the prior.
    - `adapt_action`: the policy's deterministic action with each env's current z.
    - `step`: the transitions become each env's context; when an env's episode ends, its z is
      drawn again from the posterior of all its context so far (posterior sampling, PEARL's
      online protocol).
    - `adapt`: fixes each env's posterior; `eval_action` then acts deterministically with its
      mean. `reset` changes nothing: the posterior stays fixed while evaluating.

    The context is (o, a, r), or (o, a, r, o') when the run used the next observation: the
    evaluator's Timestep carries no o', so a transition's o' is the next step's o, and the
    last transition of each episode, whose o' the vector env replaces by the next episode's
    first observation, is left out. The reward is the env's own (Meta-World has no sparse
    reward).
    """

    def __init__(self, agent: PEARLAgent, num_envs: int, use_next_obs: bool):
        self.agent = agent
        self.num_envs = num_envs
        self.use_next_obs = use_next_obs
        self.device = next(agent.parameters()).device
        self.init()

    def init(self) -> None:
        self.contexts: list[list[np.ndarray]] = [[] for _ in range(self.num_envs)]
        # a transition waiting for its o' (use_next_obs): (o, a, r) of each env, or None
        self._waiting: list[tuple | None] = [None] * self.num_envs
        self.mean, self.var = self.agent.prior(self.num_envs)
        self.z = self.agent.sample_z(self.mean, self.var)
        self.eval_z: torch.Tensor | None = None

    def _obs(self, observations) -> torch.Tensor:
        obs = np.asarray(observations, dtype=np.float32).reshape(self.num_envs, -1)
        return torch.from_numpy(obs).to(self.device)

    def adapt_action(self, observations) -> tuple[np.ndarray, dict]:
        actions = self.agent.act(self._obs(observations), self.z, deterministic=True)
        return actions.cpu().numpy().astype(np.float64), {}

    def step(self, timestep) -> None:
        obs = np.asarray(timestep.observation, dtype=np.float32).reshape(self.num_envs, -1)
        actions = np.asarray(timestep.action, dtype=np.float32).reshape(self.num_envs, -1)
        rewards = np.asarray(timestep.reward, dtype=np.float32).reshape(self.num_envs)
        ended = np.logical_or(timestep.terminated, timestep.truncated).reshape(self.num_envs)
        for i in range(self.num_envs):
            if self.use_next_obs:
                if self._waiting[i] is not None:
                    o, a, r = self._waiting[i]
                    self.contexts[i].append(context_from(o, a, r, obs[i], True))
                self._waiting[i] = None if ended[i] else (obs[i], actions[i], rewards[i])
            else:
                self.contexts[i].append(context_from(obs[i], actions[i], rewards[i], None, False))
        done = torch.from_numpy(np.flatnonzero(ended))
        if done.numel():
            mean, var = self.posterior(done.tolist())
            self.mean[done], self.var[done] = mean, var
            self.z[done] = self.agent.sample_z(mean, var)

    @torch.no_grad()
    def posterior(self, envs: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|c) of each given env's context so far (the prior where it is empty)."""
        envs = list(envs)
        mean, var = self.agent.prior(len(envs))
        filled = [k for k, i in enumerate(envs) if self.contexts[i]]
        if not filled:
            return mean, var
        rows = [np.stack(self.contexts[envs[k]]) for k in filled]
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        padded = right_padded(rows, int(lengths.max()))
        post_mean, post_var, _ = self.agent.posterior(
            torch.from_numpy(padded).to(self.device),
            lengths=torch.from_numpy(lengths).to(self.device),
        )
        mean[filled], var[filled] = post_mean, post_var
        return mean, var

    def adapt(self) -> None:
        self.mean, self.var = self.posterior(range(self.num_envs))
        self.eval_z = self.mean.clone()

    def eval_action(self, observations) -> np.ndarray:
        actions = self.agent.act(self._obs(observations), self.eval_z, deterministic=True)
        return actions.cpu().numpy().astype(np.float64)

    def reset(self, env_mask) -> None:
        return None


def metaworld_eval_envs(
    family,
    tasks: Sequence[int],
    *,
    envs_per_class: int,
    max_episode_steps: int,
    rng: np.random.Generator,
):
    """A gymnasium SyncVectorEnv of the family's `tasks` for Meta-World's evaluator, made the
    way the package makes its own (`metaworld._init_each_env`: TimeLimit, terminate on
    success, episode statistics, a random task of the env's list at `sample_tasks`; vector
    autoreset in the same step): per class, `envs_per_class` envs (fewer if it has fewer
    tasks), dealt the class's tasks in turn; each seeded from `rng`."""
    import gymnasium as gym
    from metaworld import _init_each_env
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    by_class: dict[str, list] = {}
    for idx in tasks:
        task = family.metaworld_task(int(idx))
        by_class.setdefault(task.env_name, []).append(task)
    thunks = []
    for name, class_tasks in by_class.items():
        k = min(envs_per_class, len(class_tasks))
        for j in range(k):
            thunks.append(
                partial(
                    _init_each_env,
                    env_cls=ALL_V3_ENVIRONMENTS[name],
                    tasks=class_tasks[j::k],
                    seed=int(rng.integers(2**31)),
                    max_episode_steps=max_episode_steps,
                )
            )
    return gym.vector.SyncVectorEnv(thunks, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


@dataclass
class MetaWorldScores:
    """What Meta-World's evaluator returns: the mean success rate over classes, the mean
    episode return, and each class's success rate."""

    success_rate: float
    mean_return: float
    class_success: dict[str, float]


class ClassName(str):
    """A Meta-World class name whose hash is the same in every process (its CRC-32), so that
    a set of them iterates in one order whatever PYTHONHASHSEED is. Equal to the plain name;
    a dict keyed by these must be looked up with these, not with plain strings."""

    __slots__ = ()

    def __hash__(self) -> int:
        return zlib.crc32(self.encode())


@contextmanager
def fixed_class_order() -> Iterator[None]:
    """While inside, Meta-World's evaluator sees the class names as `ClassName`s."""
    import metaworld.evaluation

    names_of = metaworld.evaluation._get_task_names

    def fixed_names(envs) -> list[ClassName]:
        return [ClassName(name) for name in names_of(envs)]

    with mock.patch.object(metaworld.evaluation, "_get_task_names", fixed_names):
        yield


def metaworld_evaluation(
    agent: PEARLAgent,
    family,
    tasks: Sequence[int],
    *,
    num_evals: int,
    adaptation_episodes: int,
    evaluation_episodes: int,
    envs_per_class: int,
    max_episode_steps: int,
    use_next_obs: bool,
    rng: np.random.Generator,
) -> MetaWorldScores:
    """Score the agent with `metaworld.evaluation.metalearning_evaluation` on the family's
    `tasks` (the run's eval tasks: the benchmark's test tasks)."""
    from metaworld.evaluation import metalearning_evaluation

    envs = metaworld_eval_envs(
        family,
        tasks,
        envs_per_class=envs_per_class,
        max_episode_steps=max_episode_steps,
        rng=rng,
    )
    try:
        adapter = PEARLMetaLearningAgent(agent, envs.num_envs, use_next_obs)
        with torch.no_grad(), fixed_class_order():
            success, mean_return, per_class = metalearning_evaluation(
                adapter,
                envs,
                num_evals=num_evals,
                adaptation_episodes=adaptation_episodes,
                evaluation_episodes=evaluation_episodes,
            )
    finally:
        envs.close()
    per_class = {str(name): float(rate) for name, rate in sorted(per_class.items())}
    return MetaWorldScores(float(success), float(mean_return), per_class)
