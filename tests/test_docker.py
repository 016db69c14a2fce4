"""The Docker image's recipe agrees with the project: the torch it pins is the Makefile's, the
extras it installs exist, its pip installs use both, and the build context leaves out what
must not go in. (Building the image needs a Docker engine and downloads: docker/check.sh,
outside the suite.)"""

import re
import shlex

import tomllib
from conftest import ROOT


def build_arg(name: str) -> str:
    (value,) = re.findall(rf"^ARG {name}=(.*)$", (ROOT / "docker/Dockerfile").read_text(), re.M)
    return value.strip('"')


def pip_installs() -> list[list[str]]:
    """The arguments after `pip install` of every such command in the Dockerfile's RUN lines
    (continued lines joined, commands split at &&)."""
    text = (ROOT / "docker/Dockerfile").read_text().replace("\\\n", " ")
    runs = re.findall(r"^RUN (.*)$", text, re.M)
    commands = [shlex.split(command) for run in runs for command in run.split("&&")]
    return [words[2:] for words in commands if words[:2] == ["pip", "install"]]


def test_the_image_pins_the_torch_make_installs():
    (pin,) = re.findall(r"^TORCH_VERSION \?= (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert build_arg("TORCH_VERSION") == pin


def test_the_image_installs_extras_the_project_has():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    installed = set(build_arg("EXTRAS").split(","))
    assert installed <= set(project["optional-dependencies"])
    assert {"sweep", "test"} <= installed


def test_the_pip_installs_take_the_build_arguments():
    words = [word for arguments in pip_installs() for word in arguments]
    # torch once, at the TORCH_VERSION build argument (the pin checked above)
    assert [w for w in words if w.startswith("torch")] == ["torch==${TORCH_VERSION}"]
    # the project, editable, with the EXTRAS build argument's extras
    (at,) = [i for i, w in enumerate(words) if w.startswith(".")]
    assert words[at - 1 : at + 1] == ["-e", ".[${EXTRAS}]"]


def test_the_build_context_leaves_out_runs_the_venv_and_history():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "output", ".git"} <= set(ignored)


def test_the_base_is_named_by_an_exact_tag():
    """A patch-level tag (not `latest` or `3.11`): a rebuild gets the same Python."""
    base = build_arg("BASE_IMAGE")
    assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+[\w.-]*", base), base
