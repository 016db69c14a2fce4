"""Multi-task environment families and the registry that maps config names to them.

Every family is a gymnasium Env with `tasks`, `get_all_task_idx()` and `reset_task(idx)`
(the protocol: rlkit.envs.protocol.TaskFamily); its constructor takes the config's
`env_params` as keyword arguments. A config's env_name is a name registered here, a
`"package.module:Name"` outside the package, or a name an installed package registers in the
entry-point group ENTRY_POINT_GROUP (`family_constructor`).
"""

import importlib
import os
import sys
from collections.abc import Callable
from importlib.metadata import entry_points

import gymnasium as gym

ENVS: dict[str, Callable[..., gym.Env]] = {}

# Task lists come from a local numpy.random.RandomState(TASK_SEED), never from the global
# generator, so that every process builds the same tasks whatever the run's seed. The reference
# seeded numpy's global generator with 1337 for the point robots and cheetah-vel: the same calls
# in the same order on RandomState(1337) give exactly its tasks. Families it left unseeded use
# the same fixed seed.
TASK_SEED = 1337


def register_env(name: str):
    """Class decorator adding an env family to `ENVS` under `name`."""

    def register(env_class):
        if name in ENVS:
            raise ValueError(f"env {name!r} is registered twice")
        ENVS[name] = env_class
        return env_class

    return register


ENTRY_POINT_GROUP = "pearl_rlkit.task_families"


class FamilyNotFound(Exception):
    """env_name names no family that can be built; the message is one line."""


def error_line(err: BaseException) -> str:
    """An exception as Python prints its last line: `Type: message`."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[-1]}" if text else type(err).__name__


def _import_module(module: str):
    """Import `module` as `python -m` would from the working folder (whose modules come
    first, after the script's own folder)."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(1, cwd)
    return importlib.import_module(module)


def _from_module(name: str) -> Callable[..., gym.Env]:
    module_name, _, attribute = name.partition(":")
    if not module_name or not attribute:
        raise FamilyNotFound(f"'{name}' is not of the form package.module:Name")
    try:
        module = _import_module(module_name)
    except Exception as err:  # the module's own error, whatever it is
        raise FamilyNotFound(f"cannot import module '{module_name}' ({error_line(err)})") from None
    target = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise FamilyNotFound(f"module '{module_name}' defines no '{attribute}'")
        target = getattr(target, part)
    if not callable(target):
        raise FamilyNotFound(
            f"'{name}' is an object of type {type(target).__name__}, not a class or a factory"
        )
    return target


def _from_entry_point(name: str) -> Callable[..., gym.Env] | None:
    found = entry_points(group=ENTRY_POINT_GROUP, name=name)
    if not found:
        return None
    entry = next(iter(found))
    try:
        target = entry.load()
    except Exception as err:
        raise FamilyNotFound(
            f"the entry point '{name}' ({entry.value}) does not load ({error_line(err)})"
        ) from None
    if not callable(target):
        raise FamilyNotFound(f"the entry point '{name}' ({entry.value}) is not callable")
    return target


def is_builtin(name: str) -> bool:
    return name in ENVS


def family_constructor(name: str) -> Callable[..., gym.Env]:
    """The class or factory that env_name `name` stands for: a built-in family, a
    `package.module:Name`, or an entry point of ENTRY_POINT_GROUP; FamilyNotFound otherwise."""
    if name in ENVS:
        return ENVS[name]
    if ":" in name:
        return _from_module(name)
    target = _from_entry_point(name)
    if target is None:
        known = ", ".join(
            sorted(ENVS) + sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
        )
        raise FamilyNotFound(f"unknown env '{name}' (known: {known}; or give package.module:Name)")
    return target


def import_root(name: str) -> str | None:
    """The folder a `package.module:Name` family's top package was imported from (None for
    the other names), for processes that must import it too (a sweep's trials)."""
    if ":" not in name or name in ENVS:
        return None
    family_constructor(name)  # imports it (FamilyNotFound when it cannot)
    top = sys.modules.get(name.partition(":")[0].split(".")[0])
    location = getattr(top, "__file__", None) or next(iter(getattr(top, "__path__", [])), None)
    if location is None:
        return None
    path = os.path.abspath(location)
    if os.path.basename(path) == "__init__.py":
        path = os.path.dirname(path)
    return os.path.dirname(path)


# Importing the modules fills the registry.
from rlkit.envs import (  # noqa: E402, F401
    ant,
    half_cheetah,
    humanoid_dir,
    metaworld_envs,
    point_robot,
    rand_param,
)
