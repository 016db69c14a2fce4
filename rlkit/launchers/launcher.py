"""Build a PEARL experiment from a validated config and run it, or resume a run from its
checkpoint; Ctrl-C stops it cleanly between two steps."""

import contextlib
import json
import os
import signal
import threading
import warnings
from functools import partial
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from rlkit.core.checkpoint import (
    DataFileError,
    checkpoint_path,
    load_checkpoint,
    remove_unneeded_data,
)
from rlkit.core.logger import RunLogger, create_run_dir, library_versions
from rlkit.core.pearl_algorithm import PEARLAlgorithm, TrainingDiverged
from rlkit.core.tracking import open_trackers
from rlkit.envs import error_line, family_constructor, is_builtin
from rlkit.envs.pixels import PixelError, PixelObservations
from rlkit.envs.protocol import protocol_problem
from rlkit.envs.wrappers import NormalizedBoxEnv
from rlkit.launchers.config import ConfigError, check_output_folder, check_task_counts
from rlkit.render import RenderError
from rlkit.torch.agent import PEARLAgent
from rlkit.torch.cuda_graph import GraphedPEARLTrainer
from rlkit.torch.networks import Mlp, MlpEncoder, RecurrentEncoder, TanhGaussianPolicy
from rlkit.torch.pearl_trainer import PEARLTrainer
from rlkit.torch.pixels import ConvTrunk
from rlkit.torch.pytorch_util import keep_freed_host_memory, select_device

ENCODER_HIDDEN = [200, 200, 200]
EXIT_DIVERGED = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a process stopped by Ctrl-C


class RunStopped(Exception):
    """Training ended before its last iteration; the one-line message says why and how to go
    on, `exit_code` is what the launcher exits with."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def make_env(variant: dict) -> gym.Env:
    """The family's env acting in [-1, 1]^d; observed as frame stacks with `pixels.enabled`."""
    env = NormalizedBoxEnv(family_constructor(variant["env_name"])(**variant["env_params"]))
    pixels = variant["pixels"]
    if not pixels["enabled"]:
        return env
    return PixelObservations(
        env, pixels["size"], pixels["frame_stack"], pixels["grayscale"], pixels["camera"]
    )


def build_trunk(variant: dict) -> ConvTrunk:
    """A pixel run's convolutional trunk, for its frame stacks."""
    pixels = variant["pixels"]
    channels = pixels["frame_stack"] * (1 if pixels["grayscale"] else 3)
    return ConvTrunk(
        channels,
        pixels["size"],
        pixels["conv_layers"],
        pixels["conv_filters"],
        pixels["feature_dim"],
    )


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


WEIGHT_NAMES = ("context_encoder", "policy", "qf1", "qf2", "vf", "target_vf")
PIXEL_WEIGHT_NAMES = ("trunk", "target_trunk")


def build_trainer(
    variant: dict, obs_dim: int, action_dim: int, trainer_class: type | None = None
) -> PEARLTrainer:
    """The networks and their trainer (`trainer_class`, default PEARLTrainer). In a pixel run
    the networks read the trunk's features instead of the `obs_dim` numbers of a frame stack."""
    algo = variant["algo_params"]
    pixels = variant["pixels"]
    trunk = build_trunk(variant) if pixels["enabled"] else None
    nets = build_networks(variant, obs_dim if trunk is None else trunk.feature_dim, action_dim)
    agent = PEARLAgent(
        variant["latent_size"],
        nets["context_encoder"],
        nets["policy"],
        use_information_bottleneck=algo["use_information_bottleneck"],
        trunk=trunk,
    )
    return (trainer_class or PEARLTrainer)(
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
        encoder_tau=pixels["encoder_tau"],
        augment_pad=pixels["augment_pad"] if pixels["augment"] else 0,
        auto_alpha=algo["auto_alpha"],
        target_entropy=algo["target_entropy"],
        alpha_lr=algo["alpha_lr"],
    )


def weight_files(folder: str, variant: dict) -> dict[str, Path]:
    """The state dict files path_to_weights holds: the six networks, and a pixel run's trunk
    and target trunk."""
    names = WEIGHT_NAMES + (PIXEL_WEIGHT_NAMES if variant["pixels"]["enabled"] else ())
    return {name: Path(folder) / f"{name}.pth" for name in names}


def load_network(net: torch.nn.Module, path: Path, name: str) -> None:
    """Load the state dict in `path` (this code's or the reference's) into `net`; ConfigError
    naming the file when it cannot be read or does not fit the network."""
    try:
        state = torch.load(path, map_location="cpu")
        net.load_state_dict(state)
    except Exception as err:  # a torn or foreign file (any unpickling error) or a misfit
        lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
        # load_state_dict's first line only names the class: its second says what misfits
        detail = lines[1] if len(lines) > 1 and "loading state_dict" in lines[0] else lines[0]
        raise ConfigError(f"{path}: does not fit the config's {name} ({detail})") from None


def load_weights(trainer: PEARLTrainer, folder: str, variant: dict) -> None:
    """Start the networks from the NAME.pth state dicts in `folder`."""
    files = weight_files(folder, variant)
    for name, net in trainer.networks.items():
        load_network(net, files[name], name)


def check_family(variant: dict, where: str) -> None:
    """A family from outside the package: it builds from env_params and follows the protocol
    (rlkit.envs.protocol); ConfigError naming what fails."""
    name = variant["env_name"]
    try:
        family = family_constructor(name)(**variant["env_params"])
    except Exception as err:  # the family's own code: any error it raises
        raise ConfigError(
            f"{where}: env_name: {name}(**env_params) failed ({error_line(err)})"
        ) from None
    try:
        problem = protocol_problem(family, variant["algo_params"]["sparse_rewards"])
    except Exception as err:
        problem = f"resetting task 0 and stepping it failed ({error_line(err)})"
    finally:
        with contextlib.suppress(Exception):
            family.close()
    if problem is not None:
        raise ConfigError(f"{where}: env_name: {name} is not a task family: {problem}")


def check_run_inputs(variant: dict, where: str) -> dict:
    """Checks that need the env (the protocol of a family from outside the package, task
    counts) or the start weights; fills in the seed and the thread count."""
    if not is_builtin(variant["env_name"]):
        check_family(variant, where)
    try:
        env = make_env(variant)
    except PixelError as err:
        raise ConfigError(f"{where}: {err}") from None
    except RenderError as err:  # no offscreen OpenGL for a MuJoCo family's frames
        raise ConfigError(f"{where}: pixels.enabled: {err}") from None
    except ValueError as err:  # a family's own check of its env_params
        raise ConfigError(f"{where}: env_params: {err}") from None
    check_task_counts(variant, env, where)
    if variant["path_to_weights"] is not None:
        for path in weight_files(variant["path_to_weights"], variant).values():
            if not path.is_file():
                raise ConfigError(f"{where}: path_to_weights: {path} is missing")
        obs_dim = int(np.prod(env.observation_space.shape))
        action_dim = int(np.prod(env.action_space.shape))
        trainer = build_trainer(variant, obs_dim, action_dim)
        load_weights(trainer, variant["path_to_weights"], variant)
    env.close()
    util = variant["util_params"]
    if util["seed"] is None:
        util["seed"] = int(np.random.SeedSequence().entropy % (2**31))
    if util["num_threads"] is None:  # recorded: the thread count changes a seeded run's numbers
        util["num_threads"] = torch.get_num_threads()
    return variant


def prepare(variant: dict, where: str) -> dict:
    """Everything checked before a new run starts (no files written); fills in the seed."""
    check_run_inputs(variant, where)
    check_output_folder(variant["util_params"]["base_log_dir"], "util_params.base_log_dir", where)
    return variant


def prepare_resume(run_dir: str, variant: dict, where: str) -> dict | None:
    """prepare() for `--resume RUN_DIR`, and the run's checkpoint (None: it stopped before one
    was written, and starts again from the beginning)."""
    check_run_inputs(variant, where)
    check_output_folder(run_dir, "--resume", where)
    try:
        checkpoint = load_checkpoint(Path(run_dir))
    except Exception as err:  # a torn or foreign file: any unpickling error
        message = str(err).strip().split("\n")[0].split(". ")[0] or type(err).__name__
        raise ConfigError(
            f"{checkpoint_path(Path(run_dir))}: not a readable checkpoint ({message})"
        ) from None
    iterations = variant["algo_params"]["num_iterations"]
    if checkpoint is not None and checkpoint["epoch"] > iterations:
        raise ConfigError(
            f"{where}: algo_params.num_iterations ({iterations}) is less than the "
            f"{checkpoint['epoch']} iterations the run has done"
        )
    return checkpoint


def build_algorithm(variant: dict, logger: RunLogger, device: torch.device) -> PEARLAlgorithm:
    """Env slots, networks (optionally from path_to_weights), trainer and the loop."""
    util = variant["util_params"]
    seed = util["seed"]
    torch.manual_seed(seed)
    env = make_env(variant)
    tasks = list(env.get_all_task_idx())
    obs_dim = int(np.prod(env.observation_space.shape))
    action_dim = int(np.prod(env.action_space.shape))
    env.close()  # the slots make their own (Meta-World: this one's env goes back to the pool)
    trainer_class = None
    if util["cuda_graph"]:
        if device.type == "cuda":
            trainer_class = GraphedPEARLTrainer
        else:
            warnings.warn(
                "util_params.cuda_graph is set but training runs on the CPU: the steps run "
                "as they are",
                stacklevel=2,
            )
    trainer = build_trainer(variant, obs_dim, action_dim, trainer_class)
    if variant["path_to_weights"] is not None:
        load_weights(trainer, variant["path_to_weights"], variant)
    trainer.to(device)
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


def describe_position(epoch: int, steps_done: int | None) -> str:
    """Where a checkpoint stands, in words."""
    if steps_done is None:
        return f"after iteration {epoch - 1}" if epoch else "at the start"
    return f"in iteration {epoch}, after {steps_done} meta-gradient steps"


def resume_hint(run_dir: Path) -> str:
    return f"resume with: python launch_experiment.py --resume {run_dir}"


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def stop_on_ctrl_c(algorithm: PEARLAlgorithm):
    """The first Ctrl-C (or SIGTERM, as a pre-empted job receives) asks the algorithm to stop at
    its next safe point (it saves a checkpoint there); a second one raises KeyboardInterrupt at
    once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def request_stop(_signum, _frame):
        algorithm.stop_requested = True
        for number in STOP_SIGNALS:
            signal.signal(number, signal.default_int_handler)
        # os.write: a print here could re-enter a write the main thread is in the middle of
        os.write(2, b"stopping after the current step (Ctrl-C again to stop at once)\n")

    previous = {number: signal.signal(number, request_stop) for number in STOP_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def open_run(variant: dict, resume_dir: Path | None, new_dir: Path | None = None) -> RunLogger:
    """The logger of a new run folder (`new_dir`, else a new one under base_log_dir), or of
    the resumed one; ConfigError when the folder cannot be written (before any training)."""
    util = variant["util_params"]
    try:
        if resume_dir is not None:
            run_dir = resume_dir
        elif new_dir is not None:
            run_dir = Path(new_dir)
            run_dir.mkdir(parents=True, exist_ok=True)
        else:
            run_dir = create_run_dir(util["base_log_dir"], variant["env_name"], debug=util["debug"])
        logger = RunLogger(run_dir)
        logger.save_variant(variant)
        if resume_dir is None:
            logger.save_versions()
        if variant["algo_params"]["dump_eval_paths"]:
            (run_dir / "eval_trajectories").mkdir(exist_ok=True)
    except OSError as err:
        folder = err.filename or util["base_log_dir"]
        raise ConfigError(f"cannot write the run folder '{folder}' ({err.strerror})") from None
    return logger


def restore(algorithm: PEARLAlgorithm, checkpoint: dict | None, run_dir: Path) -> None:
    """Put a freshly built algorithm in the checkpoint's state (None: cut the run's files back
    to empty, to start again); ConfigError when the checkpoint does not fit the run."""
    try:
        if checkpoint is None:
            algorithm.logger.restore(None, 0)
            remove_unneeded_data(run_dir, set())
        else:
            algorithm.load_state_dict(checkpoint)
    except DataFileError as err:
        raise ConfigError(str(err)) from None
    except (ValueError, RuntimeError, KeyError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
        raise ConfigError(
            f"{checkpoint_path(run_dir)}: does not fit the run's variant.json ({first_line})"
        ) from None


def start_trackers(logger: RunLogger, variant: dict) -> None:
    """TensorBoard and W&B, as configured, from the rows progress.csv holds now; ConfigError
    when one cannot start (before any training)."""
    try:
        logger.trackers = open_trackers(variant, logger.run_dir)
    except Exception as err:  # W&B's own errors (login, network) are of many types
        raise ConfigError(f"cannot start the trackers ({error_line(err)})") from None


def _log_resume(logger: RunLogger, algorithm: PEARLAlgorithm, checkpoint: dict | None) -> None:
    if checkpoint is None:
        logger.log("resumed a run without a checkpoint: starting again from iteration 0")
        return
    position = describe_position(checkpoint["epoch"], checkpoint["steps_done"])
    if algorithm.epoch >= algorithm.num_iterations:
        logger.log(f"resumed {position}: all {algorithm.num_iterations} iterations are done")
    else:
        logger.log(f"resumed {position}: continuing with iteration {algorithm.epoch}")
    versions = logger.run_dir / "versions.json"
    saved = json.loads(versions.read_text()) if versions.is_file() else {}
    for name, now in library_versions().items():
        if saved.get(name, now) != now:
            logger.log(f"warning: {name} {now} now, {saved[name]} when the run started")


def run_experiment(
    variant: dict,
    resume_dir: Path | None = None,
    checkpoint: dict | None = None,
    new_dir: Path | None = None,
) -> Path:
    """Train PEARL as configured; returns the run folder. With `resume_dir`, continue that run
    from `checkpoint` (prepare_resume), or from the beginning when it has none; the checkpoint
    is let go once restored (pass it as an expression, not a variable kept alive: its buffers
    can be large). A new run writes into `new_dir` when given (a sweep's trial folder).

    ConfigError: the folder cannot be written, or the checkpoint does not fit the run (nothing
    trained yet). RunStopped: a loss diverged, or Ctrl-C; a checkpoint of the last good state
    is on disk.
    """
    util = variant["util_params"]
    keep_freed_host_memory()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        device = select_device(util["use_gpu"], util["gpu_id"])
    for w in caught:
        print(f"warning: {w.message}")

    if util["num_threads"] is not None:
        torch.set_num_threads(util["num_threads"])
    os.environ["DEBUG"] = str(int(util["debug"]))
    resume_dir = Path(resume_dir) if resume_dir is not None else None
    logger = open_run(variant, resume_dir, new_dir)
    run_dir = logger.run_dir
    logger.log(f"run folder: {run_dir}")
    logger.log(f"device: {device}, seed: {util['seed']}")
    try:
        algorithm = build_algorithm(variant, logger, device)
        if resume_dir is not None:
            restore(algorithm, checkpoint, run_dir)
            _log_resume(logger, algorithm, checkpoint)
            del checkpoint
        start_trackers(logger, variant)
        with stop_on_ctrl_c(algorithm):
            finished = algorithm.train()
        if not finished:
            message = f"interrupted; {resume_hint(run_dir)}"
            logger.log(message, echo=False)
            raise RunStopped(message, EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        kept = checkpoint_path(run_dir).is_file()
        message = f"interrupted; {'its last checkpoint is kept; ' if kept else ''}"
        message += resume_hint(run_dir)
        logger.log(message, echo=False)
        raise RunStopped(message, EXIT_INTERRUPTED) from None
    except TrainingDiverged as err:
        kept = checkpoint_path(run_dir).is_file()
        position = describe_position(algorithm.saved_epoch, algorithm.saved_steps_done)
        message = f"{err}; " + (
            f"the last good checkpoint ({position}) is kept in {run_dir}"
            if kept
            else f"no checkpoint was written in {run_dir}"
        )
        logger.log(message, echo=False)
        raise RunStopped(f"error: {message}", EXIT_DIVERGED) from None
    finally:
        logger.log(f"results in {run_dir}")
        logger.close()
    return run_dir
