"""Runs small Python programs on several MPI ranks from pytest, for the distributed tests.

A program runs under ``mpiexec -n N`` (one OpenMP thread a rank) with a time limit, so a hang fails
the test instead of stalling the run; programs assert on every rank, and an assertion on any rank
aborts the job (init_process_group's excepthook). ``needs_mpi`` skips, with the reason, where the
``mpi`` extra is not installed.
"""

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

MPIEXEC = shutil.which("mpiexec", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
needs_mpi = pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None or MPIEXEC is None,
                               reason="needs mpi4py and mpiexec: pip install '.[mpi]'")
TIME_LIMIT = 120  # seconds for one mpiexec job; a hang fails the test


def run_ranks(tmp_path, program, ranks=2, args=(), check=True, time_limit=TIME_LIMIT):
    """Runs ``program`` on ``ranks`` MPI ranks; returns the finished process (returncode, stdout,
    stderr). Past ``time_limit`` the whole job (mpiexec, its proxies, the ranks) is killed and the
    test fails."""
    script = tmp_path / "program.py"
    script.write_text(textwrap.dedent(program))
    command = [MPIEXEC, "-n", str(ranks), sys.executable, str(script), *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                           cwd=tmp_path, start_new_session=True)
    try:
        stdout, stderr = job.communicate(timeout=time_limit)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        stdout, stderr = job.communicate()
        pytest.fail(f"the {ranks}-rank job did not end within {time_limit} s:\n{stdout}\n{stderr}")
    result = subprocess.CompletedProcess(command, job.returncode, stdout, stderr)
    if check:
        assert result.returncode == 0, f"mpiexec failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result


def run_python(code):
    """Runs ``code`` in a plain Python process (no mpiexec: MPI makes a world of 1)."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=TIME_LIMIT, env={**os.environ, "OMP_NUM_THREADS": "1"})
