"""Meta-World's own evaluator: the PEARL agent through its MetaLearningAgent protocol (checked
against the normal posterior path on hand-made transitions of two tasks), and the vector envs
it is scored on (the run's test tasks, nothing else)."""

import pickle

import numpy as np
import pytest
import torch
from conftest import ROOT, run_child
from metaworld.evaluation import Timestep
from metaworld.sawyer_xyz_env import SawyerXYZEnv

from rlkit.core.evaluation import (
    PEARLMetaLearningAgent,
    metaworld_eval_envs,
    metaworld_evaluation,
)
from rlkit.data_management.path import Path
from rlkit.envs import ENVS
from rlkit.launchers.config import apply_override, load_config
from rlkit.launchers.launcher import build_trainer
from rlkit.samplers.online_adaptation import concat_paths, path_context

OBS, ACT = 3, 2


def make_agent(use_next_obs: bool):
    variant = load_config(str(ROOT / "configs/point-robot.json"))
    apply_override(variant, "net_size=16")
    apply_override(variant, f"algo_params.use_next_obs_in_context={str(use_next_obs).lower()}")
    torch.manual_seed(0)
    agent = build_trainer(variant, OBS, ACT).agent
    agent.eval()
    return agent


def posterior_of(agent, paths: list[Path], use_next_obs: bool):
    """q(z|c) of the transitions through the path the rest of the package uses."""
    context, lengths = path_context([concat_paths(paths)], False, use_next_obs, torch.device("cpu"))
    with torch.no_grad():
        mean, var, _ = agent.posterior(context, lengths=lengths)
    return mean[0], var[0]


def episode(obs, actions, rewards, start, end, use_next_obs):
    """Steps start..end-1 of one env as a Path; with o' in the context, the episode's last
    transition is left out (the vector env hides its o')."""
    stop = end - 1 if use_next_obs else end
    n = stop - start
    zeros = np.zeros(n, dtype=np.float32)
    return Path(
        observations=obs[start:stop],
        actions=actions[start:stop],
        rewards=rewards[start:stop],
        sparse_rewards=zeros,
        next_observations=obs[start + 1 : stop + 1],
        terminals=zeros,
        successes=zeros,
    )


@pytest.mark.parametrize("use_next_obs", [False, True], ids=["oar", "oaro"])
def test_adapter_posterior_equals_the_normal_path_and_init_returns_to_the_prior(use_next_obs):
    agent = make_agent(use_next_obs)
    g = np.random.default_rng(0)
    steps = 9
    # two envs, one of each task: env 0's episodes end after steps 3 and 8 (terminated, then
    # truncated), env 1's after step 5
    obs = g.normal(size=(2, steps + 1, OBS)).astype(np.float32)
    actions = g.uniform(-1, 1, size=(2, steps, ACT)).astype(np.float32)
    rewards = g.normal(size=(2, steps)).astype(np.float32)
    terminated = np.zeros((2, steps), dtype=bool)
    truncated = np.zeros((2, steps), dtype=bool)
    terminated[0, 3], truncated[0, 8], truncated[1, 5] = True, True, True
    adapter = PEARLMetaLearningAgent(agent, 2, use_next_obs)
    prior_mean, prior_var = agent.prior(2)
    for t in range(steps):
        # the vector env's observation: after an episode's end, the next one's first; the
        # hand-made obs[t] plays that part
        adapter.step(
            Timestep(obs[:, t], actions[:, t], rewards[:, t], terminated[:, t], truncated[:, t], {})
        )
        if t == 3:  # env 0's first episode ended: its belief is the posterior of it
            first = episode(obs[0], actions[0], rewards[0], 0, 4, use_next_obs)
            mean, var = posterior_of(agent, [first], use_next_obs)
            torch.testing.assert_close(adapter.mean[0], mean)
            torch.testing.assert_close(adapter.var[0], var)
            # env 1 is still in its first episode: the prior
            torch.testing.assert_close(adapter.mean[1], prior_mean[1])
            torch.testing.assert_close(adapter.var[1], prior_var[1])
    adapter.adapt()
    expected = [
        [
            episode(obs[0], actions[0], rewards[0], 0, 4, use_next_obs),
            episode(obs[0], actions[0], rewards[0], 4, 9, use_next_obs),
        ],
        # env 1's second episode has not ended: its transitions so far are context too (with
        # o', all but the last, whose o' is still to come)
        [
            episode(obs[1], actions[1], rewards[1], 0, 6, use_next_obs),
            episode(obs[1], actions[1], rewards[1], 6, 9, use_next_obs),
        ],
    ]
    for i, paths in enumerate(expected):
        mean, var = posterior_of(agent, paths, use_next_obs)
        torch.testing.assert_close(adapter.mean[i], mean)
        torch.testing.assert_close(adapter.var[i], var)
        assert not torch.allclose(mean, prior_mean[i])
    # evaluation acts with the posterior mean, deterministically
    probe = g.normal(size=(2, OBS))
    expected_actions = agent.act(torch.tensor(probe, dtype=torch.float32), adapter.mean, True)
    np.testing.assert_allclose(adapter.eval_action(probe), expected_actions.numpy())
    adapter.reset(np.ones(2, dtype=bool))  # between evaluation episodes: the posterior stays
    np.testing.assert_allclose(adapter.eval_action(probe), expected_actions.numpy())
    adapter.init()
    torch.testing.assert_close(adapter.mean, prior_mean)
    torch.testing.assert_close(adapter.var, prior_var)
    assert adapter.contexts == [[], []]
    adapter.adapt()  # no context: the prior
    torch.testing.assert_close(adapter.mean, prior_mean)


def rand_vec(task) -> tuple:
    return tuple(np.round(pickle.loads(task.data)["rand_vec"], 9))


def test_the_evaluator_scores_the_run_test_tasks_and_nothing_else(monkeypatch):
    family = ENVS["metaworld-ml1"](env_name="reach-v3")
    all_tasks = list(family.get_all_task_idx())
    eval_tasks = all_tasks[-5:]
    wanted = {rand_vec(family.metaworld_task(t)) for t in eval_tasks}
    assert all(family.tasks[t]["split"] == "test" for t in eval_tasks)
    train = {rand_vec(family.metaworld_task(t)) for t in all_tasks[:50]}
    assert not wanted & train

    envs = metaworld_eval_envs(
        family, eval_tasks, envs_per_class=2, max_episode_steps=10, rng=np.random.default_rng(0)
    )
    dealt = [[rand_vec(t) for t in env.get_wrapper_attr("tasks")] for env in envs.envs]
    envs.close()
    assert len(dealt) == 2 and sorted(map(len, dealt)) == [2, 3]  # 5 tasks dealt in turn
    assert {v for part in dealt for v in part} == wanted

    used = []
    set_task = SawyerXYZEnv.set_task

    def recording(self, task):
        used.append(rand_vec(task))
        return set_task(self, task)

    monkeypatch.setattr(SawyerXYZEnv, "set_task", recording)
    agent = make_agent_for(family)
    scores = metaworld_evaluation(
        agent,
        family,
        eval_tasks,
        num_evals=3,
        adaptation_episodes=2,
        evaluation_episodes=1,
        envs_per_class=1,
        max_episode_steps=10,
        use_next_obs=True,
        rng=np.random.default_rng(0),
    )
    family.close()
    assert len(used) == 3  # one draw per round, of the one env's tasks
    assert set(used) <= wanted
    assert list(scores.class_success) == ["reach-v3"]
    assert 0.0 <= scores.success_rate <= 1.0 and scores.mean_return > 0


def make_agent_for(family):
    variant = load_config(str(ROOT / "configs/metaworld-ml1-reach-quick.json"))
    apply_override(variant, "net_size=16")
    obs_dim = family.observation_space.shape[0]
    return build_trainer(variant, obs_dim, family.action_space.shape[0]).agent


# Meta-World's evaluator on five stand-in envs of five classes whose one-step episodes return
# amounts that a float sum adds differently in each order: the mean it prints, with the class
# names as the package makes them ("plain") or as ours hand them over ("fixed")
CLASS_ORDER_SCRIPT = """
import sys
from contextlib import nullcontext

import numpy as np
from metaworld.env_dict import ALL_V3_ENVIRONMENTS
from metaworld.evaluation import metalearning_evaluation

from rlkit.core.evaluation import fixed_class_order

CLASSES = ["lever-pull-v3", "sweep-into-v3", "shelf-place-v3", "door-close-v3", "drawer-open-v3"]
RETURNS = np.array([1e16, 1.0, -1e16, 3.0, 1.0])


class Envs:
    num_envs = len(CLASSES)

    def get_attr(self, name):
        if name == "task_name":
            return [ALL_V3_ENVIRONMENTS[c].__name__ for c in CLASSES]
        return [False] * self.num_envs

    def call(self, name, *args):
        return None

    def reset(self):
        return np.zeros((self.num_envs, 1)), {}

    def step(self, actions):
        ended = np.ones(self.num_envs, dtype=bool)
        info = {"final_info": {"episode": {"r": RETURNS}, "success": np.zeros(self.num_envs)}}
        return np.zeros((self.num_envs, 1)), RETURNS, ended, ended, info


class Agent:
    def init(self): pass
    def adapt_action(self, obs): return np.zeros((len(obs), 1)), {}
    def step(self, timestep): pass
    def adapt(self): pass
    def eval_action(self, obs): return np.zeros((len(obs), 1))
    def reset(self, mask): pass


with fixed_class_order() if sys.argv[1] == "fixed" else nullcontext():
    _, mean_return, _ = metalearning_evaluation(
        Agent(), Envs(), num_evals=1, adaptation_episodes=1, evaluation_episodes=1
    )
print(repr(mean_return))
"""


def test_the_evaluator_sums_classes_in_one_order_whatever_the_hash_seed(tmp_path):
    script = tmp_path / "class_order.py"
    script.write_text(CLASS_ORDER_SCRIPT)

    def means(names: str) -> set[str]:
        runs = [run_child([script, names], env={"PYTHONHASHSEED": str(seed)}) for seed in (1, 2)]
        assert all(r.returncode == 0 for r in runs), runs[0].stderr[-2000:]
        return {r.stdout.strip() for r in runs}

    assert len(means("plain")) > 1  # the package's own names: the sum follows the hash seed
    assert len(means("fixed")) == 1
