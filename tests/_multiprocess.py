"""Running a worker script as several JAX processes on localhost, joined by `jax.distributed`.

Each worker gets 2 virtual CPU devices and gloo CPU collectives. The script's text is appended to a
prelude that joins the run and leaves the script's own command-line arguments in `args`; the tests
folder is on its `sys.path`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import portpicker

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))

PRELUDE = """\
import os, sys
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
os.environ["JAX_PLATFORMS"] = "cpu"
from landmarkjax.training.distributed import maybe_initialize_distributed

port, process_id, num_processes, tests_dir, *args = sys.argv[1:]
sys.path.insert(0, tests_dir)
maybe_initialize_distributed(
    True,
    coordinator_address=f"127.0.0.1:{port}",
    num_processes=int(num_processes),
    process_id=int(process_id),
)
"""


def run_processes(
    script_path: str | os.PathLike[str],
    script: str,
    args: list[str],
    *,
    num_processes: int = 2,
    timeout: float = 120,
    extra_env: dict[int, dict[str, str]] | None = None,
) -> list[tuple[int, str]]:
    """Runs `script` as `num_processes` processes of one JAX run; returns each one's (exit code, log).

    Args:
      script_path: where to write the worker script.
      script: the worker's code, run after the prelude.
      args: command-line arguments for every worker (`args` in the script).
      timeout: seconds for all of them together; then every one still running is killed (exit code
        -9) and its log so far returned.
      extra_env: environment variables to add, by process index.
    """
    with open(script_path, "w") as file:
        file.write(PRELUDE + script)
    port = portpicker.pick_unused_port()
    base_env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
    processes = [
        subprocess.Popen(
            [sys.executable, str(script_path), str(port), str(i), str(num_processes), TESTS_DIR, *args],
            env={**base_env, **(extra_env or {}).get(i, {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(num_processes)
    ]
    deadline = time.monotonic() + timeout
    results = []
    for process in processes:
        try:
            log, _ = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            log, _ = process.communicate()
        results.append((process.returncode, log))
    return results
