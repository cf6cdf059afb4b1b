"""Tests run on CPU with 4 forced host devices so sharding paths are exercised."""

import os
import tempfile

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# One persistent compilation cache for this process, the other xdist worker and (read-only) every
# subprocess a test launches (they inherit these variables). Every compilation is cached: the
# tests build many small programs (init, evaluators, plots, data) that are the same from test to
# test, and a fresh process pays ~8-10 s to recompile them; cached, ~1 s.
os.environ["JAX_COMPILATION_CACHE_DIR"] = os.environ.get(
    "JAXDISENT_TEST_CACHE", os.path.join(tempfile.gettempdir(), "jaxdisent-test-jit-cache-atomic"))
# JAX writes a cache entry in place (jax/_src/lru_cache.py, LRUCache.put: write_bytes on the final
# name), so a process that reads the same key meanwhile gets a truncated executable: in five full
# runs an xdist worker died with a segfault while deserialising, compiling or running one. So the
# test processes write entries atomically (the patch below: a temporary name, then os.replace),
# and the subprocesses tests launch, which do not load this file, only read: they inherit a minimum
# compile time no program reaches. (JAX's own lock, on with a cache size limit, timed out under
# load and turned into warnings on the subprocesses' stderr.)
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "1e9"
# LLVM at -O0 (XLA's backend optimisation level 0): about a third less compile time for these tiny
# programs, which compile for far longer than they run. Every equality the tests assert is
# between runs compiled with the same flags (subprocesses inherit XLA_FLAGS), and
# tests/test_cli.py runs the README's commands with XLA's default flags. Set XLA_FLAGS with another
# level to test at that level.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] += " --xla_backend_optimization_level=0"

import pytest  # noqa: E402

import jax  # noqa: E402
from absl import logging  # noqa: E402

logging.set_verbosity(logging.WARNING)
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)   # this process writes


def _atomic_put(self, key, value):
  """LRUCache.put without eviction, written under a temporary name and renamed into place."""
  from jax._src import lru_cache  # pylint: disable=g-import-not-at-top
  if not key:
    raise ValueError("key cannot be empty")
  path = self.path / f"{key}{lru_cache._CACHE_SUFFIX}"  # pylint: disable=protected-access
  if path.exists():
    return
  temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
  temporary.write_bytes(value)
  os.replace(temporary, path)


def _patch_cache_writes():
  from jax._src import lru_cache  # pylint: disable=g-import-not-at-top
  lru_cache.LRUCache.put = _atomic_put


_patch_cache_writes()

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_vae_config(**overrides):
  """The quick-start config shrunk for tests (batch 8, a few steps, frequent logs)."""
  from jaxdisent.train.config import load_config
  # No end-of-run plots (Method.finalize) unless a test asks: tests/test_cli.py and
  # tests/test_multihost.py check them; drawing them in every other test only costs time.
  base = {"train.batch_size": 8, "train.num_steps": 4, "train.log_every": 1,
          "train.checkpoint_every": 2, "train.plots_at_end": False}
  base.update(overrides)
  return load_config(os.path.join(ROOT, "configs", "beta_vae_dsprites.py"), base)


@pytest.fixture
def vae_config():
  return tiny_vae_config


def tiny_sae_config(**overrides):
  """The synthetic-embedding SAE config shrunk for tests."""
  from jaxdisent.train.config import load_config
  base = {"data.synthetic.dim": 16, "data.synthetic.num_shared": 6,
          "data.synthetic.num_image_only": 5, "data.synthetic.num_text_only": 5,
          "model.dict_size": 64, "model.k": 3, "model.init_batch": 256, "train.batch_size": 64,
          "train.num_steps": 4, "train.log_every": 1, "train.checkpoint_every": 2,
          "loss.dead_tokens": 128, "loss.threshold_start_step": 1}
  base.update(overrides)
  return load_config(os.path.join(ROOT, "configs", "sae_vlm_synthetic.py"), base)


def tiny_decalign_config(path="decalign_synthetic.py", **overrides):
  """The synthetic DecAlign config shrunk for tests."""
  from jaxdisent.train.config import load_config
  base = {"data.synthetic.widths": (6, 3, 4), "data.synthetic.lengths": (5, 7, 4),
          "data.synthetic.split_sizes": (64, 128, 128), "model.width": 8, "model.num_heads": 2,
          "loss.num_prototypes": 3, "loss.ot_iterations": 10, "train.batch_size": 16,
          "train.num_steps": 4, "train.log_every": 1, "train.checkpoint_every": 2}
  base.update(overrides)
  return load_config(os.path.join(ROOT, "configs", path), base)


def tiny_gem_config(**overrides):
  """The correlated-dSprites GEM config shrunk for tests."""
  from jaxdisent.train.config import load_config
  base = {"train.batch_size": 8, "train.num_steps": 4, "train.log_every": 1,
          "train.checkpoint_every": 2, "oracle.num_images": 500, "data.pool_size": 2000,
          "evals.graph_recovery.num_images": 32}
  base.update(overrides)
  return load_config(os.path.join(ROOT, "configs", "gem_dsprites.py"), base)


# Every method the engine trains, as a tiny config: the engine contract suite runs over all of them.
TINY_CONFIGS = {
    "beta_vae": lambda **o: tiny_vae_config(**o),
    "beta_tcvae": lambda **o: tiny_vae_config(**{"loss.objective": "beta_tcvae", **o}),
    "annealed_vae": lambda **o: tiny_vae_config(**{"loss.objective": "annealed_vae", **o}),
    "sae_batchtopk": lambda **o: tiny_sae_config(**o),
    "sae_topk": lambda **o: tiny_sae_config(**{"model.kind": "topk", **o}),
    "sae_jumprelu": lambda **o: tiny_sae_config(**{"model.kind": "jumprelu", **o}),
    "decalign": lambda **o: tiny_decalign_config(**o),
    "gem": lambda **o: tiny_gem_config(**o),
}

