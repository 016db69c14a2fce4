"""The hopper/walker2d models of the random-physics families against the reference's model files.

Our `HopperRandParamsEnv` / `Walker2DRandParamsEnv` (rand_param_envs/, via `load_rand_param_model`)
compile gymnasium's local-coordinate hopper.xml / walker2d.xml and set the timestep and the
integrator in code. The reference (katerakelly/oyster, through the package
dennisl88/rand_param_envs) loaded its own global-coordinate files with mujoco-py 0.5 (MuJoCo 1.31).
The numbers below are the facts of those reference files, typed in, so that a change of
gymnasium's files (or of our code) that alters the physics fails here, by body/geom/joint name.

Sources
-------
Repository dennisl88/rand_param_envs, commit 4d1529d61ca0d65ed4bd9207b108d4a4662a4da0 (its
newest; both XML files last changed in c662ac8ccc819eeb18d3288dad3b7d7fe12b33b4 "increase env
step", timestep 0.002 -> 0.004):
  rand_param_envs/gym/envs/mujoco/assets/hopper.xml
    (sha256 0f838d0e9432bc396e74bff2ed844347df159ee1d113c5cbccf2d2b76002e923)
  rand_param_envs/gym/envs/mujoco/assets/walker2d.xml
    (sha256 01eecf4b82ea48caefe31369971ca9759496b274a3163e27c0c414a96bfcc4f7)
  rand_param_envs/base.py, hopper_rand_params.py, walker2d_rand_params.py (frame skip, see below)

Compiled values come from MuJoCo 2.3.1 (PyPI wheel mujoco==2.3.1.post1, mj_versionString()
"2.3.1", the 2.3.x that still reads `<compiler coordinate="global">`), Python 3.11:
`MjModel.from_xml_string(xml)`, `MjData(model)` (qpos = qpos0), `mj_forward`, then the arrays
printed at full precision and typed in here rounded to 12 significant digits.

One edit was needed: both files give the foot bodies `pos="0.13/2 0 0.1"` (hopper) and
`pos="0.2/2 0 0.1"` (walker2d, both feet), which MuJoCo 2.3.1 rejects ("problem reading attribute
'pos'"). MuJoCo 2.2.0 (mujoco==2.2.0, Python 3.10) loads the unmodified files and reads these
attributes as (0.13, 0, 0) / (0.2, 0, 0): it stops at the "/" and leaves y and z at 0. The 2.3.1
compile used exactly that text ("0.13 0 0", "0.2 0 0"), and every number below was also
compared with 2.2.0 compiling the unmodified files: identical to the last bit. (Whether MuJoCo 1.31
parsed the attribute the same way could not be run here. It only moves the foot body's frame
origin, its xpos: in global coordinates the foot's joint and geom positions, and its inertia
computed from the geom, are independent of it; gymnasium's conversion has the same frame,
foot xpos (0.13, 0, 0) / (0.2, 0, 0).)

Extraction script (essence), run with the MuJoCo 2.3.1 venv:

    xml = open("hopper.xml").read().replace("0.13/2 0 0.1", "0.13 0 0")
    #   walker2d.xml: .replace("0.2/2 0 0.1", "0.2 0 0"); with 2.2.0: no replace
    m = mujoco.MjModel.from_xml_string(xml); d = mujoco.MjData(m); mujoco.mj_forward(m, d)
    for i in range(m.nbody): print(m.body(i).name, m.body_mass[i], m.body_inertia[i], d.xpos[i])
    for i in range(m.ngeom): print(m.geom(i).name, m.geom_size[i], d.geom_xpos[i],
                                   m.geom_friction[i])
    for j in range(m.njnt): print(m.joint(j).name, m.jnt_limited[j], m.jnt_range[j],
                                  m.dof_damping[m.jnt_dofadr[j]], m.dof_armature[m.jnt_dofadr[j]])
    for a in range(m.nu): print(m.joint(m.actuator_trnid[a, 0]).name, m.actuator_gear[a],
                                m.actuator_ctrllimited[a], m.actuator_ctrlrange[a])
    print(m.opt.timestep, m.opt.integrator, m.qpos0)

What is tested is the base model as the envs build it, before any task: the registered
families (rlkit/envs/rand_param.py) then apply task 0 through `set_task`. `set_task` with the
original parameters (which also runs mj_setConst) leaves every fact unchanged; that is tested
too.
"""

import mujoco
import numpy as np
import pytest

from rand_param_envs import HopperRandParamsEnv, Walker2DRandParamsEnv

# Typed values have 12 significant digits (relative rounding <= 5e-13).
RTOL = 1e-9
ATOL = 1e-12

ENV_CLASSES = {"hopper": HopperRandParamsEnv, "walker2d": Walker2DRandParamsEnv}

# Options. Source: the `<option integrator="RK4" timestep="0.004"/>` attributes of both XML files
# (same values in the 2.3.1 compile: opt.timestep 0.004, opt.integrator mjINT_RK4), and qpos0
# from the 2.3.1 compile (rootz has ref="1.25").
# Frame skip: rand_param_envs/base.py `RandomEnv.__init__` calls `MujocoEnv.__init__(self,
# file_name, 4)` for both envs; Walker2DRandParamsEnv passes 5, but it lands in `*args` and is
# ignored, so the reference's walker also steps 4 times per action (dt 0.016).
OPTIONS = {
    "hopper": {
        "timestep": 0.004,
        "integrator": "mjINT_RK4",
        "frame_skip": 4,
        "qpos0": (0.0, 1.25, 0.0, 0.0, 0.0, 0.0),
    },
    "walker2d": {
        "timestep": 0.004,
        "integrator": "mjINT_RK4",
        "frame_skip": 4,
        "qpos0": (0.0, 1.25, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    },
}

# Bodies: name -> (body_mass, body_inertia (principal diagonal), xpos at qpos0 after mj_forward).
# Source: MuJoCo 2.3.1 compile of the files (see the module docstring); masses and inertias
# come from the geoms (inertiafromgeom="true", density 1000).
BODIES = {
    "hopper": {
        "world": (0.0, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
        "torso": (
            3.66519142919,
            (0.0692459380729, 0.0692459380729, 0.00445058959259),
            (0.0, 0.0, 1.25),
        ),
        "thigh": (
            4.05789051089,
            (0.0932987568269, 0.0932987568269, 0.00494146344471),
            (0.0, 0.0, 1.05),
        ),
        "leg": (
            2.78135669598,
            (0.0723025401732, 0.0723025401732, 0.00218219214509),
            (0.0, 0.0, 0.35),
        ),
        "foot": (5.31557476987, (0.10352308059, 0.10352308059, 0.00924231425945), (0.13, 0.0, 0.0)),
    },
    "walker2d": {
        "world": (0.0, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
        "torso": (
            3.66519142919,
            (0.0692459380729, 0.0692459380729, 0.00445058959259),
            (0.0, 0.0, 1.25),
        ),
        "thigh": (
            4.05789051089,
            (0.0932987568269, 0.0932987568269, 0.00494146344471),
            (0.0, 0.0, 1.05),
        ),
        "leg": (
            2.78135669598,
            (0.0723025401732, 0.0723025401732, 0.00218219214509),
            (0.0, 0.0, 0.35),
        ),
        "foot": (
            3.16672539482,
            (0.0239977466348, 0.0239977466348, 0.00537438538435),
            (0.2, 0.0, 0.0),
        ),
        "thigh_left": (
            4.05789051089,
            (0.0932987568269, 0.0932987568269, 0.00494146344471),
            (0.0, 0.0, 1.05),
        ),
        "leg_left": (
            2.78135669598,
            (0.0723025401732, 0.0723025401732, 0.00218219214509),
            (0.0, 0.0, 0.35),
        ),
        "foot_left": (
            3.16672539482,
            (0.0239977466348, 0.0239977466348, 0.00537438538435),
            (0.2, 0.0, 0.0),
        ),
    },
}

# Geoms: name -> (geom_size, geom_xpos at qpos0 after mj_forward, geom_friction).
# Source: MuJoCo 2.3.1 compile. The sizes are the compiled capsule (radius, half-length, 0) from
# the `fromto`/`size` attributes; friction is the attribute (first number) completed with the
# default (hopper: MuJoCo's 0.005, 0.0001; walker2d: the file's default ".7 .1 .1").
GEOMS = {
    "hopper": {
        "floor": ((20.0, 20.0, 0.125), (0.0, 0.0, 0.0), (1.0, 0.005, 0.0001)),
        "torso_geom": ((0.05, 0.2, 0.0), (0.0, 0.0, 1.25), (0.9, 0.005, 0.0001)),
        "thigh_geom": ((0.05, 0.225, 0.0), (0.0, 0.0, 0.825), (0.9, 0.005, 0.0001)),
        "leg_geom": ((0.04, 0.25, 0.0), (0.0, 0.0, 0.35), (0.9, 0.005, 0.0001)),
        "foot_geom": ((0.06, 0.195, 0.0), (0.065, 0.0, 0.1), (2.0, 0.005, 0.0001)),
    },
    "walker2d": {
        "floor": ((40.0, 40.0, 40.0), (0.0, 0.0, 0.0), (0.7, 0.1, 0.1)),
        "torso_geom": ((0.05, 0.2, 0.0), (0.0, 0.0, 1.25), (0.9, 0.1, 0.1)),
        "thigh_geom": ((0.05, 0.225, 0.0), (0.0, 0.0, 0.825), (0.9, 0.1, 0.1)),
        "leg_geom": ((0.04, 0.25, 0.0), (0.0, 0.0, 0.35), (0.9, 0.1, 0.1)),
        "foot_geom": ((0.06, 0.1, 0.0), (0.1, 0.0, 0.1), (0.9, 0.1, 0.1)),
        "thigh_left_geom": ((0.05, 0.225, 0.0), (0.0, 0.0, 0.825), (0.9, 0.1, 0.1)),
        "leg_left_geom": ((0.04, 0.25, 0.0), (0.0, 0.0, 0.35), (0.9, 0.1, 0.1)),
        "foot_left_geom": ((0.06, 0.1, 0.0), (0.1, 0.0, 0.1), (1.9, 0.1, 0.1)),
    },
}

# Joints: name -> (jnt_limited, jnt_range in radians, dof_damping, dof_armature) of its dof.
# Source: MuJoCo 2.3.1 compile; the same as the attributes: ranges "-150 0" and "-45 45"
# degrees (compiler angle="degree"), the root joints' armature="0" damping="0"
# limited="false", the other joints' defaults (hopper: armature="1" damping="1"; walker2d:
# armature="0.01" damping=".1").
JOINTS = {
    "hopper": {
        "rootx": (False, (0.0, 0.0), 0.0, 0.0),
        "rootz": (False, (0.0, 0.0), 0.0, 0.0),
        "rooty": (False, (0.0, 0.0), 0.0, 0.0),
        "thigh_joint": (True, (-2.61799387799, 0.0), 1.0, 1.0),
        "leg_joint": (True, (-2.61799387799, 0.0), 1.0, 1.0),
        "foot_joint": (True, (-0.785398163397, 0.785398163397), 1.0, 1.0),
    },
    "walker2d": {
        "rootx": (False, (0.0, 0.0), 0.0, 0.0),
        "rootz": (False, (0.0, 0.0), 0.0, 0.0),
        "rooty": (False, (0.0, 0.0), 0.0, 0.0),
        "thigh_joint": (True, (-2.61799387799, 0.0), 0.1, 0.01),
        "leg_joint": (True, (-2.61799387799, 0.0), 0.1, 0.01),
        "foot_joint": (True, (-0.785398163397, 0.785398163397), 0.1, 0.01),
        "thigh_left_joint": (True, (-2.61799387799, 0.0), 0.1, 0.01),
        "leg_left_joint": (True, (-2.61799387799, 0.0), 0.1, 0.01),
        "foot_left_joint": (True, (-0.785398163397, 0.785398163397), 0.1, 0.01),
    },
}

# Actuators (unnamed motors, in action order): (joint, actuator_gear[0], actuator_ctrllimited,
# actuator_ctrlrange); the other five gear numbers are 0. Source: MuJoCo 2.3.1 compile; the same
# as the `<motor ctrllimited="true" ctrlrange="-1.0 1.0" gear=...>` attributes (hopper
# gear="200.0", walker2d gear="100").
ACTUATORS = {
    "hopper": [
        ("thigh_joint", 200.0, True, (-1.0, 1.0)),
        ("leg_joint", 200.0, True, (-1.0, 1.0)),
        ("foot_joint", 200.0, True, (-1.0, 1.0)),
    ],
    "walker2d": [
        ("thigh_joint", 100.0, True, (-1.0, 1.0)),
        ("leg_joint", 100.0, True, (-1.0, 1.0)),
        ("foot_joint", 100.0, True, (-1.0, 1.0)),
        ("thigh_left_joint", 100.0, True, (-1.0, 1.0)),
        ("leg_left_joint", 100.0, True, (-1.0, 1.0)),
        ("foot_left_joint", 100.0, True, (-1.0, 1.0)),
    ],
}

MODELS = list(ENV_CLASSES)


def build(name: str, identity_task: bool):
    """The env as the family builds it, before any task; with `identity_task`, after
    `set_task` with the original parameters (array writes and mj_setConst)."""
    env = ENV_CLASSES[name]()
    if identity_task:
        env.set_task({key: value.copy() for key, value in env.init_params.items()})
    return env


@pytest.fixture(params=[False, True], ids=["untouched", "identity-task"])
def identity_task(request):
    return request.param


def names(model, objtype, count):
    return [mujoco.mj_id2name(model, objtype, i) for i in range(count)]


def check(problems: list, what: str, ours, reference) -> None:
    ours = np.asarray(ours, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if ours.shape != reference.shape or not np.allclose(ours, reference, rtol=RTOL, atol=ATOL):
        problems.append(f"{what}: ours {ours.tolist()}, reference {reference.tolist()}")


def report(name: str, problems: list) -> None:
    assert not problems, f"{name} differs from the reference model:\n" + "\n".join(problems)


def forward(model):
    """Fresh data at qpos0 (qpos = qpos0, qvel = 0) after mj_forward."""
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    return data


@pytest.mark.parametrize("name", MODELS)
def test_same_bodies_geoms_joints(name, identity_task):
    model = build(name, identity_task).model
    assert sorted(names(model, mujoco.mjtObj.mjOBJ_BODY, model.nbody)) == sorted(BODIES[name])
    assert sorted(names(model, mujoco.mjtObj.mjOBJ_GEOM, model.ngeom)) == sorted(GEOMS[name])
    assert sorted(names(model, mujoco.mjtObj.mjOBJ_JOINT, model.njnt)) == sorted(JOINTS[name])
    assert model.nu == len(ACTUATORS[name])
    assert model.nv == model.njnt  # hinges and slides only: one dof per joint


@pytest.mark.parametrize("name", MODELS)
def test_options_and_frame_skip(name, identity_task):
    env = build(name, identity_task)
    expected = OPTIONS[name]
    problems = []
    check(problems, "opt.timestep", env.model.opt.timestep, expected["timestep"])
    integrator = mujoco.mjtIntegrator(env.model.opt.integrator).name
    if integrator != expected["integrator"]:
        problems.append(f"opt.integrator: ours {integrator}, reference {expected['integrator']}")
    if env.frame_skip != expected["frame_skip"]:
        problems.append(f"frame_skip: ours {env.frame_skip}, reference {expected['frame_skip']}")
    check(problems, "dt", env.dt, expected["timestep"] * expected["frame_skip"])
    check(problems, "qpos0", env.model.qpos0, expected["qpos0"])
    check(problems, "env.init_qpos", env.init_qpos, expected["qpos0"])
    report(name, problems)


@pytest.mark.parametrize("name", MODELS)
def test_bodies(name, identity_task):
    model = build(name, identity_task).model
    data = forward(model)
    problems = []
    for body, (mass, inertia, xpos) in BODIES[name].items():
        i = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, body)
        if i < 0:
            problems.append(f"body {body!r}: missing")
            continue
        check(problems, f"body {body!r} mass", model.body_mass[i], mass)
        check(problems, f"body {body!r} inertia", model.body_inertia[i], inertia)
        check(problems, f"body {body!r} xpos", data.xpos[i], xpos)
    report(name, problems)


@pytest.mark.parametrize("name", MODELS)
def test_geoms(name, identity_task):
    model = build(name, identity_task).model
    data = forward(model)
    problems = []
    for geom, (size, xpos, friction) in GEOMS[name].items():
        i = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, geom)
        if i < 0:
            problems.append(f"geom {geom!r}: missing")
            continue
        check(problems, f"geom {geom!r} size", model.geom_size[i], size)
        check(problems, f"geom {geom!r} xpos", data.geom_xpos[i], xpos)
        check(problems, f"geom {geom!r} friction", model.geom_friction[i], friction)
    report(name, problems)


@pytest.mark.parametrize("name", MODELS)
def test_joints(name, identity_task):
    model = build(name, identity_task).model
    problems = []
    for joint, (limited, joint_range, damping, armature) in JOINTS[name].items():
        j = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, joint)
        if j < 0:
            problems.append(f"joint {joint!r}: missing")
            continue
        dof = model.jnt_dofadr[j]
        if bool(model.jnt_limited[j]) != limited:
            problems.append(f"joint {joint!r} limited: ours {bool(model.jnt_limited[j])}")
        check(problems, f"joint {joint!r} range", model.jnt_range[j], joint_range)
        check(problems, f"joint {joint!r} dof_damping", model.dof_damping[dof], damping)
        check(problems, f"joint {joint!r} dof_armature", model.dof_armature[dof], armature)
    report(name, problems)


@pytest.mark.parametrize("name", MODELS)
def test_actuators(name, identity_task):
    model = build(name, identity_task).model
    problems = []
    for a, (joint, gear, ctrllimited, ctrlrange) in enumerate(ACTUATORS[name]):
        what = f"actuator {a} (on {joint!r})"
        if a >= model.nu:
            problems.append(f"{what}: missing")
            continue
        ours_joint = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, model.actuator_trnid[a, 0])
        if model.actuator_trntype[a] != mujoco.mjtTrn.mjTRN_JOINT or ours_joint != joint:
            problems.append(f"{what}: ours drives {ours_joint!r}")
        check(problems, f"{what} gear", model.actuator_gear[a], (gear, 0, 0, 0, 0, 0))
        if bool(model.actuator_ctrllimited[a]) != ctrllimited:
            problems.append(f"{what} ctrllimited: ours {bool(model.actuator_ctrllimited[a])}")
        check(problems, f"{what} ctrlrange", model.actuator_ctrlrange[a], ctrlrange)
    report(name, problems)
