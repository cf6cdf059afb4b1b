"""Tests run on CPU with 4 forced host devices so sharding paths are exercised."""

import atexit
import gc
import os
import shutil
import tempfile
import threading

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The evaluators' scikit-learn fits (SAP, DCI, explicitness) run in the test process, one after
# the other, not in a pool of loky worker processes per xdist worker (their start-up and imports,
# competing with the other xdist worker for the 2 cores). Same values either way
# (tests/test_parallel_fit.py compares them bit for bit); the tests of the parallel path ask for it:
# test_parallel_fit passes n_jobs=2, test_eval_fast_path's fast path and the README command
# (tests/test_cli.py) unset this. 42 evaluator-heavy tests (test_evaluate, gem_prior,
# gem_correlation, sae, eval_fast_path): 118 / 123 s -> 114 / 104 s.
os.environ.setdefault("JAXDISENT_SKLEARN_JOBS", "1")
# Release compiled programs at 0.6 of vm.max_map_count, not 0.25 (_release_compiled_programs below).
os.environ.setdefault("JAXDISENT_RELEASE_PROGRAMS_AT", "0.6")
# Subprocesses that tests start (the multi-process and CLI tests) compile without a persistent
# cache (JAX_ENABLE_COMPILATION_CACHE=false is inherited): they must behave like a user's fresh
# process. The test processes themselves share one cache, below.
os.environ["JAX_ENABLE_COMPILATION_CACHE"] = "false"
os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)
# LLVM at -O0 (XLA's backend optimisation level 0): about a third less compile time for these tiny
# programs, which compile for far longer than they run. Every equality the tests assert is
# between runs compiled with the same flags (subprocesses inherit XLA_FLAGS), and
# tests/test_cli.py runs the README's commands with XLA's default flags. Set XLA_FLAGS with another
# level to test at that level.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] += " --xla_backend_optimization_level=0"
# One LLVM module per program instead of XLA:CPU's default split into parallel codegen parts: the
# parts compile in parallel, but the two xdist workers already keep both cores busy, so the split
# only adds each part's pass pipeline. It changes which module a function is emitted into, not the
# code emitted. Measured on 2 cores: compiling the DecAlign, GEM, beta-VAE and SAE steps (4
# devices, fresh processes) 6.3 / 6.8 s -> 5.6 / 5.7 s; the 79 tests of test_decalign, training,
# sae, gem_prior and alignment_study 125.8 s -> 123.1 / 117.1 s.
if "xla_cpu_parallel_codegen_split_count" not in os.environ["XLA_FLAGS"]:
  os.environ["XLA_FLAGS"] += " --xla_cpu_parallel_codegen_split_count=1"

# XLA:CPU's classic loop emitters instead of its newer MLIR fusion emitters: they cut the compile
# time of these tiny programs (which compile for far longer than they run). Measured on 2 cores,
# `python -m pytest -m "not slow" tests -p no:cacheprovider`: 3 min 58 s with XLA's defaults,
# 3 min 0 s with the classic emitters, 2 min 36 s with them and --xla_cpu_use_thunk_runtime=false
# (worker CPU 7 min 0 s -> 4 min 25 s), which the suite set until jaxlib 0.10.2's XLA ignored it
# ("no longer supported", a warning in every process; removed: the two runs differed by noise or
# by an older jaxlib, not re-measured). Like the -O0 above, every equality the
# tests assert is between runs compiled the same way, and the golden values are float64 with
# derived tolerances -- with one exception: with the classic emitters a pmap program and the
# shard_map program of the same step (and a map-grouped step and the step alone) differ in the
# last bits (max relative difference 6e-7), so the tests that compare two program forms bitwise
# are marked ``xla_default_emitters`` and compile with XLA's default emitters (the compile-options
# wrapper below). JAXDISENT_TEST_XLA_DEFAULTS=1 keeps XLA's choices everywhere.
_FAST_COMPILE_FLAGS = ("--xla_cpu_use_fusion_emitters=false",)
if os.environ.get("JAXDISENT_TEST_XLA_DEFAULTS", "0") != "1":
  for _flag in _FAST_COMPILE_FLAGS:
    if _flag.split("=")[0] not in os.environ["XLA_FLAGS"]:
      os.environ["XLA_FLAGS"] += " " + _flag
# Set by the autouse fixture below while a test marked xla_default_emitters runs.
_DEFAULT_EMITTERS = [False]

import pytest  # noqa: E402

import jax  # noqa: E402
from absl import logging  # noqa: E402

logging.set_verbosity(logging.WARNING)
# The cyclic garbage collector's young generation is collected every 100,000 net allocations of
# container objects instead of Python's 700: JAX's tracing and lowering allocate millions of small
# objects, nearly all freed by reference counting, and each young collection walks what was
# allocated since the last. With _freeze_long_lived_objects below, garbage is still collected
# every test. Measured on 2 cores: tracing, lowering and compiling the DecAlign, GEM, beta-VAE
# and SAE steps in fresh processes, 4 runs each alternating, 9.24 s -> 8.36 s on average; 161
# tests (test_decalign, training, sae, gem_correlation, metric_transforms, precision,
# golden_one_step; -n 2), alternating: 179.4 / 176.6 / 170.2 / 175.8 s -> 169.4 / 168.0 /
# 172.1 / 171.8 s. Subprocesses that tests start keep Python's defaults, like a user's process.
gc.set_threshold(100_000, 50, 1000)
jax.config.update("jax_enable_compilation_cache", False)
# One compilation cache for this test run, shared by its processes (pytest, or xdist's controller
# and its workers): tests that build the same step (the engine contract's resume, layout and pmap
# comparisons train one config several times, each time through a new method object, so JAX's
# in-memory caches miss; test files on the two workers train the same tiny configs) compile it
# once, and a program one worker compiled (down to the op-by-op ones of an eager init) the other
# reads. The suite still starts cold: the first process of the run makes a fresh temporary
# directory (the workers inherit its path through the environment, as execnet starts them after
# this module is imported) and removes it at exit.
#
# The cache is JAX's file cache with _AtomicFileCache in place of its LRU store: each entry is
# renamed into place whole, so two workers never see a half-written one, with no lock and no
# eviction. JAX's own store needs a maximum size to lock its reads and writes, and with one it
# rescans the whole directory (a stat and a read per entry) on every write: the suite then stored
# only programs that took >= 0.25 s to compile, as caching all of them (~4,400 entries) made the
# scans quadratic. Without the scan every program is stored. Measured on 2 cores, 161 tests
# (test_decalign, training, sae, gem_correlation, metric_transforms, precision, golden_one_step;
# -n 2), alternating: JAX's store at 0.25 s 189.5 / 170.5 s; this store at 0.25 s 168.8 s, storing
# every program 163.0 / 162.5 s (161.2 s from 0.05 s). If a JAX release moves ``get_file_cache``,
# the suite falls back to JAX's locked store at 0.25 s (only slower).
# JAXDISENT_TEST_COMPILATION_CACHE=0 turns the cache off. An earlier loss of xdist workers inside
# XLA:CPU was the memory-map limit (_release_compiled_programs below), not the cache.


class _AtomicFileCache:
  """JAX's on-disk compilation cache without its lock: each entry is written to a temporary file
  and renamed into place (atomic on POSIX), so a reader sees a whole entry or none; nothing is
  evicted, nothing rescanned. Two processes that compile the same program both write it; the
  second rename replaces an equal entry."""

  def __init__(self, path):
    import pathlib  # pylint: disable=g-import-not-at-top
    self._path = pathlib.Path(path)
    self._path.mkdir(parents=True, exist_ok=True)

  def get(self, key):
    try:
      return (self._path / f"{key}-cache").read_bytes()
    except FileNotFoundError:
      return None

  def put(self, key, value):
    target = self._path / f"{key}-cache"
    if target.exists():
      return
    partial = self._path / f".{key}.{os.getpid()}.{threading.get_ident()}.partial"
    partial.write_bytes(value)
    os.replace(partial, target)


if os.environ.get("JAXDISENT_TEST_COMPILATION_CACHE", "1") != "0":
  _CACHE_DIR = os.environ.get("JAXDISENT_TEST_CACHE_DIR", "")
  if not _CACHE_DIR or not os.path.isdir(_CACHE_DIR):
    _CACHE_DIR = tempfile.mkdtemp(prefix="jaxdisent-test-cache-")
    os.environ["JAXDISENT_TEST_CACHE_DIR"] = _CACHE_DIR
    atexit.register(shutil.rmtree, _CACHE_DIR, ignore_errors=True)
  _MIN_COMPILE_SECS = 0.0
  try:
    from jax._src import compilation_cache as _jax_cache  # pylint: disable=g-import-not-at-top
    _jax_cache.get_file_cache  # pylint: disable=pointless-statement
    _jax_cache.get_file_cache = lambda path: (_AtomicFileCache(path), path)
    # Entries uncompressed: JAX compresses each (zlib where zstandard is not installed, as
    # here) and decompresses it on every read; the files live only for this run. Measured on 2
    # cores, the same 161 tests, alternating: 185.7 / 182.1 s compressed -> 167.9 / 170.4 s.
    # Both functions or neither: a compressed entry must never be read back raw.
    if callable(getattr(_jax_cache, "compress_executable", None)) and callable(
        getattr(_jax_cache, "decompress_executable", None)):
      _jax_cache.compress_executable = _jax_cache.decompress_executable = bytes
  except (ImportError, AttributeError):
    _MIN_COMPILE_SECS = 0.25
    try:
      import filelock  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
      jax.config.update("jax_compilation_cache_max_size", 16 << 30)   # enables the file lock
    except ImportError:   # a private cache per process then (pyproject's test extra has filelock)
      _CACHE_DIR = tempfile.mkdtemp(prefix="jaxdisent-test-cache-")
      atexit.register(shutil.rmtree, _CACHE_DIR, ignore_errors=True)
  jax.config.update("jax_enable_compilation_cache", True)
  jax.config.update("jax_compilation_cache_dir", _CACHE_DIR)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", _MIN_COMPILE_SECS)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def _adjust_compile_options():
  """Per-program compile options the flags above cannot give.

  * Programs that hold float64 2-D convolutions compile at LLVM -O1, every other at -O0 (above).
    XLA:CPU runs float32 convolutions in its precompiled kernels, so -O0 only saves compile time
    for them; float64 convolutions have no such kernel and are emitted as loops, which at -O0 run
    about 9x slower. Measured on 2 cores: the engine contract's float64 one-vs-four-devices test of
    the beta-VAE 22.9 s at -O0 vs 7.8 s at -O1, the two float64 beta-VAE model-axis tests 143 s vs
    64 s; programs without them compile longer at -O1 and gain nothing, so they stay at -O0: the
    SAE, and DecAlign, whose only convolutions are kernel-1 1-D projections of a few time steps
    (its float64 step compiled in 5.0 s at -O1 vs 2.5 s at -O0 and runs in ~10 ms either way).
    The 2-D test reads the convolution's dimension numbers in the StableHLO text
    (``[b, 0, 1, f]``: batch, two spatial dimensions, features).
  * While a test marked ``xla_default_emitters`` runs, its programs that reduce across devices
    (an ``all_reduce`` in the StableHLO: the training steps, whose two program forms these tests
    compare) compile with XLA's default fusion emitters (an env-option override of this one
    compilation). Its other programs (init, data, restore) are the same program in both runs and
    compile as in every other test, so they come from the shared caches; overriding every program
    of those tests cost ~2 s per test of compiling them anew (DecAlign's init alone 2.2 s).

  Tests compare runs compiled the same way, so no equality depends on either. JAX has no public
  per-program switch for them: this wraps the one function jit and pmap build their compile
  options with, and leaves it alone if a JAX release renames it (the suite is then only slower,
  and the marked tests fall back to the process's flags).
  """
  try:
    from jax._src import config as jax_config  # pylint: disable=g-import-not-at-top
    from jax._src.interpreters import pxla  # pylint: disable=g-import-not-at-top
    original = pxla.create_compile_options
    jax_config.enable_x64.value  # pylint: disable=pointless-statement
  except (ImportError, AttributeError):
    return
  float64_at_o1 = "xla_backend_optimization_level=0" in os.environ["XLA_FLAGS"]
  classic_emitters = "xla_cpu_use_fusion_emitters=false" in os.environ["XLA_FLAGS"]

  def create_compile_options(computation, *args, **kwargs):
    options = original(computation, *args, **kwargs)
    try:
      text = None
      if float64_at_o1 and jax_config.enable_x64.value:
        text = str(computation)
        if "[b, 0, 1, f]" in text:
          options.executable_build_options.debug_options.xla_backend_optimization_level = 1
      if classic_emitters and _DEFAULT_EMITTERS[0]:
        text = str(computation) if text is None else text
        if "all_reduce" in text:
          options.env_option_overrides = (list(options.env_option_overrides)
                                          + [("xla_cpu_use_fusion_emitters", True)])
    except Exception:  # pylint: disable=broad-except
      pass   # the optimisation is optional; never fail a compilation over it
    return options

  pxla.create_compile_options = create_compile_options


_adjust_compile_options()


def _share_mlir_contexts(lowerings_per_context=256):
  """Lower up to ``lowerings_per_context`` programs in one MLIR context instead of one each.

  JAX makes a fresh MLIR context (loading every dialect) for each program it lowers: ~7 ms, and
  this suite lowers ~8,600 programs in its own processes, most of them the one-primitive programs
  of op-by-op execution. The modules are the same in either context (a context only holds the
  dialects and the uniqued types and attributes the modules refer to), so nothing a test compares
  depends on it; a context lives on while a module of it does, and a new one is made after
  ``lowerings_per_context`` lowerings so uniqued constants do not pile up in one. Measured on 2
  cores: tests/test_metric_transforms.py 42.4 s -> 32.1 s (-n 0); the full suite back to back
  9 min 28 s / 1,086 CPU-s -> 9 min 7 s / 1,042 CPU-s, peak memory of a process 6.6 -> 4.5 GB.
  Processes that tests start keep JAX's behaviour, like a user's. If a JAX release moves
  ``make_ir_context``, this leaves it alone (the suite is only slower).
  """
  try:
    from jax._src.interpreters import mlir as jax_mlir  # pylint: disable=g-import-not-at-top
    fresh = jax_mlir.make_ir_context
  except (ImportError, AttributeError):
    return
  current = {"context": None, "uses": 0}
  lock = threading.Lock()

  def make_ir_context():
    with lock:
      if current["context"] is None or current["uses"] >= lowerings_per_context:
        current["context"], current["uses"] = fresh(), 0
      current["uses"] += 1
      return current["context"]

  jax_mlir.make_ir_context = make_ir_context


if os.environ.get("JAXDISENT_TEST_SHARED_MLIR_CONTEXT", "1") != "0":
  _share_mlir_contexts()

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
          "loss.dead_tokens": 128, "loss.threshold_start_step": 1,
          "evals.dictionary.plots": False}   # plotted in test_vlm_sae_workbench
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


def built_once_per_run(tmp_path_factory, name, build):
  """A directory ``build(path)`` fills, built once per test run and copied to each caller.

  xdist's work stealing can split a module between the two workers, and a module-scoped fixture
  then runs on both (the SAE workbench's 600-step training twice, ~20 s each). Under xdist the
  first worker to get here builds into the run's shared base directory (pytest-N, fresh per run)
  under a file lock, the other waits for it and both copy it, so tests can still write into their
  copy; without xdist (or without ``filelock``, like the compilation cache above) it builds in place.
  """
  try:
    import filelock  # pylint: disable=g-import-not-at-top
  except ImportError:
    filelock = None
  own = tmp_path_factory.mktemp(name) / "run"
  if "PYTEST_XDIST_WORKER" not in os.environ or filelock is None:
    build(str(own))
    return str(own)
  shared = tmp_path_factory.getbasetemp().parent / f"shared-{name}"
  with filelock.FileLock(str(shared) + ".lock"):
    if not (shared / "complete").exists():
      shutil.rmtree(shared, ignore_errors=True)
      build(str(shared / "run"))
      (shared / "complete").write_text("")
  shutil.copytree(shared / "run", own)
  return str(own)


@pytest.fixture
def tempdir_in_tmp_path(tmp_path, monkeypatch):
  """Python's temporary folders go under the test's tmp_path: tfds.testing.mock_data's builders
  make one each (DatasetInfo's metadata lookup) and leave it behind, 12 per run in /tmp before."""
  monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
  return tmp_path


@pytest.fixture(autouse=True)
def _xla_default_emitters(request):
  """Tests marked ``xla_default_emitters`` compile their training steps with XLA's default emitters.

  Only programs that reduce across devices are overridden (``_adjust_compile_options``): the
  steps, which are fresh closures of each run's method, so JAX's in-memory caches never hand one
  to another test, and the on-disk cache keys include the override. Every other program (the
  op-by-op ones of an eager init, data, restore) compiles with the suite's emitters in every test,
  so nothing needs clearing between marked and unmarked tests. (It did when the override covered
  every program of a marked test: the two emitters' approximations of transcendental functions
  differ in the last bit, jnp.log and jnp.tanh on 1,000 points, measured, and an op-by-op program
  compiled in a marked test once reached a bitwise resume test through a module-level cache; the
  clear at each crossing then cost every later test its cached programs.)
  """
  _DEFAULT_EMITTERS[0] = request.node.get_closest_marker("xla_default_emitters") is not None
  yield
  _DEFAULT_EMITTERS[0] = False


@pytest.fixture(autouse=True)
def _release_compiled_programs():
  """A worker runs hundreds of tests: keep it below vm.max_map_count (jaxdisent/programs.py).

  Without this an xdist worker held ~61,000 memory mappings after ~280 tests and XLA aborted
  inside the compiler at the next program (the crashes the README's test section describes).
  The threshold is 0.6 of the limit here (JAXDISENT_RELEASE_PROGRAMS_AT, set at the top of this
  file), not the library's 0.25: each release drops the programs later tests would reuse (the
  op-by-op ones above all): at 0.25 each worker released them three times in a logged full run,
  at 0.6 none (the most a worker held: 34,777 mappings).

  Reading /proc/self/maps costs ~14 ms at 20,000 mappings (~9 worker-s a run when read after
  every test), so after a check far below the threshold the next checks are skipped: the next
  (threshold - count) // _MAPS_PER_TEST tests, each assumed to add at most _MAPS_PER_TEST
  mappings (~1,000 programs). A check thus comes at most _MAPS_PER_TEST past the threshold
  (0.6 + 0.12 of the limit, below the ~0.93 where XLA aborted), and every ``fit`` checks as it ends.
  """
  yield
  # _freeze_long_lived_objects froze the heap: a release must be able to collect every program it
  # drops (unfreezing is O(1); the next test freezes again)
  gc.unfreeze()
  if _CHECKS_TO_SKIP[0] > 0:
    _CHECKS_TO_SKIP[0] -= 1
    return
  from jaxdisent import programs  # pylint: disable=g-import-not-at-top
  count = programs.map_count()
  if count is None:
    return
  threshold = programs.release_fraction() * programs.map_limit()
  if count <= threshold:
    _CHECKS_TO_SKIP[0] = int((threshold - count) // _MAPS_PER_TEST)
  else:
    programs.release_compiled_programs()


_MAPS_PER_TEST = 8000
_CHECKS_TO_SKIP = [0]


# Tests between full garbage collections (_freeze_long_lived_objects).
_COLLECT_EVERY = 100
_TESTS_SINCE_COLLECT = [0]


@pytest.fixture(autouse=True)
def _freeze_long_lived_objects():
  """Move the objects alive before each test out of the cyclic garbage collector's view.

  A worker's heap grows to 1-2 million objects (JAX's caches of traced, lowered and compiled
  programs, the imported modules), and each of Python's full collections walks all of them:
  ``gc_collect_main`` was ~4% of the suite's CPU profile. ``gc.freeze()`` moves them to the
  permanent generation, which collections skip; a test's own objects are still collected as
  usual. The cost is garbage cycles that were alive, unreachable but not yet collected when a
  test started: they stay until the next full collection, which runs every ``_COLLECT_EVERY``
  tests (``gc.unfreeze()`` then ``gc.collect()``), and before a release of compiled programs
  (_release_compiled_programs). Measured on 2 cores (engine contract, DecAlign, training, SAE,
  GEM correlation and metric-transform files, 173 tests, -n 2): 300 s and 300 s without,
  277 s and 279 s freezing with no periodic collection, 287 s collecting every 50 tests; the
  larger worker's peak memory 4.7 -> 5.1 GB. The full suite, back to back: 13 min 34 s without
  (with the other changes of that commit range too), 12 min 49 s and 12 min 34 s with.
  """
  _TESTS_SINCE_COLLECT[0] += 1
  if _TESTS_SINCE_COLLECT[0] >= _COLLECT_EVERY:
    _TESTS_SINCE_COLLECT[0] = 0
    gc.unfreeze()
    gc.collect()
  else:
    gc.collect(1)   # the young generations (the previous test's garbage), not the long-lived heap
  gc.freeze()
  yield


class Traces:
  """Names of the functions JAX traces while active (jax.monitoring's trace events)."""

  def __enter__(self):
    self.names = []
    self._listener = lambda event, duration, **kw: (
        event.endswith("jaxpr_trace_duration") and self.names.append(kw.get("fun_name")))
    jax.monitoring.register_event_duration_secs_listener(self._listener)
    # the event still exists under this name (else "nothing traced" would pass vacuously)
    jax.make_jaxpr(lambda x: x + 1)(1.0)
    assert self.names, "jax.monitoring reported no jaxpr_trace_duration event for a fresh trace"
    self.names.clear()
    return self

  def __exit__(self, *exc):
    jax.monitoring.unregister_event_duration_listener(self._listener)

