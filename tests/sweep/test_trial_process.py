"""The hook a trial's process runs between fork and exec: it sets the parent-death signal
(SIGKILL), and loads no library there (unsafe in the child of a threaded Ray worker)."""

import ctypes
import subprocess
import sys

import pytest

from rlkit.sweep import tune_runner

# prints the child's parent-death signal (prctl PR_GET_PDEATHSIG)
READ_PDEATHSIG = (
    "import ctypes; v = ctypes.c_int(); ctypes.CDLL(None).prctl(2, ctypes.byref(v)); print(v.value)"
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_the_child_dies_with_its_parent_and_loads_nothing_before_exec(monkeypatch):
    def no_library(*args, **kwargs):
        raise AssertionError("a library loaded between fork and exec")

    monkeypatch.setattr(ctypes, "CDLL", no_library)
    hook = tune_runner._DIE_WITH_PARENT
    child = subprocess.run(
        [sys.executable, "-c", READ_PDEATHSIG], preexec_fn=hook, capture_output=True, text=True
    )
    assert child.returncode == 0, child.stderr
    assert int(child.stdout) == 9  # SIGKILL
    without = subprocess.run([sys.executable, "-c", READ_PDEATHSIG], capture_output=True, text=True)
    assert int(without.stdout) == 0
