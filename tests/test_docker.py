"""The Docker image's recipe agrees with the project: the torch it pins is the Makefile's, the
extras it installs exist, and the build context leaves out what must not go in. (Building the
image needs a Docker engine and downloads: docker/check.sh, outside the suite.)"""

import re

import tomllib
from conftest import ROOT


def build_arg(name: str) -> str:
    (value,) = re.findall(rf"^ARG {name}=(.*)$", (ROOT / "docker/Dockerfile").read_text(), re.M)
    return value.strip('"')


def test_the_image_pins_the_torch_make_installs():
    (pin,) = re.findall(r"^TORCH_VERSION \?= (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert build_arg("TORCH_VERSION") == pin


def test_the_image_installs_extras_the_project_has():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    installed = set(build_arg("EXTRAS").split(","))
    assert installed <= set(project["optional-dependencies"])
    assert {"sweep", "test"} <= installed


def test_the_build_context_leaves_out_runs_the_venv_and_history():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "output", ".git"} <= set(ignored)


def test_the_base_is_named_by_an_exact_tag():
    """A patch-level tag (not `latest` or `3.11`): a rebuild gets the same Python."""
    base = build_arg("BASE_IMAGE")
    assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+[\w.-]*", base), base
