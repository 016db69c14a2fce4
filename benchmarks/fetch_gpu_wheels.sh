#!/usr/bin/env bash
# Wheels that the project needs and the lent GPU machines lack (they have Python 3.12 with a
# CUDA torch, numpy, matplotlib, joblib, pytest, ... but no registry access): downloaded here
# into .whl/ (git-ignored through .git/info/exclude), carried there by the device tool
# (`carry: [".whl"]`) and installed by benchmarks/gpu_check.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >>.git/info/exclude
PY=${PY:-.venv/bin/python}
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 --platform any -d .whl \
    mujoco==3.3.0 gymnasium==1.4.0 farama-notifications==0.0.6 glfw==2.11.0 pyopengl==3.1.10
ls -la .whl
