"""The PEARL meta-training loop: data collection schedule, meta-gradient steps, evaluation.

Each iteration (SPEC section 4):
  - (first iteration only) num_initial_steps per train task with z ~ prior, into both buffers;
  - for num_tasks_sample train tasks drawn at random: clear that task's encoder buffer, then
    num_steps_prior with z ~ prior (both buffers), num_steps_posterior with z ~ posterior
    (both), num_extra_rl_steps_posterior with z ~ posterior (RL buffer only);
  - num_train_steps_per_itr meta-gradient steps on meta_batch train tasks;
  - evaluation (the protocols are rlkit.core.evaluation's: buffer posterior and PEARL online
    every iteration, Meta-World's own evaluator when it is due), logging, snapshot,
    checkpoint.

Tasks of one phase are collected together, one env per task slot (rlkit.samplers.rollout).

Checkpoints (rlkit.core.checkpoint): after every iteration the whole state (networks,
optimizers, both buffers, every random generator, counters, the logger's position) is saved,
after the iteration's row; of the buffers, only the transitions added since the previous
checkpoint are written (to new data files). A stop on request (Ctrl-C) saves it between two
meta-gradient steps. `load_state_dict` puts a freshly built algorithm back into that state,
and `train()` then continues exactly as the uninterrupted run would have.

Every meta-gradient step's gradients are checked for NaN/inf on the device (no sync); the flags
are read once per iteration, and a bad one stops training before that iteration is saved.
"""

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
import torch

from rlkit.core.checkpoint import (
    buffer_data_reader,
    data_file_path,
    remove_unneeded_data,
    save_buffer_data,
    save_checkpoint,
)
from rlkit.core.evaluation import (
    OnlineResult,
    buffer_posterior_eval,
    metaworld_evaluation,
    online_eval,
)
from rlkit.core.logger import RunLogger
from rlkit.core.progress import progress_bar
from rlkit.data_management.multitask_replay_buffer import (
    FrameReplayBuffer,
    MultiTaskReplayBuffer,
)
from rlkit.envs.pixels import PixelObservations
from rlkit.samplers.online_adaptation import context_from, pixel_context_from
from rlkit.samplers.rollout import rollout
from rlkit.torch.pearl_trainer import PEARLTrainer, RLBatch
from rlkit.torch.pixels import PixelContext

TRAINING_STAT_KEYS = (
    ["Z mean train", "Z variance train", "KL Divergence", "KL Loss"]
    + ["QF Loss", "VF Loss", "Policy Loss"]
    + [
        f"{name} {stat}"
        for name in ("Q Predictions", "V Predictions", "Log Pis", "Policy mu", "Policy log std")
        for stat in ("Mean", "Std", "Max", "Min")
    ]
)

# progress.csv's columns of the learned temperature, in auto_alpha runs only
ALPHA_STAT_KEYS = ["Alpha", "Alpha Loss"]

LOSSES = ("QF Loss", "KL Loss", "Alpha Loss", "VF Loss", "Policy Loss")
# which loss an optimizer's gradients come from; the encoder's gradients also hold the Q loss's,
# so a bad encoder gradient with good critic gradients points at the KL term
LOSS_OF_OPTIMIZER = {
    "qf1_optimizer": "QF Loss",
    "qf2_optimizer": "QF Loss",
    "context_optimizer": "KL Loss",
    "vf_optimizer": "VF Loss",
    "policy_optimizer": "Policy Loss",
    "trunk_optimizer": "QF Loss",
    "alpha_optimizer": "Alpha Loss",
}
NO_BAD_STEP = 2**62
# env slots one collection phase may step together (each slot holds its own env)
MAX_COLLECTION_SLOTS = 64


class TrainingDiverged(RuntimeError):
    """A loss became NaN or inf; the message names the loss and the iteration."""


def duplicate_rounds(draws: Sequence[int]) -> list[list[int]]:
    """Split draws into rounds of distinct tasks, keeping each task's draws in order: a task
    drawn twice is collected twice, its encoder buffer cleared before each collection."""
    rounds: list[list[int]] = []
    seen: dict[int, int] = {}
    for task in draws:
        k = seen.get(task, 0)
        seen[task] = k + 1
        if k == len(rounds):
            rounds.append([])
        rounds[k].append(task)
    return rounds


class PEARLAlgorithm:
    """Schedules collection, training and evaluation; owns the buffers and the env slots."""

    def __init__(
        self,
        env_factory: Callable[[], object],
        trainer: PEARLTrainer,
        train_tasks: Sequence[int],
        eval_tasks: Sequence[int],
        logger: RunLogger,
        device: torch.device,
        rng: np.random.Generator,
        *,
        meta_batch: int,
        num_iterations: int,
        num_initial_steps: int,
        num_tasks_sample: int,
        num_steps_prior: int,
        num_steps_posterior: int,
        num_extra_rl_steps_posterior: int,
        num_train_steps_per_itr: int,
        num_evals: int,
        num_steps_per_eval: int,
        batch_size: int,
        embedding_batch_size: int,
        embedding_mini_batch_size: int,
        max_path_length: int,
        sparse_rewards: bool,
        use_next_obs_in_context: bool,
        update_post_train: int,
        num_exp_traj_eval: int,
        dump_eval_paths: bool,
        replay_buffer_size: int,
        context_source: str = "encoder_buffer",
        snapshot_mode: str = "last",
        snapshot_gap: int = 1,
        metaworld_eval_every: int = 0,
        metaworld_eval_num_evals: int = 10,
        metaworld_eval_adaptation_episodes: int = 10,
        metaworld_eval_evaluation_episodes: int = 3,
        metaworld_eval_envs_per_class: int = 1,
        metaworld_eval_max_episode_steps: int = 500,
        **_ignored,
    ):
        self.env_factory = env_factory
        self.trainer = trainer
        self.agent = trainer.agent
        self.train_tasks = [int(t) for t in train_tasks]
        self.eval_tasks = [int(t) for t in eval_tasks]
        self.logger = logger
        self.device = device
        self.rng = rng
        self.meta_batch = meta_batch
        self.num_iterations = num_iterations
        self.num_initial_steps = num_initial_steps
        self.num_tasks_sample = num_tasks_sample
        self.num_steps_prior = num_steps_prior
        self.num_steps_posterior = num_steps_posterior
        self.num_extra_rl_steps_posterior = num_extra_rl_steps_posterior
        self.num_train_steps_per_itr = num_train_steps_per_itr
        self.num_evals = num_evals
        self.num_steps_per_eval = num_steps_per_eval
        self.batch_size = batch_size
        self.embedding_batch_size = embedding_batch_size
        self.embedding_mini_batch_size = embedding_mini_batch_size
        self.max_path_length = max_path_length
        self.sparse_rewards = bool(sparse_rewards)
        self.use_next_obs_in_context = bool(use_next_obs_in_context)
        self.update_post_train = update_post_train
        self.num_exp_traj_eval = num_exp_traj_eval
        self.dump_eval_paths = bool(dump_eval_paths)
        self.context_source = context_source
        self.snapshot_mode = snapshot_mode
        self.snapshot_gap = snapshot_gap
        # Meta-World's own evaluator (rlkit.core.evaluation)
        self.metaworld_eval = dict(
            every=metaworld_eval_every,
            num_evals=metaworld_eval_num_evals,
            adaptation_episodes=metaworld_eval_adaptation_episodes,
            evaluation_episodes=metaworld_eval_evaluation_episodes,
            envs_per_class=metaworld_eval_envs_per_class,
            max_episode_steps=metaworld_eval_max_episode_steps,
        )

        self._envs: list = []
        probe = self._env(0)
        family = probe.unwrapped
        # Meta-World: success rates next to the returns, per held-out class when the eval
        # tasks' classes are not trained on (ML10, ML45)
        self.reports_success = bool(getattr(family, "reports_success", False))
        # a Meta-World family, which the benchmark's own evaluator can score
        self._metaworld = family if hasattr(family, "metaworld_task") else None
        # held-out class -> the positions of its tasks in eval_tasks
        self._eval_classes: dict[str, list[int]] = {}
        if self.reports_success and hasattr(family, "class_of"):
            train_classes = {family.class_of(t) for t in self.train_tasks}
            for i, task in enumerate(self.eval_tasks):
                if family.class_of(task) not in train_classes:
                    self._eval_classes.setdefault(family.class_of(task), []).append(i)
        obs_dim = int(np.prod(probe.observation_space.shape))
        action_dim = int(np.prod(probe.action_space.shape))
        # separate buffers: the RL batch and the encoder's context
        if isinstance(probe, PixelObservations):  # frames stored once, stacks rebuilt
            frame_shape = (probe.frame_channels, *probe.observation_space.shape[1:])
            make_buffer = partial(
                FrameReplayBuffer, frame_shape=frame_shape, frame_stack=probe.frame_stack
            )
        else:
            make_buffer = partial(MultiTaskReplayBuffer, obs_dim=obs_dim)
        self.replay_buffer = make_buffer(
            replay_buffer_size, action_dim=action_dim, tasks=self.train_tasks
        )
        self.enc_replay_buffer = make_buffer(
            replay_buffer_size, action_dim=action_dim, tasks=self.train_tasks
        )
        self._next_data_file = 0  # the number of the next buffer data file (checkpoints)
        self.n_env_steps_total = 0
        self.n_train_steps_total = 0
        self.n_rollouts_total = 0
        self._train_stats: OrderedDict | None = None
        self._previous_eval_time = 0.0
        # where the loop stands: the iteration under way (or next), and how many of its
        # meta-gradient steps are done (None: its data is not collected yet)
        self.epoch = 0
        self._steps_done: int | None = None
        self._sample_time = 0.0
        self._train_time = 0.0
        self._elapsed = 0.0  # Total Train Time of the runs before this one (resumed runs)
        self._segment_start = time.perf_counter()
        self.stop_requested = False
        # where the last checkpoint written or loaded stands (epoch, steps_done)
        self.saved_epoch, self.saved_steps_done = 0, None
        self._watch_gradients()

    # ----------------------------------------------------------------- divergence
    def _watch_gradients(self) -> None:
        """Before every optimizer step, record on the device the first step of the iteration
        whose gradients are not finite, per loss. A NaN or inf loss gives such gradients, and
        Adam carries them into the weights, so nothing is synced per step."""
        self._first_bad_step = torch.full((len(LOSSES),), NO_BAD_STEP, device=self.device)
        # the step's index on the device, so that a step replayed from a CUDA graph reads it
        self._step_index = torch.zeros((), dtype=torch.int64, device=self.device)
        for attribute, loss in LOSS_OF_OPTIMIZER.items():
            index = LOSSES.index(loss)
            optimizer = getattr(self.trainer, attribute, None)
            if optimizer is None:  # the trunk's (state run), the temperature's (no auto_alpha)
                continue

            def check(optimizer, _args, _kwargs, index=index):
                grads = [p.grad for g in optimizer.param_groups for p in g["params"]]
                grads = [g for g in grads if g is not None]
                if not grads:
                    return
                total = torch.stack(torch._foreach_norm(grads)).sum()
                step = torch.where(torch.isfinite(total), NO_BAD_STEP, self._step_index)
                self._first_bad_step[index] = torch.minimum(self._first_bad_step[index], step)

            optimizer.register_step_pre_hook(check)

    def _check_finite(self) -> None:
        """Raise TrainingDiverged naming the first loss that went bad in this iteration (ties:
        in the order of the step), or whose logged value (first step) is not finite."""
        first = self._first_bad_step.tolist()
        stats = self._train_stats or {}
        logged = [k for k, v in stats.items() if k in LOSSES and not math.isfinite(v)]
        if min(first) == NO_BAD_STEP and not logged:
            return
        if min(first) < NO_BAD_STEP:
            loss = LOSSES[first.index(min(first))]
            where = f"meta-gradient step {int(min(first))} of iteration {self.epoch}"
        else:
            loss, where = logged[0], f"iteration {self.epoch}"
        raise TrainingDiverged(f"{loss} became NaN or inf at {where}")

    # ----------------------------------------------------------------- env slots
    def _env(self, slot: int):
        while len(self._envs) <= slot:
            env = self.env_factory()
            env.reset(seed=int(self.rng.integers(2**31)))
            self._envs.append(env)
        return self._envs[slot]

    def _slot_envs(self, tasks: Sequence[int]) -> list:
        envs = [self._env(slot) for slot in range(len(tasks))]
        for env, task in zip(envs, tasks, strict=True):
            env.reset_task(int(task))
        return envs

    # ----------------------------------------------------------------- data
    def _to_torch(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(self.device)

    def sample_context(
        self, tasks: Sequence[int], buffer: MultiTaskReplayBuffer | None = None
    ) -> torch.Tensor:
        """(tasks, embedding_batch_size, context_dim) from `buffer` (default: the encoder
        buffers); ordered whole trajectories for the recurrent encoder, random transitions
        otherwise."""
        buffer = buffer or self.enc_replay_buffer
        if self.agent.recurrent:
            batch = buffer.random_sequences(tasks, self.embedding_batch_size, self.rng)
        else:
            batch = buffer.random_batch(tasks, self.embedding_batch_size, self.rng)
        return self._context_of(batch)

    def _context_of(self, batch: dict[str, np.ndarray]) -> torch.Tensor | PixelContext:
        """The encoder's input made of a buffer batch's transitions (a pixel run's frames go
        to the agent's trunk as they are)."""
        rewards = batch["sparse_rewards"] if self.sparse_rewards else batch["rewards"]
        if batch["observations"].dtype == np.uint8:
            next_obs = batch["next_observations"] if self.use_next_obs_in_context else None
            return pixel_context_from(
                batch["observations"], batch["actions"], rewards, next_obs, self.device
            )
        context = context_from(
            batch["observations"],
            batch["actions"],
            rewards,
            batch["next_observations"],
            self.use_next_obs_in_context,
        )
        return self._to_torch(context)

    def sample_rl_batch(self, tasks: Sequence[int]) -> RLBatch:
        """batch_size transitions per task from the RL buffers; dense rewards always."""
        return self._rl_batch_of(self.replay_buffer.random_batch(tasks, self.batch_size, self.rng))

    def _rl_batch_of(self, batch: dict[str, np.ndarray]) -> RLBatch:
        return RLBatch(
            obs=self._to_torch(batch["observations"]),
            actions=self._to_torch(batch["actions"]),
            rewards=self._to_torch(batch["rewards"]),
            next_obs=self._to_torch(batch["next_observations"]),
            terminals=self._to_torch(batch["terminals"]),
        )

    @torch.no_grad()
    def _posterior(self, context: torch.Tensor, lengths: torch.Tensor | None = None):
        mean, var, _ = self.agent.posterior(context, lengths=lengths)
        return mean, var

    # ----------------------------------------------------------------- collection
    def collect_data(
        self,
        tasks: Sequence[int],
        num_samples: int,
        update_posterior_rate: float,
        add_to_enc_buffer: bool = True,
        desc: str | None = None,
    ) -> None:
        """Whole trajectories on each (distinct) task until it has >= num_samples transitions.

        z is resampled every trajectory; trajectory j of a task draws it from belief
        j // update_posterior_rate: belief 0 is the prior (the first trajectories use the prior,
        as in the reference), belief k >= 1 a posterior inferred from a fresh context sample of
        the task's encoder buffer once its trajectories 0 .. k * update_posterior_rate - 1 are
        stored.

        Where the phase's own data cannot change those beliefs (rate inf, or the data does not
        go to the encoder buffer), a task's trajectories are independent and run side by side:
        as many slots as trajectories the task certainly still needs (remaining transitions /
        max_path_length, rounded up), at most MAX_COLLECTION_SLOTS in all. The trajectories run
        and the beliefs they use are those of running them one after another.
        """
        tasks = np.asarray(tasks, dtype=np.int64)
        rate = update_posterior_rate
        independent = rate == np.inf or not add_to_enc_buffer
        counts = np.zeros(len(tasks), dtype=np.int64)
        trajectories = np.zeros(len(tasks), dtype=np.int64)
        beliefs: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}
        bar = progress_bar(len(tasks) * num_samples, desc) if desc else None
        shown = 0
        while (active := np.flatnonzero(counts < num_samples)).size:
            per_task = np.ones(active.size, dtype=np.int64)
            if independent:
                needed = -(-(num_samples - counts[active]) // self.max_path_length)
                per_task = np.minimum(needed, max(1, MAX_COLLECTION_SLOTS // active.size))
            slot_task = np.repeat(active, per_task)  # index into tasks
            first_slot = np.repeat(np.cumsum(per_task) - per_task, per_task)
            slot_trajectory = trajectories[slot_task] + np.arange(slot_task.size) - first_slot
            slot_belief = np.zeros_like(slot_trajectory)
            if rate != np.inf:
                slot_belief = slot_trajectory // int(rate)
            mean, var = self._slot_beliefs(tasks, slot_task, slot_belief, beliefs)
            z = self.agent.sample_z(mean, var)
            paths = rollout(self._slot_envs(tasks[slot_task]), self.agent, z, self.max_path_length)
            for s, path in zip(slot_task, paths, strict=True):
                self.replay_buffer.add_path(int(tasks[s]), path)
                if add_to_enc_buffer:
                    self.enc_replay_buffer.add_path(int(tasks[s]), path)
                counts[s] += len(path)
                trajectories[s] += 1
            if bar is not None:
                done = int(np.minimum(counts, num_samples).sum())
                bar.update(done - shown)
                shown = done
            self.n_rollouts_total += len(paths)
        if bar is not None:
            bar.close()
        self.n_env_steps_total += int(counts.sum())

    def _slot_beliefs(
        self,
        tasks: np.ndarray,
        slot_task: np.ndarray,
        slot_belief: np.ndarray,
        beliefs: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each slot's belief (mean, var): the prior for belief 0, else the posterior of
        (task, belief), inferred the first time it is needed (all missing ones in one call)."""
        keys = [(int(i), int(k)) for i, k in zip(slot_task, slot_belief, strict=True)]
        missing = sorted({key for key in keys if key[1] > 0} - beliefs.keys())
        if missing:
            rows = np.array([i for i, _ in missing], dtype=np.int64)
            post_mean, post_var = self._posterior(self.sample_context(tasks[rows]))
            for j, key in enumerate(missing):
                beliefs[key] = (post_mean[j], post_var[j])
        prior_mean, prior_var = self.agent.prior(1)
        pairs = [beliefs[key] if key[1] > 0 else (prior_mean[0], prior_var[0]) for key in keys]
        return torch.stack([m for m, _ in pairs]), torch.stack([v for _, v in pairs])

    def _collect_iteration_data(self) -> None:
        draws = self.rng.integers(len(self.train_tasks), size=self.num_tasks_sample)
        for round_tasks in duplicate_rounds([self.train_tasks[i] for i in draws]):
            for task in round_tasks:
                self.enc_replay_buffer.clear(task)
            if self.num_steps_prior > 0:
                self.collect_data(round_tasks, self.num_steps_prior, np.inf)
            if self.num_steps_posterior > 0:
                self.collect_data(round_tasks, self.num_steps_posterior, self.update_post_train)
            if self.num_extra_rl_steps_posterior > 0:
                self.collect_data(
                    round_tasks,
                    self.num_extra_rl_steps_posterior,
                    self.update_post_train,
                    add_to_enc_buffer=False,
                )

    # ----------------------------------------------------------------- training
    def _do_training(self, indices: np.ndarray) -> None:
        """One meta-gradient step; the context is consumed in embedding_mini_batch_size
        chunks, each a full step on a fresh RL batch, with the encoder state (recurrent)
        carried across chunks and detached between them (truncated backprop).

        context_source says where the context comes from: the encoder buffers (the
        reference), an independent sample of the RL buffers, or each chunk's RL batch itself
        (then a chunk's context is that batch's batch_size transitions)."""
        mb = self.embedding_mini_batch_size
        context = None
        if self.context_source == "encoder_buffer":
            context = self.sample_context(indices)
        elif self.context_source == "replay_buffer":
            context = self.sample_context(indices, self.replay_buffer)
        state = None
        for i in range(self.embedding_batch_size // mb):
            if context is None:
                transitions = self.replay_buffer.random_batch(indices, self.batch_size, self.rng)
                batch, chunk = self._rl_batch_of(transitions), self._context_of(transitions)
            else:
                chunk = context[:, i * mb : (i + 1) * mb]
                batch = self.sample_rl_batch(indices)
            state, stats = self.trainer.take_step(
                chunk, batch, state, want_stats=self._train_stats is None
            )
            if stats is not None:
                self._train_stats = stats

    # ----------------------------------------------------------------- evaluation
    def _eval_with_buffer_posterior(self, tasks: Sequence[int]) -> tuple[float, float]:
        """AverageTrainReturn and its success rate (rlkit.core.evaluation)."""
        return buffer_posterior_eval(
            self._slot_envs(tasks),
            self.agent,
            lambda: self.sample_context(tasks),
            num_trajs=self.num_steps_per_eval // self.max_path_length,
            max_path_length=self.max_path_length,
            sparse_rewards=self.sparse_rewards,
        )

    def _online_eval(self, tasks: Sequence[int], epoch: int) -> OnlineResult:
        """PEARL's online protocol, num_evals runs per task (rlkit.core.evaluation); their
        trajectories saved when dump_eval_paths is set."""
        slot_tasks = np.repeat(np.asarray(tasks, dtype=np.int64), self.num_evals)
        result = online_eval(
            self._slot_envs(slot_tasks),
            self.agent,
            len(tasks),
            num_evals=self.num_evals,
            max_path_length=self.max_path_length,
            num_exp_traj=self.num_exp_traj_eval,
            sparse_rewards=self.sparse_rewards,
            use_next_obs=self.use_next_obs_in_context,
            max_steps=self.num_steps_per_eval,
        )
        if self.dump_eval_paths:
            for s, task in enumerate(slot_tasks):
                goal = self._envs[s].tasks[int(task)]
                self.logger.save_extra(
                    [dict(vars(p), goal=goal) for p in result.slot_paths[s]],
                    f"eval_trajectories/task{task}-epoch{epoch}-run{s % self.num_evals}",
                )
        return result

    def _metaworld_due(self, epoch: int) -> bool:
        """Whether Meta-World's own evaluator scores this iteration: every
        metaworld_eval_every iterations (0: none before) and after the last."""
        if self._metaworld is None or self.metaworld_eval["num_evals"] == 0:
            return False
        every = self.metaworld_eval["every"]
        return epoch == self.num_iterations - 1 or (every > 0 and (epoch + 1) % every == 0)

    def _metaworld_stats(self, epoch: int) -> OrderedDict:
        """The MetaWorld* columns: the evaluator's scores on the eval tasks when it is due,
        NaN otherwise (every row has the same columns)."""
        stats = OrderedDict()
        names = ["MetaWorldSuccessRate_test_tasks", "MetaWorldReturn_test_tasks"]
        names += [f"MetaWorldSuccessRate_test_tasks_{c}" for c in self._eval_classes]
        if not self._metaworld_due(epoch):
            return OrderedDict((name, float("nan")) for name in names)
        settings = self.metaworld_eval
        scores = metaworld_evaluation(
            self.agent,
            self._metaworld,
            self.eval_tasks,
            num_evals=settings["num_evals"],
            adaptation_episodes=settings["adaptation_episodes"],
            evaluation_episodes=settings["evaluation_episodes"],
            envs_per_class=settings["envs_per_class"],
            max_episode_steps=settings["max_episode_steps"],
            use_next_obs=self.use_next_obs_in_context,
            rng=self.rng,
        )
        stats[names[0]] = scores.success_rate
        stats[names[1]] = scores.mean_return
        for c in self._eval_classes:
            stats[f"MetaWorldSuccessRate_test_tasks_{c}"] = scores.class_success[c]
        self.logger.log(
            f"iteration {epoch}: Meta-World evaluator, test success {scores.success_rate:.3f}"
        )
        return stats

    def _dump_prior_paths(self, epoch: int) -> None:
        """20 deterministic trajectories with z ~ prior on the first eval task, for pictures."""
        tasks = [self.eval_tasks[0]] * 20
        envs = self._slot_envs(tasks)
        z = self.agent.sample_z(*self.agent.prior(len(tasks)))
        paths = rollout(envs, self.agent, z, self.max_path_length, deterministic=True)
        goal = envs[0].tasks[tasks[0]]
        self.logger.save_extra(
            [dict(vars(p), goal=goal) for p in paths], f"eval_trajectories/prior-epoch{epoch}"
        )

    def evaluate(self, epoch: int) -> OrderedDict:
        if self.dump_eval_paths:
            self._dump_prior_paths(epoch)
        # a subset of the train tasks, as many as there are eval tasks
        indices = self.rng.choice(self.train_tasks, len(self.eval_tasks))
        with progress_bar(3, f"iteration {epoch}: evaluation") as bar:
            train_returns, train_success = self._eval_with_buffer_posterior(indices)
            bar.update()
            train = self._online_eval(indices, epoch)
            bar.update()
            test = self._online_eval(self.eval_tasks, epoch)
            bar.update()
        success_curves = None
        if self.reports_success:
            success_curves = (train.online_success, test.online_success)
        self.logger.save_online_returns(
            epoch, train.online_returns, test.online_returns, success_curves
        )
        self.logger.log(f"online returns, test tasks: {np.round(test.online_returns, 2).tolist()}")
        stats = OrderedDict()
        stats["Z mean eval"] = float(test.z_mean.abs().mean())
        stats["Z variance eval"] = float(test.z_var.mean())
        stats["AverageTrainReturn_all_train_tasks"] = train_returns
        stats["AverageReturn_all_train_tasks"] = float(np.mean(train.final_returns))
        stats["AverageReturn_all_test_tasks"] = float(np.mean(test.final_returns))
        if self.reports_success:
            stats["TrainSuccessRate_all_train_tasks"] = train_success
            stats["SuccessRate_all_train_tasks"] = float(np.mean(train.final_success))
            stats["SuccessRate_all_test_tasks"] = float(np.mean(test.final_success))
            for name, positions in self._eval_classes.items():
                rates = [test.final_success[i] for i in positions]
                stats[f"SuccessRate_test_tasks_{name}"] = float(np.mean(rates))
        if self._metaworld is not None and self.metaworld_eval["num_evals"] > 0:
            stats.update(self._metaworld_stats(epoch))
        return stats

    # ----------------------------------------------------------------- loop
    def _set_training_mode(self, mode: bool) -> None:
        for net in self.trainer.networks.values():
            net.train(mode)

    # ----------------------------------------------------------------- checkpoints
    @property
    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {
            name: value
            for name, value in vars(self.trainer).items()
            if isinstance(value, torch.optim.Optimizer)
        }

    def state_dict(self) -> dict:
        """Everything train() needs to go on as if never stopped (rlkit.core.checkpoint)."""
        cuda = self.device.type == "cuda"
        state = {
            "networks": {name: net.state_dict() for name, net in self.trainer.networks.items()},
            "optimizers": {name: opt.state_dict() for name, opt in self._optimizers.items()},
            "replay_buffer": self.replay_buffer.state_dict(),
            "enc_replay_buffer": self.enc_replay_buffer.state_dict(),
            "next_data_file": self._next_data_file,
            "rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device) if cuda else None,
            "env_rngs": [env.unwrapped.np_random.bit_generator.state for env in self._envs],
            "epoch": self.epoch,
            "steps_done": self._steps_done,
            "train_stats": dict(self._train_stats) if self._train_stats is not None else None,
            "counters": {
                "n_env_steps_total": self.n_env_steps_total,
                "n_train_steps_total": self.n_train_steps_total,
                "n_rollouts_total": self.n_rollouts_total,
            },
            "times": {
                "previous_eval": self._previous_eval_time,
                "sample": self._sample_time,
                "train": self._train_time,
                "elapsed": self._elapsed_now(),
            },
            "logger": self.logger.position(),
        }
        if self.trainer.auto_alpha:  # a bare tensor, neither a network nor an optimizer
            state["log_alpha"] = self.trainer.log_alpha.detach().clone()
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore state_dict() into an algorithm built from the same config. Whatever the build
        drew from the random generators (env seeds, network init) is overwritten."""
        for name, net in self.trainer.networks.items():
            net.load_state_dict(state["networks"][name])
        for name, opt in self._optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        if self.trainer.auto_alpha:
            with torch.no_grad():
                self.trainer.log_alpha.copy_(state["log_alpha"])
        run_dir = self.logger.run_dir
        for name, buffer in self._buffers.items():
            buffer.load_state_dict(state[name], buffer_data_reader(run_dir, name))
        # single-file checkpoints (before data files) have no number: their data goes to 0..
        self._next_data_file = state.get("next_data_file", 0)
        if state["env_rngs"]:
            self._env(len(state["env_rngs"]) - 1)
        for env, env_rng in zip(self._envs, state["env_rngs"], strict=False):
            env.unwrapped.np_random.bit_generator.state = env_rng
        self.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.epoch = state["epoch"]
        self._steps_done = state["steps_done"]
        stats = state["train_stats"]
        self._train_stats = OrderedDict(stats) if stats is not None else None
        for name, value in state["counters"].items():
            setattr(self, name, value)
        times = state["times"]
        self._previous_eval_time = times["previous_eval"]
        self._sample_time = times["sample"]
        self._train_time = times["train"]
        self._elapsed = times["elapsed"]
        self.logger.restore(state["logger"], state["epoch"])
        remove_unneeded_data(run_dir, self._needed_data_files())
        self.saved_epoch, self.saved_steps_done = self.epoch, self._steps_done

    @property
    def _buffers(self) -> dict[str, MultiTaskReplayBuffer]:
        """The buffers by their name in the checkpoint (and their data files')."""
        return {"replay_buffer": self.replay_buffer, "enc_replay_buffer": self.enc_replay_buffer}

    def _needed_data_files(self) -> set:
        return {
            data_file_path(self.logger.run_dir, name, file)
            for name, buffer in self._buffers.items()
            for file in buffer.files()
        }

    def save_checkpoint(self) -> None:
        """The transitions added since the last checkpoint into new data files, then the
        checkpoint; the data files it no longer needs are deleted once it is on disk."""
        run_dir = self.logger.run_dir
        for name, buffer in self._buffers.items():
            self._next_data_file = save_buffer_data(run_dir, name, buffer, self._next_data_file)
        save_checkpoint(run_dir, self.state_dict())
        remove_unneeded_data(run_dir, self._needed_data_files())
        self.saved_epoch, self.saved_steps_done = self.epoch, self._steps_done

    def _elapsed_now(self) -> float:
        return self._elapsed + time.perf_counter() - self._segment_start

    # ----------------------------------------------------------------- loop
    def train(self) -> bool:
        """Run the iterations from where the algorithm stands to num_iterations; True when all
        are done, False when it stopped on request (stop_requested), a checkpoint saved."""
        self._segment_start = time.perf_counter()
        try:
            while self.epoch < self.num_iterations:
                if self.stop_requested:
                    return False
                self._set_training_mode(True)
                if self._steps_done is None:
                    self._collect(self.epoch)
                if not self._train_steps():
                    return False
                self._finish_iteration()
            return True
        finally:
            self._elapsed = self._elapsed_now()
            self._segment_start = time.perf_counter()

    def _collect(self, epoch: int) -> None:
        t0 = time.perf_counter()
        if epoch == 0:
            self.logger.log("collecting the initial pool of data for the train tasks")
            self.collect_data(self.train_tasks, self.num_initial_steps, np.inf, desc="initial data")
        self._collect_iteration_data()
        self._sample_time = time.perf_counter() - t0
        self._train_time = 0.0
        self._train_stats = None
        self._steps_done = 0

    def _train_steps(self) -> bool:
        """The iteration's remaining meta-gradient steps; False when a stop was requested
        (then saved between two steps)."""
        self._first_bad_step.fill_(NO_BAD_STEP)
        t1 = time.perf_counter()
        remaining = self.num_train_steps_per_itr - self._steps_done
        with progress_bar(remaining, f"iteration {self.epoch}: training") as bar:
            while self._steps_done < self.num_train_steps_per_itr:
                if self.stop_requested:
                    self._train_time += time.perf_counter() - t1
                    self._check_finite()
                    self.save_checkpoint()
                    self.logger.log(
                        f"stopped at iteration {self.epoch} after {self._steps_done} "
                        "meta-gradient steps; checkpoint saved"
                    )
                    return False
                indices = self.rng.choice(self.train_tasks, self.meta_batch)
                self._step_index.fill_(self._steps_done)
                self._do_training(indices)
                self.n_train_steps_total += 1
                self._steps_done += 1
                bar.update()
        self._train_time += time.perf_counter() - t1
        self._check_finite()
        return True

    def _finish_iteration(self) -> None:
        """Evaluate, write the snapshot and the row, then the checkpoint: a kill between the
        row and the checkpoint leaves a row that the resumed run cuts off and writes again."""
        epoch = self.epoch
        self._set_training_mode(False)
        t2 = time.perf_counter()
        eval_stats = self.evaluate(epoch)
        eval_time = time.perf_counter() - t2
        self.logger.save_snapshot(
            epoch, self.trainer.networks, self.snapshot_mode, self.snapshot_gap
        )
        row = OrderedDict()
        train_stats = self._train_stats or {}
        for key in TRAINING_STAT_KEYS + (ALPHA_STAT_KEYS if self.trainer.auto_alpha else []):
            row[key] = train_stats.get(key, float("nan"))
        row.update(eval_stats)
        row["Number of train steps total"] = self.n_train_steps_total
        row["Number of env steps total"] = self.n_env_steps_total
        row["Number of rollouts total"] = self.n_rollouts_total
        row["Train Time (s)"] = self._train_time
        row["(Previous) Eval Time (s)"] = self._previous_eval_time
        row["Sample Time (s)"] = self._sample_time
        row["Epoch Time (s)"] = self._sample_time + self._train_time + eval_time
        row["Total Train Time (s)"] = self._elapsed_now()
        row["Epoch"] = epoch
        self.logger.record_row(row)
        self._previous_eval_time = eval_time
        self.logger.log(
            f"iteration {epoch}: test return {row['AverageReturn_all_test_tasks']:.2f}, "
            f"train return (buffer posterior) {row['AverageTrainReturn_all_train_tasks']:.2f}, "
            f"{row['Epoch Time (s)']:.1f} s"
        )
        self.epoch = epoch + 1
        self._steps_done = None
        self.save_checkpoint()
