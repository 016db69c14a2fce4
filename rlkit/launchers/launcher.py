"""Build a PEARL experiment from a validated config and run it."""

import os
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import torch

from rlkit.core.logger import RunLogger, create_run_dir
from rlkit.core.pearl_algorithm import PEARLAlgorithm
from rlkit.envs import ENVS
from rlkit.envs.wrappers import NormalizedBoxEnv
from rlkit.launchers.config import ConfigError, check_task_counts
from rlkit.torch.agent import PEARLAgent
from rlkit.torch.networks import Mlp, MlpEncoder, RecurrentEncoder, TanhGaussianPolicy
from rlkit.torch.pearl_trainer import PEARLTrainer
from rlkit.torch.pytorch_util import select_device

ENCODER_HIDDEN = [200, 200, 200]


def make_env(variant: dict) -> NormalizedBoxEnv:
    return NormalizedBoxEnv(ENVS[variant["env_name"]](**variant["env_params"]))


def build_networks(variant: dict, obs_dim: int, action_dim: int) -> dict[str, torch.nn.Module]:
    """The context encoder, policy, Q1, Q2 and V of the reference's shapes."""
    algo = variant["algo_params"]
    latent = variant["latent_size"]
    net = variant["net_size"]
    context_dim = obs_dim + action_dim + 1 + (obs_dim if algo["use_next_obs_in_context"] else 0)
    encoder_out = 2 * latent if algo["use_information_bottleneck"] else latent
    encoder_class = RecurrentEncoder if algo["recurrent"] else MlpEncoder
    hidden = [net, net, net]
    return dict(
        context_encoder=encoder_class(ENCODER_HIDDEN, encoder_out, context_dim),
        policy=TanhGaussianPolicy(hidden, obs_dim + latent, action_dim),
        qf1=Mlp(hidden, 1, obs_dim + action_dim + latent),
        qf2=Mlp(hidden, 1, obs_dim + action_dim + latent),
        vf=Mlp(hidden, 1, obs_dim + latent),
    )


def build_trainer(variant: dict, obs_dim: int, action_dim: int) -> PEARLTrainer:
    algo = variant["algo_params"]
    nets = build_networks(variant, obs_dim, action_dim)
    agent = PEARLAgent(
        variant["latent_size"],
        nets["context_encoder"],
        nets["policy"],
        use_information_bottleneck=algo["use_information_bottleneck"],
    )
    return PEARLTrainer(
        agent,
        nets["qf1"],
        nets["qf2"],
        nets["vf"],
        policy_lr=algo["policy_lr"],
        qf_lr=algo["qf_lr"],
        vf_lr=algo["vf_lr"],
        context_lr=algo["context_lr"],
        kl_lambda=algo["kl_lambda"],
        reward_scale=algo["reward_scale"],
        discount=algo["discount"],
        soft_target_tau=algo["soft_target_tau"],
    )


def load_weights(trainer: PEARLTrainer, folder: str, device: torch.device) -> None:
    """Start from the six NAME.pth state dicts in `folder`."""
    for name, net in trainer.networks.items():
        path = Path(folder) / f"{name}.pth"
        if not path.is_file():
            raise ConfigError(f"path_to_weights: {path} is missing")
        net.load_state_dict(torch.load(path, map_location=device))


def prepare(variant: dict, where: str) -> dict:
    """Checks that need the env (task counts) and fills in the seed; no files written."""
    env = make_env(variant)
    check_task_counts(variant, len(env.get_all_task_idx()), where)
    if variant["util_params"]["seed"] is None:
        variant["util_params"]["seed"] = int(np.random.SeedSequence().entropy % (2**31))
    return variant


def build_algorithm(variant: dict, logger: RunLogger, device: torch.device) -> PEARLAlgorithm:
    """Env slots, networks (optionally from path_to_weights), trainer and the loop."""
    util = variant["util_params"]
    seed = util["seed"]
    torch.manual_seed(seed)
    env = make_env(variant)
    tasks = list(env.get_all_task_idx())
    obs_dim = int(np.prod(env.observation_space.shape))
    action_dim = int(np.prod(env.action_space.shape))
    trainer = build_trainer(variant, obs_dim, action_dim)
    if variant["path_to_weights"] is not None:
        load_weights(trainer, variant["path_to_weights"], device)
    for net in trainer.networks.values():
        net.to(device)
    return PEARLAlgorithm(
        env_factory=partial(make_env, variant),
        trainer=trainer,
        train_tasks=tasks[: variant["n_train_tasks"]],
        eval_tasks=tasks[-variant["n_eval_tasks"] :],
        logger=logger,
        device=device,
        rng=np.random.default_rng(seed),
        snapshot_mode=util["snapshot_mode"],
        snapshot_gap=util["snapshot_gap"],
        **variant["algo_params"],
    )


def run_experiment(variant: dict) -> Path:
    """Train PEARL as configured; returns the run folder."""
    util = variant["util_params"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        device = select_device(util["use_gpu"], util["gpu_id"])
    for w in caught:
        print(f"warning: {w.message}")

    os.environ["DEBUG"] = str(int(util["debug"]))
    run_dir = create_run_dir(util["base_log_dir"], variant["env_name"], debug=util["debug"])
    logger = RunLogger(run_dir)
    logger.save_variant(variant)
    if variant["algo_params"]["dump_eval_paths"]:
        (run_dir / "eval_trajectories").mkdir(exist_ok=True)
    logger.log(f"run folder: {run_dir}")
    logger.log(f"device: {device}, seed: {util['seed']}")
    try:
        build_algorithm(variant, logger, device).train()
    finally:
        logger.log(f"results in {run_dir}")
        logger.close()
    return run_dir
