"""Env steps per second of every task family: the raw env, and inside the sampler.

raw      env.step on pre-drawn random actions in [-1, 1] (the launcher's normalised env),
         resetting where an episode ends: the simulator and the family's Python.
sampler  rollout() with the policy of the config's size (net_size 300) choosing every action:
         one slot (one policy call per env step) and SLOTS slots acting together (one batched
         policy call per step across the slots, as collection and evaluation run); slot i on
         task i (Meta-World ML10: the slots hold envs of several classes).

    python benchmarks/env_steps.py [--families cheetah-vel ant-goal ...] [--seconds 3] [--slots 16]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import print_machine  # noqa: E402

from rlkit.launchers.config import load_config, validate  # noqa: E402
from rlkit.launchers.launcher import build_trainer, make_env  # noqa: E402
from rlkit.samplers.rollout import rollout  # noqa: E402

CONFIGS = {
    "point-robot": "configs/point-robot.json",
    "cheetah-dir": "configs/cheetah-dir.json",
    "cheetah-vel": "configs/cheetah-vel.json",
    "ant-dir": "configs/ant-dir.json",
    "ant-goal": "configs/ant-goal.json",
    "humanoid-dir": "configs/humanoid-dir.json",
    "hopper-rand-params": "configs/hopper_rand_params.json",
    "walker-rand-params": "configs/walker_rand_params.json",
    "metaworld-ml1": "configs/metaworld-ml1-reach.json",
    "metaworld-ml10": "configs/metaworld-ml10.json",
}


def raw_steps_per_second(env, seconds: float) -> float:
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, size=(4096, env.action_space.shape[0])).astype(np.float32)
    env.reset(seed=0)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for action in actions[:512]:
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()
        steps += 512
        actions = np.roll(actions, 512, axis=0)
    return steps / (time.perf_counter() - start)


def sampler_steps_per_second(variant: dict, slots: int, seconds: float) -> float:
    envs = [make_env(variant) for _ in range(slots)]
    for i, env in enumerate(envs):
        env.reset(seed=i)
        env.reset_task(i)  # ML10: slots of different classes
    obs_dim = envs[0].observation_space.shape[0]
    action_dim = envs[0].action_space.shape[0]
    agent = build_trainer(variant, obs_dim, action_dim).agent
    max_path_length = variant["algo_params"]["max_path_length"]
    with torch.no_grad():
        rollout(envs, agent, agent.sample_z(*agent.prior(slots)), max_path_length)  # warm-up
    steps, start = 0, time.perf_counter()
    with torch.no_grad():
        while time.perf_counter() - start < seconds:
            z = agent.sample_z(*agent.prior(slots))
            paths = rollout(envs, agent, z, max_path_length)
            steps += sum(len(p.rewards) for p in paths)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per figure")
    parser.add_argument("--slots", type=int, default=16, help="slots of the batched sampler")
    args = parser.parse_args()

    print_machine()
    print(f"policy: net_size of each config, on CPU; {args.seconds:g} s per figure\n")
    header = f"{'family':<20} {'raw env':>10} {'sampler, 1 slot':>16} "
    print(header + f"{f'sampler, {args.slots} slots':>20}   (env steps per second)")
    for family in args.families:
        variant = load_config(CONFIGS[family])
        variant["util_params"]["use_gpu"] = False
        validate(variant, CONFIGS[family])
        raw = raw_steps_per_second(make_env(variant), args.seconds)
        one = sampler_steps_per_second(variant, 1, args.seconds)
        many = sampler_steps_per_second(variant, args.slots, args.seconds)
        print(f"{family:<20} {raw:10.0f} {one:16.0f} {many:20.0f}", flush=True)


if __name__ == "__main__":
    main()
