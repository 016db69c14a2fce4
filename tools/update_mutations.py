"""Does the update's oracle test catch a broken update? Mutation by mutation, it breaks one
thing in a copy of the code (a detach, the order of the steps, a loss weight, the target, the
LSTM state between chunks, ...), runs tests/torch/test_update_oracle.py on that copy, and
prints which mutations the test caught. Exit status 1 if any was missed.

    .venv/bin/python tools/update_mutations.py            # all mutations, about a minute
    .venv/bin/python tools/update_mutations.py -k target  # those whose name contains 'target'
    .venv/bin/python tools/update_mutations.py --cases fused  # only the oracle's fused cases
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAINER = "rlkit/torch/pearl_trainer.py"
AGENT = "rlkit/torch/agent.py"
NETWORKS = "rlkit/torch/networks.py"
ALGORITHM = "rlkit/core/pearl_algorithm.py"
UTIL = "rlkit/torch/pytorch_util.py"

# name -> (file, text, replacement) or (file, [(text, replacement), ...]); each text occurs in
# its file exactly once
MUTATIONS = {
    "policy input z not detached": (
        TRAINER,
        "torch.cat([obs.detach(), task_z.detach()], dim=-1)",
        "torch.cat([obs.detach(), task_z], dim=-1)",
    ),
    "V input z not detached": (
        TRAINER,
        "self.vf(obs.detach(), task_z.detach())",
        "self.vf(obs.detach(), task_z)",
    ),
    "target V with gradients": (
        TRAINER,
        "        with torch.no_grad():\n            target_v = self.target_vf(next_obs, task_z)",
        "        if True:\n            target_v = self.target_vf(next_obs, task_z)",
    ),
    "V target not detached": (
        TRAINER,
        "(v_pred - v_target.detach())",
        "(v_pred - v_target)",
    ),
    "min Q for V and policy with z into the encoder": (
        TRAINER,
        "self._min_q_action_grad_only(obs.detach(), new_actions, task_z.detach())",
        "self._min_q_action_grad_only(obs.detach(), new_actions, task_z)",
    ),
    "Q target from V instead of the target V": (
        TRAINER,
        "target_v = self.target_vf(next_obs, task_z)",
        "target_v = self.vf(next_obs, task_z)",
    ),
    "Q target without (1 - done)": (
        TRAINER,
        "(1.0 - terminals) * self.discount",
        "self.discount",
    ),
    "Q target without the reward scale": (
        TRAINER,
        "self.reward_scale * rewards",
        "rewards",
    ),
    "Q target without the discount": (
        TRAINER,
        "(1.0 - terminals) * self.discount * target_v",
        "(1.0 - terminals) * target_v",
    ),
    "KL loss without kl_lambda": (
        TRAINER,
        "kl_loss = self.kl_lambda * kl_div",
        "kl_loss = kl_div",
    ),
    "Q loss: one critic only": (
        TRAINER,
        "torch.mean((q1_pred - q_target) ** 2) + torch.mean((q2_pred - q_target) ** 2)",
        "2 * torch.mean((q1_pred - q_target) ** 2)",
    ),
    "V and policy steps on min Q of the critics before their step": (
        TRAINER,
        [
            (
                "        self.qf1_optimizer.step()\n",
                "        old_min_q = self._min_q_action_grad_only("
                "obs.detach(), new_actions, task_z.detach())\n"
                "        self.qf1_optimizer.step()\n",
            ),
            (
                "min_q_new_actions = self._min_q_action_grad_only("
                "obs.detach(), new_actions, task_z.detach())",
                "min_q_new_actions = old_min_q",
            ),
        ],
    ),
    "encoder stepped at the critics' learning rate": (
        TRAINER,
        "adam(agent.context_encoder.parameters(), lr=context_lr)",
        "adam(agent.context_encoder.parameters(), lr=qf_lr)",
    ),
    "V target without -log pi": (
        TRAINER,
        "v_target = min_q_new_actions - entropy_term",
        "v_target = min_q_new_actions",
    ),
    "policy loss without log pi": (
        TRAINER,
        "policy_loss = (entropy_term - min_q_new_actions).mean()",
        "policy_loss = (-min_q_new_actions).mean()",
    ),
    "auto_alpha: V target without alpha": (
        TRAINER,
        "v_target = min_q_new_actions - entropy_term",
        "v_target = min_q_new_actions - log_pi",
    ),
    "auto_alpha: policy loss without alpha": (
        TRAINER,
        "policy_loss = (entropy_term - min_q_new_actions).mean()",
        "policy_loss = (log_pi - min_q_new_actions).mean()",
    ),
    "auto_alpha: alpha from before its step": (
        TRAINER,
        [
            (
                "            alpha_loss = -(",
                "            alpha = self.log_alpha.detach().exp()\n            alpha_loss = -(",
            ),
            (
                "            alpha = self.log_alpha.detach().exp()\n            entropy_term",
                "            entropy_term",
            ),
        ],
    ),
    "auto_alpha: alpha loss with the target entropy's sign flipped": (
        TRAINER,
        "(log_pi + self.target_entropy).detach()",
        "(log_pi - self.target_entropy).detach()",
    ),
    "auto_alpha: default target entropy +|A|": (
        TRAINER,
        "-float(action_dim) if target_entropy is None",
        "float(action_dim) if target_entropy is None",
    ),
    "auto_alpha: log alpha stepped at the policy's learning rate": (
        TRAINER,
        "adam([self.log_alpha], lr=alpha_lr)",
        "adam([self.log_alpha], lr=policy_lr)",
    ),
    "policy mean regulariser weight 1e-2": (
        TRAINER,
        "policy_mean_reg_weight: float = 1e-3",
        "policy_mean_reg_weight: float = 1e-2",
    ),
    "policy log-std regulariser dropped": (
        TRAINER,
        "            + self.policy_std_reg_weight * policy_log_std.pow(2).mean()\n",
        "",
    ),
    "Polyak average the other way round": (
        TRAINER,
        "soft_update(self.vf, self.target_vf, self.soft_target_tau)",
        "soft_update(self.vf, self.target_vf, 1 - self.soft_target_tau)",
    ),
    "target V averaged before the V step": (
        TRAINER,
        "        self.vf_optimizer.step()\n        soft_update(self.vf, self.target_vf,"
        " self.soft_target_tau)\n",
        "        soft_update(self.vf, self.target_vf, self.soft_target_tau)\n"
        "        self.vf_optimizer.step()\n",
    ),
    "encoder not stepped": (
        TRAINER,
        "        self.context_optimizer.step()\n",
        "",
    ),
    "z noise scaled by the variance, not the std": (
        AGENT,
        "mean + var.sqrt() * torch.randn_like(mean)",
        "mean + var * torch.randn_like(mean)",
    ),
    "posterior mean without the variance factor": (
        AGENT,
        "post_mean = post_var * (mu * precision).sum(dim=1)",
        "post_mean = (mu * precision).sum(dim=1)",
    ),
    "KL without the log-variance term": (
        AGENT,
        "0.5 * (var + mean.pow(2) - 1.0 - torch.log(var)).sum()",
        "0.5 * (var + mean.pow(2) - 1.0).sum()",
    ),
    "deterministic z: sum instead of mean": (
        AGENT,
        "mean = params.mean(dim=1)",
        "mean = params.sum(dim=1)",
    ),
    "tanh correction epsilon 1e-5": (
        NETWORKS,
        "torch.log(1.0 - action.pow(2) + TANH_EPS)",
        "torch.log(1.0 - action.pow(2) + 1e-5)",
    ),
    "log-std clamped at [-20, 0]": (
        NETWORKS,
        "LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0",
        "LOG_STD_MIN, LOG_STD_MAX = -20.0, 0.0",
    ),
    "fused layer: ReLU mask dropped in the backward": (
        NETWORKS,
        "grad = torch.ops.aten.threshold_backward.grad_input(grad_y, y, 0, grad_input=grad_y)",
        "grad = grad_y",
    ),
    "LSTM state not carried between chunks": (
        ALGORITHM,
        "chunk, batch, state, want_stats",
        "chunk, batch, None, want_stats",
    ),
    "LSTM state not detached between chunks": (
        TRAINER,
        "else tuple(s.detach() for s in encoder_state),",
        "else tuple(encoder_state),",
    ),
    "one RL batch for all chunks": (
        ALGORITHM,
        "            batch = self.sample_rl_batch(indices)\n",
        "            batch = batch if i else self.sample_rl_batch(indices)\n",
    ),
    "soft update: target weight 1 - tau applied twice": (
        UTIL,
        "torch._foreach_mul_(target_params, 1.0 - tau)",
        "torch._foreach_mul_(target_params, (1.0 - tau) ** 2)",
    ),
}


def run_mutation(name: str, copy: Path, cases: str) -> str | None:
    """How the oracle test fails on the copy with `name` applied (None: it passes)."""
    file, *edits = MUTATIONS[name]
    edits = edits[0] if len(edits) == 1 else [tuple(edits)]
    path = copy / file
    original = mutated = path.read_text()
    for text, replacement in edits:
        if mutated.count(text) != 1:
            raise SystemExit(f"mutation {name!r}: {text!r} occurs {mutated.count(text)} times")
        mutated = mutated.replace(text, replacement)
    path.write_text(mutated)
    try:
        return oracle_test_failure(copy, cases)
    finally:
        path.write_text(original)


def oracle_test_failure(copy: Path, cases: str) -> str | None:
    """The first failing test and its first error line, or None when the test passes."""
    env = dict(os.environ, PYTHONPATH=str(copy), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-rf"]
    command += ["-k", cases] if cases else []
    result = subprocess.run(
        [*command, "tests/torch/test_update_oracle.py"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode == 0:
        return None
    lines = result.stdout.splitlines()
    test = next((line.split()[1] for line in lines if line.startswith("FAILED ")), "?")
    error = next((line[1:].strip() for line in lines if line.startswith("E ")), "?")
    return f"{test.split('::')[-1]}: {error[:110]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", default="", help="only the mutations whose name contains this")
    parser.add_argument(
        "--cases", default="", help="a pytest -k expression: only these cases of the oracle test"
    )
    args = parser.parse_args()
    names = [n for n in MUTATIONS if args.k.lower() in n.lower()]
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "repo"
        shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".venv", ".git", "output"))
        probe = "import rlkit, sys; sys.exit(not rlkit.__file__.startswith(sys.argv[1]))"
        env = dict(os.environ, PYTHONPATH=str(copy))
        if subprocess.run([sys.executable, "-c", probe, str(copy)], cwd=copy, env=env).returncode:
            raise SystemExit("the copy's rlkit is not the one imported: check PYTHONPATH")
        if oracle_test_failure(copy, args.cases) is not None:
            print("the oracle test fails on the unmodified code", file=sys.stderr)
            return 2
        missed = []
        for name in names:
            failure = run_mutation(name, copy, args.cases)
            print(f"{'MISSED' if failure is None else 'caught'}  {name}", flush=True)
            if failure is None:
                missed.append(name)
            else:
                print(f"        {failure}", flush=True)
    print(f"{len(names) - len(missed)} of {len(names)} mutations caught")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
