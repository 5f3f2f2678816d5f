"""Test set-up shared by every test module.

Four virtual CPU devices are forced before JAX is imported anywhere, so that sharding tests can build a
real `data` mesh on a CPU-only machine (CI has no accelerator). Single-device tests are unaffected: jit
places computations on device 0 unless a sharding says otherwise.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", False)
