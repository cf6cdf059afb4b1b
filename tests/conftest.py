"""Tests run on CPU with 4 forced host devices so sharding paths are exercised."""

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

import tempfile  # noqa: E402

import jax  # noqa: E402
from absl import logging  # noqa: E402

logging.set_verbosity(logging.WARNING)
# Many tests compile the same train step; a persistent cache turns repeats into cache hits.
jax.config.update("jax_compilation_cache_dir",
                  os.environ.get("JAXDISENT_TEST_CACHE", os.path.join(tempfile.gettempdir(),
                                                                      "jaxdisent-test-jit-cache")))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_vae_config(**overrides):
  """The quick-start config shrunk for tests (batch 8, a few steps, frequent logs)."""
  from jaxdisent.train.config import load_config
  base = {"train.batch_size": 8, "train.num_steps": 4, "train.log_every": 1,
          "train.checkpoint_every": 2}
  base.update(overrides)
  return load_config(os.path.join(ROOT, "configs", "beta_vae_dsprites.py"), base)


@pytest.fixture
def vae_config():
  return tiny_vae_config
