"""Test set-up shared by every test module.

Four virtual CPU devices are forced before JAX is imported anywhere, so that sharding tests can build a
real `data` mesh on a CPU-only machine (CI has no accelerator). Single-device tests are unaffected: jit
places computations on device 0 unless a sharding says otherwise.

Most of the suite's time is XLA compilation, and many tests (and the notebooks, which re-build the same
methods in their own kernels) compile identical programs. One persistent compilation cache, created by the
pytest process and inherited by its xdist workers and notebook kernels through the environment, compiles
each of them once per run; it is deleted when the run ends. A cache entry is only ever reused for the same
program, compiler and flags, so results do not depend on it.
"""

import os
import shutil
import tempfile

_CACHE_ENV = "JAX_COMPILATION_CACHE_DIR"
_OWN_CACHE = None if _CACHE_ENV in os.environ else tempfile.mkdtemp(prefix="landmarkjax-test-jax-cache-")
if _OWN_CACHE is not None:  # the controlling pytest process; workers inherit the variable
    os.environ[_CACHE_ENV] = _OWN_CACHE
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", False)


def pytest_unconfigure(config):
    if _OWN_CACHE is not None:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)
