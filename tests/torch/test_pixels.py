"""The pixel trunk in the update: the Q losses and the KL train it, V's and the policy's losses
do not reach it, it is stepped, its target copy follows by Polyak averaging; DrQ's shift
against padding and cropping done here, one offset per image."""

import copy

import pytest
import torch
from torch.nn import functional as F

from rlkit.launchers.config import apply_override, load_config, validate
from rlkit.launchers.launcher import build_trainer
from rlkit.torch.pearl_trainer import RLBatch
from rlkit.torch.pixels import ConvTrunk, PixelContext, conv_output_side, random_shift

TASKS, BATCH, CONTEXT, ACTION_DIM = 3, 5, 4, 2
SIZE, STACK = 16, 2


def pixel_trainer(*overrides):
    variant = load_config("configs/point-robot.json")
    for expression in [
        "pixels.enabled=true",
        f"pixels.size={SIZE}",
        f"pixels.frame_stack={STACK}",
        "pixels.conv_layers=2",
        "pixels.conv_filters=4",
        "pixels.feature_dim=6",
        "pixels.augment_pad=2",
        "net_size=8",
        "algo_params.use_next_obs_in_context=true",
        *overrides,
    ]:
        apply_override(variant, expression)
    validate(variant, "test")
    torch.manual_seed(0)
    return build_trainer(variant, 3 * STACK * SIZE * SIZE, ACTION_DIM)


def frames(*lead, generator) -> torch.Tensor:
    shape = (*lead, 3 * STACK, SIZE, SIZE)
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)


def inputs(seed: int = 1) -> tuple[PixelContext, RLBatch]:
    g = torch.Generator().manual_seed(seed)
    context = PixelContext(
        frames(TASKS, CONTEXT, generator=g),
        torch.randn(TASKS, CONTEXT, ACTION_DIM + 1, generator=g),
        frames(TASKS, CONTEXT, generator=g),
    )
    batch = RLBatch(
        obs=frames(TASKS, BATCH, generator=g),
        actions=torch.rand(TASKS, BATCH, ACTION_DIM, generator=g) * 2 - 1,
        rewards=torch.randn(TASKS, BATCH, generator=g),
        next_obs=frames(TASKS, BATCH, generator=g),
        terminals=torch.zeros(TASKS, BATCH),
    )
    return context, batch


def trunk_grads_at_its_step(trainer) -> list[torch.Tensor]:
    """Run one update; the trunk's gradients as its optimizer steps (cloned)."""
    seen = []

    def record(optimizer, _args, _kwargs):
        seen.append([p.grad.clone() for p in trainer.agent.trunk.parameters()])

    handle = trainer.trunk_optimizer.register_step_pre_hook(record)
    torch.manual_seed(2)  # the same z and shifts in every trainer
    trainer.update(*inputs())
    handle.remove()
    (grads,) = seen
    return grads


def test_the_q_losses_and_the_kl_reach_the_trunk_and_nothing_after_its_step():
    trainer = pixel_trainer()
    grads = trunk_grads_at_its_step(trainer)
    assert all(torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    # V and the policy step after the trunk: their losses must add nothing to its gradients
    after = [p.grad for p in trainer.agent.trunk.parameters()]
    for at_step, now in zip(grads, after, strict=True):
        assert torch.equal(at_step, now)
    # the KL term reaches it too: another kl_lambda, other gradients (same z, same shifts)
    other = trunk_grads_at_its_step(pixel_trainer("algo_params.kl_lambda=5"))
    assert not all(torch.equal(a, b) for a, b in zip(grads, other, strict=True))
    # and the Q losses alone do: no KL, still gradients
    q_only = trunk_grads_at_its_step(pixel_trainer("algo_params.kl_lambda=0"))
    assert sum(float(g.abs().sum()) for g in q_only) > 0


def test_the_trunk_steps_and_its_target_follows_by_polyak_averaging():
    trainer = pixel_trainer("pixels.encoder_tau=0.25")
    before = copy.deepcopy(trainer.agent.trunk.state_dict())
    target_before = copy.deepcopy(trainer.target_trunk.state_dict())
    assert all(torch.equal(before[k], target_before[k]) for k in before)  # a copy at the start
    trainer.update(*inputs())
    after = trainer.agent.trunk.state_dict()
    target = trainer.target_trunk.state_dict()
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert "head.weight" in moved and "convs.0.weight" in moved
    for k in before:
        expected = 0.25 * after[k] + 0.75 * target_before[k]
        torch.testing.assert_close(target[k], expected, rtol=1e-6, atol=1e-7)


def test_the_policy_and_v_read_features_of_the_trunk():
    trainer = pixel_trainer()
    agent = trainer.agent
    width = agent.trunk.feature_dim
    assert agent.policy.fcs[0].in_features == width + 5  # features and z
    assert trainer.vf.fcs[0].in_features == width + 5
    assert trainer.qf1.fcs[0].in_features == width + ACTION_DIM + 5
    # the context rows: features of o, a, r, features of o'
    assert agent.context_encoder.fcs[0].in_features == 2 * width + ACTION_DIM + 1
    obs = inputs()[1].obs[0]
    with torch.no_grad():
        z = torch.zeros(len(obs), 5)
        acted = agent.act(obs, z, deterministic=True)
        direct, *_ = agent.policy(torch.cat([agent.trunk(obs), z], -1), deterministic=True)
    assert torch.equal(acted, direct)


def test_random_shift_is_a_replicate_pad_and_crop_per_image():
    g = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (6, 4, 3, 9, 10), dtype=torch.uint8, generator=g)
    pad = 3
    shifted = random_shift(images, pad, generator=torch.Generator().manual_seed(7))
    offsets = torch.randint(-pad, pad + 1, (24, 2), generator=torch.Generator().manual_seed(7))
    padded = F.pad(images.reshape(24, 3, 9, 10).float(), (pad,) * 4, mode="replicate")
    for i, (dy, dx) in enumerate(offsets.tolist()):
        crop = padded[i, :, pad + dy : pad + dy + 9, pad + dx : pad + dx + 10]
        assert torch.equal(shifted.reshape(24, 3, 9, 10)[i], crop.to(torch.uint8)), i
    assert torch.equal(random_shift(images, 0), images)


def test_each_image_gets_its_own_shift():
    image = torch.arange(12 * 12, dtype=torch.uint8).reshape(1, 1, 12, 12)
    many = image.expand(64, 1, 12, 12)
    shifted = random_shift(many, 2)
    distinct = {bytes(s.numpy().tobytes()) for s in shifted}
    assert len(distinct) > 10  # 25 offsets: one shift for the whole batch would give 1


@pytest.mark.parametrize("size, layers", [(16, 2), (32, 4), (64, 4), (9, 4)])
def test_the_trunk_takes_the_sizes_its_check_admits(size, layers):
    side = conv_output_side(size, layers)
    if side < 1:
        with pytest.raises(ValueError, match="too small"):
            ConvTrunk(3, size, layers, 4, 6)
        return
    trunk = ConvTrunk(3, size, layers, 4, 6)
    out = trunk(torch.zeros(2, 5, 3, size, size, dtype=torch.uint8))
    assert out.shape == (2, 5, 6) and (out.abs() < 1).all()
