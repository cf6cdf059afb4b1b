"""The accelerator check behind benchmarks/gpu_check.sh: one table of engine checks and speeds.

  benchmarks/gpu_check.sh [--platform=gpu|cpu] [--methods=beta_vae,sae_batchtopk,decalign,gem]
      [--sae_dim=768] [--sae_expansion=16] [--sae_k=32] [--sae_batch=4096] [--steps=10]
      [--peak_tflops=X]

Rows (each method; tiny configs, as the engine contract tests):
  1 vs N devices  float64 params after 3 steps on 1 device and on all N, within the derived bound
                  of tests/test_engine_contract.py (skipped with one device)
  pmap==shard_map 2 steps under each parallel mode: bitwise equal params and optimiser state
  resume          4 steps straight vs 2 steps + a resumed run to 4: bitwise equal state
Then the BatchTopK SAE step at (sae_dim, sae_dim * sae_expansion, k, batch) on one device:
  sae step        steps/s with model.formulation=auto (sparse on CPU, dense on GPU), its time as a
                  multiple of the encoder matmul's. (An earlier version printed XLA's cost analysis
                  of the compiled step: on the H200 it gave 2.0 GFLOP/step where the encoder alone
                  is 77, so it was dropped.)
  sae encoder     relu((x - b_dec) W_enc + b_enc) alone: 2 B d M / time, against the device's peak
                  (TF32 tensor-core peak for float32 matmuls on NVIDIA, whose default precision
                  uses TF32; give --peak_tflops for other devices; none on CPU unless given)
  bf16 vs f32     only where the config has train.compute_dtype (issue 25 part 3); else skipped.
                  At d768 x16 B4096 bfloat16's ties overflow BatchTopK's kept-entry list at
                  every step, so the bf16 step runs the dense formulation whatever was asked
  sae formulation the other formulation than auto's (dense on CPU, sparse on GPU) in float32:
                  steps/s side by side, and the losses after the same steps within 1e-3 (a
                  sanity check; tests/test_sae_sparse.py tests their equality to a derived bound)
  beta-VAE vs torch  the beta-VAE training step (batch 64) on one device against the same model in
                  PyTorch eager on the same device (CUDA for --platform=gpu; skipped without torch,
                  or without a CUDA build of torch on a GPU machine). With --platform=cpu the
                  4 forced host devices split XLA's CPU threads, so that row understates
                  jaxdisent on a CPU; benchmarks/bench_beta_vae.py is the CPU comparison
  sae vs dict_learning  the same SAE step (the sae step row's time) against dictionary_learning
                  0.1.0's BatchTopKTrainer on the same device and batch (skipped unless torch,
                  einops and dictionary-learning are importable); benchmarks/bench_sae.py is the
                  CPU comparison with memory
Exit status 0 when every check passes, 1 when one fails, 2 on bad flags / no device.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# Dense peaks in TFLOP/s: (float32 matmuls at JAX's default precision = TF32 tensor cores, bf16)
PEAKS = {"H200": (494.7, 989.4), "H100": (494.7, 989.4), "A100": (156.0, 312.0),
         "L40S": (183.0, 362.0), "A10": (62.5, 125.0), "L4": (60.0, 121.0),
         "V100": (15.7, 125.0), "T4": (8.1, 65.0)}


def tiny_config(name, **overrides):
  """The tests' tiny configs (tests/conftest.py), rebuilt here (conftest forces CPU devices)."""
  from jaxdisent.train.config import load_config  # pylint: disable=g-import-not-at-top
  common_ = {"train.num_steps": 4, "train.log_every": 1, "train.checkpoint_every": 2,
             "train.plots_at_end": False, "train.eval_at_end": False}
  files = {
      "beta_vae": ("beta_vae_dsprites.py", {"train.batch_size": 8}),
      "sae_batchtopk": ("sae_vlm_synthetic.py", {
          "data.synthetic.dim": 16, "data.synthetic.num_shared": 6,
          "data.synthetic.num_image_only": 5, "data.synthetic.num_text_only": 5,
          "model.dict_size": 64, "model.k": 3, "model.init_batch": 256, "train.batch_size": 64,
          "loss.dead_tokens": 128, "loss.threshold_start_step": 1}),
      "decalign": ("decalign_synthetic.py", {
          "data.synthetic.widths": (6, 3, 4), "data.synthetic.lengths": (5, 7, 4),
          "data.synthetic.split_sizes": (64, 128, 128), "model.width": 8, "model.num_heads": 2,
          "loss.num_prototypes": 3, "loss.ot_iterations": 10, "train.batch_size": 16}),
      "gem": ("gem_dsprites.py", {"train.batch_size": 8, "oracle.num_images": 500,
                                  "data.pool_size": 2000, "evals.graph_recovery.num_images": 32}),
  }
  if name not in files:
    raise ValueError(f"unknown method {name!r} in --methods; use {sorted(files)}")
  path, base = files[name]
  return load_config(os.path.join(ROOT, "configs", path), {**common_, **base, **overrides})


def _float64(tree):
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  return jax.tree.map(
      lambda x: np.asarray(x, np.float64) if np.asarray(x).dtype == np.float32 else x, tree)


class Float64:
  """The method with float64 params, state and data (as tests/test_engine_contract.py)."""

  def __init__(self, method):
    import flax.linen as nn  # pylint: disable=g-import-not-at-top
    import numpy as np  # pylint: disable=g-import-not-at-top
    self._method = method
    for name, module in list(vars(method).items()):
      if isinstance(module, nn.Module) and hasattr(module, "dtype"):
        setattr(method, name, module.clone(dtype=np.float64))

  def __getattr__(self, name):
    return getattr(self._method, name)

  def init(self, rng):
    return _float64(self._method.init(rng))

  def local_batch(self, seed, step, start, size):
    return _float64(self._method.local_batch(seed, step, start, size))


def _leaves(tree):
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _bitwise(a, b):
  import numpy as np  # pylint: disable=g-import-not-at-top
  bad = sum(not np.array_equal(x, y) for x, y in zip(_leaves(a), _leaves(b), strict=True))
  return bad == 0, f"{bad} array(s) differ" if bad else "bitwise equal"


def check_devices(name, root):
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jaxdisent.methods import make_method  # pylint: disable=g-import-not-at-top
  from jaxdisent.runs import fit  # pylint: disable=g-import-not-at-top
  devices = jax.devices()
  if len(devices) < 2:
    return None, "one device: nothing to compare"
  config = tiny_config(name, **{"train.num_steps": 3, "train.checkpoint_every": 100})
  with jax.enable_x64(True):
    one = fit(config, os.path.join(root, "one"), devices=devices[:1], quiet=True,
              method=Float64(make_method(config)))
    many = fit(config, os.path.join(root, "many"), devices=devices, quiet=True,
               method=Float64(make_method(config)))
  lr = float(config.optimizer.learning_rate) or 1e-3
  tol = 3 * (lr / float(config.optimizer.get("eps", 1e-8))) * 1e-10
  worst = 0.0
  for x, y in zip(_leaves(one.state.params), _leaves(many.state.params), strict=True):
    scale = max(float(np.max(np.abs(x))), 1.0) if x.size else 1.0
    worst = max(worst, float(np.max(np.abs(x - y))) / scale if x.size else 0.0)
  return worst <= tol, f"{len(devices)} devices: max |diff|/scale {worst:.1e} <= bound {tol:.1e}"


def check_pmap(name, root):
  from jaxdisent.runs import fit  # pylint: disable=g-import-not-at-top
  config = tiny_config(name, **{"train.num_steps": 2, "train.checkpoint_every": 100})
  sharded = fit(config, os.path.join(root, "s"), quiet=True)
  config.train.parallel = "pmap"
  pmapped = fit(config, os.path.join(root, "p"), quiet=True)
  return _bitwise((sharded.state.params, sharded.state.opt_state),
                  (pmapped.state.params, pmapped.state.opt_state))


def check_resume(name, root):
  from jaxdisent.runs import fit  # pylint: disable=g-import-not-at-top
  straight = fit(tiny_config(name), os.path.join(root, "straight"), quiet=True)
  fit(tiny_config(name, **{"train.num_steps": 2}), os.path.join(root, "resumed"), quiet=True)
  resumed = fit(tiny_config(name), os.path.join(root, "resumed"), quiet=True)
  if resumed.resumed_from != 2:
    return False, f"resumed from {resumed.resumed_from}, expected 2"
  return _bitwise(straight.state, resumed.state)


def _peak(kind: str, given: float | None):
  if given:
    return given, given
  for key, peaks in PEAKS.items():
    if key.lower() in kind.lower():
      return peaks
  return None, None


def _timed(fn, steps):
  import jax  # pylint: disable=g-import-not-at-top
  jax.block_until_ready(fn())
  jax.block_until_ready(fn())
  start = time.perf_counter()
  for _ in range(steps):
    out = fn()
  jax.block_until_ready(out)
  return (time.perf_counter() - start) / steps


def sae_speed(dim, expansion, k, batch, steps, dtype_override=None, formulation=None):
  """(seconds per step, the formulation it ran, seconds of the encoder alone, encoder flops, loss)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jaxdisent.methods import make_method  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.config import load_config  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.parallel import DataParallel  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.state import TrainState  # pylint: disable=g-import-not-at-top
  overrides = {"data.synthetic.dim": dim, "model.dict_size": dim * expansion, "model.k": k,
               "train.batch_size": batch, "model.init_batch": 1024,
               "loss.threshold_start_step": 0}
  if dtype_override:
    overrides["train.compute_dtype"] = dtype_override
  if formulation:
    overrides["model.formulation"] = formulation
  config = load_config(os.path.join(ROOT, "configs", "sae_vlm_synthetic.py"), overrides)
  method = make_method(config)
  parallel = DataParallel(method, method.optimizer(), 0, devices=jax.devices()[:1])
  params, model_state = method.init(jax.random.key(0))
  holder = [parallel.place_state(TrainState.create(params, method.optimizer().init(params),
                                                   model_state))]
  x = np.random.default_rng(0).normal(size=(batch, dim)).astype(np.float32)
  x /= np.linalg.norm(x, axis=1, keepdims=True)
  placed = parallel.place_batch({"x": x, "index": np.arange(batch, dtype=np.int32)})
  losses = []

  def one_step():
    holder[0], metrics = parallel.step(holder[0], placed)
    losses.append(metrics["loss"])
    return metrics["loss"]

  step_s = _timed(one_step, steps)
  m = dim * expansion
  w = jax.device_put(jax.random.normal(jax.random.key(0), (dim, m)) / jnp.sqrt(dim),
                     jax.devices()[0])
  b_enc, b_dec = jnp.zeros((m,)), jnp.zeros((dim,))
  xj = jax.device_put(jnp.asarray(x), jax.devices()[0])
  encode = jax.jit(lambda x, w, b_enc, b_dec: jax.nn.relu((x - b_dec) @ w + b_enc))
  encoder_s = _timed(lambda: encode(xj, w, b_enc, b_dec), steps)
  return step_s, method.formulation, encoder_s, 2.0 * batch * dim * m, float(losses[-1])


def main(argv) -> int:
  flags = {"platform": "gpu", "methods": "beta_vae,sae_batchtopk,decalign,gem", "sae_dim": "768",
           "sae_expansion": "16", "sae_k": "32", "sae_batch": "4096", "steps": "10",
           "peak_tflops": ""}
  for arg in argv:
    if arg in ("-h", "--help"):
      print(__doc__)
      return 0
    key, _, value = arg.lstrip("-").partition("=")
    if key not in flags or not value:
      print(f"[jaxdisent] error: unknown or empty flag {arg!r}; see --help", file=sys.stderr)
      return 2
    flags[key] = value
  try:
    ints = {k: int(flags[k]) for k in ("sae_dim", "sae_expansion", "sae_k", "sae_batch", "steps")}
    peak_given = float(flags["peak_tflops"]) if flags["peak_tflops"] else None
  except ValueError as error:
    print(f"[jaxdisent] error: a numeric flag is not a number ({error})", file=sys.stderr)
    return 2
  import jaxdisent  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  # ^ first: its XLA options (jaxdisent/xla_flags.py) only apply before JAX starts a backend
  import jax  # pylint: disable=g-import-not-at-top
  from absl import logging  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.WARNING)
  want = "gpu" if flags["platform"] == "gpu" else "cpu"
  try:
    devices = jax.devices()
  except Exception as error:  # pylint: disable=broad-except  (JAX raises RuntimeError or AssertionError)
    print(f"[jaxdisent] error: no {want} backend ({type(error).__name__}: "
          f"{' '.join(str(error).split())[:200]}); install "
          "jax[cuda12] or run with --platform=cpu", file=sys.stderr)
    return 2
  if devices[0].platform != want:
    print(f"[jaxdisent] error: asked for --platform={flags['platform']} but JAX runs on "
          f"{devices[0].platform}; install jax[cuda12] for GPUs or pass --platform=cpu",
          file=sys.stderr)
    return 2
  kind = devices[0].device_kind
  print(f"[gpu_check] {len(devices)} x {kind} ({devices[0].platform}), jax {jax.__version__}, "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}", flush=True)
  rows = []

  def run(check, method, fn, *args):
    start = time.perf_counter()
    try:
      ok, detail = fn(*args)
    except Exception as error:  # pylint: disable=broad-except
      ok, detail = False, f"{type(error).__name__}: {' '.join(str(error).split())[:160]}"
      traceback.print_exc(file=sys.stderr)
    status = "skip" if ok is None else ("PASS" if ok else "FAIL")
    rows.append((check, method, status, detail, time.perf_counter() - start))
    print(f"[gpu_check] {check:<16} {method:<14} {status:<4} {detail}", flush=True)

  with tempfile.TemporaryDirectory(prefix="gpu_check_") as root:
    for name in [m for m in flags["methods"].split(",") if m]:
      try:
        tiny_config(name)
      except ValueError as error:
        print(f"[jaxdisent] error: {error}", file=sys.stderr)
        return 2
      run("1 vs N devices", name, check_devices, name, os.path.join(root, name, "devices"))
      run("pmap==shard_map", name, check_pmap, name, os.path.join(root, name, "pmap"))
      run("resume", name, check_resume, name, os.path.join(root, name, "resume"))

  d, e, k, b, steps = (ints["sae_dim"], ints["sae_expansion"], ints["sae_k"], ints["sae_batch"],
                       ints["steps"])
  peak32, peak16 = _peak(kind, peak_given)
  speed = {}

  def sae_rows():
    step_s, formulation, enc_s, enc_flops, loss = sae_speed(d, e, k, b, steps)
    speed["f32"] = (step_s, loss)
    speed["formulation"] = formulation
    enc_tf = enc_flops / enc_s / 1e12
    of_peak = f", {100 * enc_tf / peak32:.0f}% of {peak32:g} peak" if peak32 else ", peak unknown"
    rows.append(("sae encoder", f"d{d} x{e} B{b}", "info",
                 f"{enc_tf:.2f} TFLOP/s{of_peak} ({1e3 * enc_s:.2f} ms)", 0.0))
    print(f"[gpu_check] {'sae encoder':<16} {'':<14} info {rows[-1][3]}", flush=True)
    return True, (f"{1 / step_s:.2f} steps/s ({1e3 * step_s:.2f} ms, {step_s / enc_s:.1f}x the "
                  f"encoder matmul), model.formulation=auto ran {formulation}, k {k}")

  run("sae step", f"d{d} x{e} B{b}", sae_rows)

  def bf16_row():
    from jaxdisent.train.config import load_config  # pylint: disable=g-import-not-at-top
    base = load_config(os.path.join(ROOT, "configs", "sae_vlm_synthetic.py"), {})
    if "compute_dtype" not in base.train:
      return None, "train.compute_dtype is not in this build (issue 25 part 3)"
    if "f32" not in speed:
      return False, "the f32 SAE step failed"
    step_s, _, _, _, loss = sae_speed(d, e, k, b, steps, dtype_override="bfloat16")
    f32_s, f32_loss = speed["f32"]
    return bool(abs(loss - f32_loss) <= 0.05 * abs(f32_loss)), (
        f"bf16 {1 / step_s:.2f} vs f32 {1 / f32_s:.2f} steps/s ({f32_s / step_s:.2f}x); loss after "
        f"{steps + 2} steps {loss:.4g} vs {f32_loss:.4g} (bound: 5% relative)")

  run("bf16 vs f32", "sae_batchtopk", bf16_row)

  def formulation_row():
    # the formulation auto did not pick (jaxdisent.methods.sae.resolve_formulation), in f32,
    # beside the f32 row above. The loss bound is a sanity check on the benchmark's own numbers;
    # tests/test_sae_sparse.py holds the formulations' equality to a derived bound.
    if "f32" not in speed:
      return False, "the f32 SAE step failed"
    chosen = speed["formulation"]
    other = "dense" if chosen == "sparse" else "sparse"
    step_s, _, _, _, loss = sae_speed(d, e, k, b, steps, formulation=other)
    f32_s, f32_loss = speed["f32"]
    return bool(abs(loss - f32_loss) <= 1e-3 * abs(f32_loss)), (
        f"auto ({chosen}) {1 / f32_s:.2f} vs {other} {1 / step_s:.2f} steps/s "
        f"(auto / {other}: {step_s / f32_s:.2f}x); loss {f32_loss:.6g} vs {loss:.6g} (bound: 1e-3 relative)")

  run("sae formulation", f"d{d} x{e} B{b}", formulation_row)

  def beta_vae_vs_torch():
    try:
      import torch  # pylint: disable=g-import-not-at-top
    except ImportError:
      return None, "torch is not installed (pip install -e '.[bench]', or a CUDA build on GPUs)"
    device = "cuda" if want == "gpu" else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
      return None, f"torch {torch.__version__} has no CUDA device here; install a CUDA build"
    import numpy as np  # pylint: disable=g-import-not-at-top
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    from bench_beta_vae import jax_step, torch_step  # pylint: disable=g-import-not-at-top
    from jaxdisent.data import DSprites  # pylint: disable=g-import-not-at-top
    _, images = DSprites().sample(jax.random.key(0), 64)
    images = np.asarray(images, dtype=np.float32)
    ours, theirs = jax_step(images, True), torch_step(images, device=device)
    best = {"jaxdisent": float("inf"), "torch": float("inf")}
    for _ in range(3):   # alternating rounds, best of each
      for name, step in (("jaxdisent", ours), ("torch", theirs)):
        start = time.perf_counter()
        for _ in range(steps):
          step()
        best[name] = min(best[name], (time.perf_counter() - start) / steps)
    return True, (f"{1 / best['jaxdisent']:.1f} vs {1 / best['torch']:.1f} steps/s = "
                  f"{best['torch'] / best['jaxdisent']:.2f}x PyTorch {torch.__version__} eager "
                  f"on {device}")

  run("beta-VAE vs torch", "beta_vae", beta_vae_vs_torch)

  def sae_vs_dictionary_learning():
    import importlib.util  # pylint: disable=g-import-not-at-top
    missing = [name for name in ("torch", "einops", "dictionary_learning")
               if importlib.util.find_spec(name) is None]
    if missing:
      return None, (f"{', '.join(missing)} not installed (pip install --no-deps "
                    "dictionary-learning==0.1.0 einops, and torch)")
    import torch  # pylint: disable=g-import-not-at-top
    device = "cuda" if want == "gpu" else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
      return None, f"torch {torch.__version__} has no CUDA device here; install a CUDA build"
    if "f32" not in speed:
      return False, "the f32 SAE step failed"
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    from bench_sae import batch as unit_rows, dictionary_learning_trainer  # pylint: disable=g-import-not-at-top
    theirs = dictionary_learning_trainer(unit_rows(d, b), d, d * e, k, steps, device=device)
    ours = 1.0 / speed["f32"][0]
    return True, (f"{ours:.2f} vs {theirs:.2f} steps/s = {ours / theirs:.2f}x dictionary_learning "
                  f"BatchTopKTrainer (torch {torch.__version__}) on {device}")

  run("sae vs dict_learning", f"d{d} x{e} B{b}", sae_vs_dictionary_learning)

  width = max(len(r[3]) for r in rows)
  print("\n| check | method | result | detail | s |\n|---|---|---|---|---|")
  for check, method, status, detail, seconds in rows:
    print(f"| {check} | {method} | {status} | {detail:<{width}} | {seconds:.1f} |")
  failed = [r for r in rows if r[2] == "FAIL"]
  print(f"\n[gpu_check] {'all checks passed' if not failed else f'{len(failed)} check(s) FAILED'}"
        f" on {len(devices)} x {kind}")
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
