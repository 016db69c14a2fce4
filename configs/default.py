"""Default PEARL experiment settings, with the reference implementation's keys and values.

An experiment's JSON file is deep-merged over this dict; it changes only what differs.
Keys marked "ours" are additions; none of the reference keys were removed or renamed.
"""

default_config = dict(
    env_name="cheetah-dir",
    n_train_tasks=2,
    n_eval_tasks=2,
    latent_size=5,  # dimension of the latent context vector z
    net_size=300,  # units per hidden layer of the policy, Q and V networks
    path_to_weights=None,  # folder with the six .pth files to start the networks from
    env_params=dict(
        n_tasks=2,  # number of distinct tasks; should equal the train plus the eval tasks
        randomize_tasks=True,  # sample the tasks (with a fixed local seed) instead of a fixed list
    ),
    algo_params=dict(
        meta_batch=16,  # tasks per meta-gradient step
        num_iterations=500,  # data collection / training / evaluation iterations
        num_initial_steps=2000,  # transitions per train task collected before training
        num_tasks_sample=5,  # train tasks re-collected per iteration
        num_steps_prior=400,  # transitions per sampled task with z ~ prior
        num_steps_posterior=0,  # transitions per sampled task with z ~ posterior
        num_extra_rl_steps_posterior=400,  # z ~ posterior, RL buffer only (not the encoder's)
        num_train_steps_per_itr=2000,  # meta-gradient steps per iteration
        num_evals=2,  # independent evaluation runs per task
        num_steps_per_eval=600,  # transitions per evaluation run
        batch_size=256,  # transitions per task in the RL batch
        embedding_batch_size=64,  # transitions per task in the context batch
        embedding_mini_batch_size=64,  # context chunk to backprop through (recurrent encoder)
        max_path_length=200,  # trajectory length limit
        discount=0.99,
        soft_target_tau=0.005,  # Polyak rate of the target value network
        policy_lr=3e-4,
        qf_lr=3e-4,
        vf_lr=3e-4,
        context_lr=3e-4,
        reward_scale=5.0,  # scales rewards in the Bellman target: the inverse entropy weight
        auto_alpha=False,  # ours: learn the entropy temperature (SAC)
        target_entropy=None,  # ours: auto_alpha's target entropy; None: -|A| (minus action dim)
        alpha_lr=3e-4,  # ours: auto_alpha's learning rate for log alpha
        sparse_rewards=False,  # use the env's sparse reward for the context and the returns
        kl_lambda=0.1,  # weight of KL(q(z|c) || N(0, I)) in the encoder loss
        use_information_bottleneck=True,  # False: deterministic z, the mean of the encodings
        use_next_obs_in_context=False,  # context (o, a, r, o') instead of (o, a, r)
        update_post_train=1,  # trajectories between posterior updates while collecting
        num_exp_traj_eval=1,  # exploration trajectories before the posterior at test time
        recurrent=False,  # LSTM encoder over ordered trajectories instead of the MLP
        dump_eval_paths=False,  # save evaluation (and prior) trajectories as .pkl
        replay_buffer_size=1000000,  # ours: per-task capacity of each replay buffer
        # ours: the meta-training step's context: 'encoder_buffer' (recent data, the
        # reference), 'replay_buffer' (the whole RL buffer) or 'rl_batch' (the RL batch itself)
        context_source="encoder_buffer",
        # ours: Meta-World families only, the benchmark's own evaluator
        # (metaworld.evaluation.metalearning_evaluation; docs/metaworld.md) on the eval tasks:
        # every this many iterations, 0: only after the last
        metaworld_eval_every=0,
        metaworld_eval_num_evals=10,  # rounds of fresh goals; 0 turns the evaluator off
        metaworld_eval_adaptation_episodes=10,  # episodes per env before the posterior is fixed
        metaworld_eval_evaluation_episodes=3,  # scored episodes per class and round
        metaworld_eval_envs_per_class=1,  # envs per class (more: faster, biased up)
        metaworld_eval_max_episode_steps=500,  # the benchmark's episode length
    ),
    # ours: observations as images instead of the state (docs/pixels.md)
    pixels=dict(
        enabled=False,
        size=64,  # pixels per side of each frame
        grayscale=False,  # one channel per frame instead of RGB
        frame_stack=3,  # frames per observation, the newest last
        camera=None,  # a camera of the MuJoCo model; None: the family's own view
        augment=True,  # DrQ's random shift of every image in the RL batch and the context
        augment_pad=4,  # the shift's largest offset, in pixels
        conv_layers=4,  # 3x3 convolutions of the trunk, the first of stride 2
        conv_filters=32,  # channels of each convolution
        feature_dim=50,  # the trunk's output: Linear -> LayerNorm -> tanh
        encoder_tau=0.05,  # Polyak rate of the target V's copy of the trunk (SAC-AE)
    ),
    util_params=dict(
        base_log_dir="output",
        use_gpu=True,  # falls back to the CPU with a warning when CUDA is not available
        gpu_id=0,
        cuda_graph=False,  # ours: replay each meta-gradient step from a CUDA graph (CUDA only)
        debug=False,  # run folder named `debug`, more printing
        docker=False,
        seed=None,  # ours: None draws a seed, which is recorded in variant.json
        snapshot_mode="last",  # ours: 'last', 'all', 'gap', 'gap_and_last' or 'none'
        snapshot_gap=1,  # ours: iterations between snapshots for 'gap' modes
        # ours: torch's CPU threads; None: what torch picks on the machine, recorded in
        # variant.json (the thread count changes a seeded run's numbers)
        num_threads=None,
        tensorboard=False,  # ours: progress.csv's numeric columns as scalars in RUN/tensorboard
        # ours: Weights & Biases (docs/logging.md); mode 'online', 'offline' or 'disabled'
        wandb=dict(mode="disabled", project=None, entity=None, group=None, tags=[]),
    ),
)
