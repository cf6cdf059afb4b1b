"""Cells that differ only in seed, trained as one vmapped program (jaxdisent/train/model_axis.py).

What is guaranteed, and so what each test asserts:

* how='map' (lax.map over the cells inside the one compiled step; the default on CPU) runs each
  cell's step as the loop body of one program on the same shapes as the cell alone: bitwise equal
  (measured for the SAE on 4 CPU devices; asserted, so a compiler change that breaks it is
  noticed). Not for the beta-VAE: XLA:CPU compiles its convolutions differently inside the loop
  body (float32 rounding), so the VAE is compared in float64 as below.
* how='vmap': a vmapped cell runs the same operations as the cell alone, but XLA compiles a batched program:
  matmuls gain a batch dimension and may sum in another order, and a ``lax.cond`` whose predicate
  differs between cells runs both branches and selects. So float32 results agree to rounding, not
  bitwise (measured: up to ~3e-8 after 4 steps of the tiny SAE), and Adam turns a rounding-level
  gradient entry into a +-lr step, so no float32 bound holds. As in tests/test_engine_contract.py
  the comparison runs in float64, with the bound derived there: a float64 reduction of n <= 2^20
  terms has relative error <= ~1e-10; Adam moves a parameter by at most lr / eps per unit of
  gradient change, so after T steps |p_group - p_alone| <= T * (lr / eps) * 1e-10 * scale, while
  a wrong cell slice, seed or batch moves it by ~lr per step and the losses by far more than
  float64 rounding (checked at rtol 1e-8).
* Resuming a group runs the same program on the same shapes: bitwise equal to the straight group.
* A cell's checkpoint is the cell's slice written by the ordinary Checkpointer: restore_latest
  returns it bitwise and launch.evaluate scores it as a single run.
"""

import os
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxdisent.methods import make_method
from jaxdisent.runs import fit
from jaxdisent.train import lock
from jaxdisent.train.lock import WorkdirBusyError
from jaxdisent.train.logging import read_metrics
from jaxdisent.runs import fit_group
from jaxdisent.train.model_axis import group_key

from conftest import TINY_CONFIGS, tiny_sae_config
from test_engine_contract import Float64, _tolerance, assert_bitwise, leaves

NO_END = {"train.eval_at_end": False, "train.plots_at_end": False}


def _losses(workdir):
  return [m["loss"] for m in read_metrics(os.path.join(workdir, "metrics.jsonl")) if "loss" in m]


@pytest.mark.slow
@pytest.mark.xla_default_emitters   # bitwise across two program forms (tests/conftest.py)
def test_map_group_is_bitwise_each_cell_alone(tmp_path):
  configs = [tiny_sae_config(**{"seed": s, "train.num_steps": 3, **NO_END}) for s in (0, 2)]
  group = fit_group([(c, str(tmp_path / f"g{c.seed}")) for c in configs], quiet=True, how="map")
  for config, g in zip(configs, group):
    alone = fit(config, str(tmp_path / f"a{config.seed}"), quiet=True)
    assert g.step == alone.step == 3
    assert_bitwise(g.state, alone.state)
    assert (_losses(str(tmp_path / f"g{config.seed}")) ==
            _losses(str(tmp_path / f"a{config.seed}")))
  assert _losses(str(tmp_path / "g0")) != _losses(str(tmp_path / "g2"))  # the seeds reached them


def _group_equals_each_cell_alone_float64(root, name, hows):
  """The float64 group-vs-alone check (module docstring) for each of ``hows`` (comma-separated),
  against one set of cells trained alone; run in-process or in a fresh one."""
  configs = [TINY_CONFIGS[name](**{"seed": s, "train.num_steps": 3, "train.checkpoint_every": 100,
                                   **NO_END}) for s in (0, 3)]
  with jax.enable_x64(True):
    alone = [fit(c, os.path.join(root, f"a{c.seed}"), quiet=True, method=Float64(make_method(c)))
             for c in configs]
  tol = _tolerance(configs[0], 3)
  for how in hows.split(","):
    with jax.enable_x64(True):
      group = fit_group([(c, os.path.join(root, how, f"g{c.seed}")) for c in configs], quiet=True,
                        methods=[Float64(make_method(c)) for c in configs], how=how)
    assert jax.tree.leaves(group[0].state.params)[0].dtype == np.float64, how
    for config, g, a in zip(configs, group, alone):
      assert g.step == a.step == 3, how
      for x, y in zip(leaves(g.state), leaves(a.state), strict=True):
        scale = max(float(np.max(np.abs(x))), 1.0) if x.size else 1.0
        np.testing.assert_allclose(x, y, rtol=0, atol=tol * scale, err_msg=how)
      lg = _losses(os.path.join(root, how, f"g{config.seed}"))
      la = _losses(os.path.join(root, f"a{config.seed}"))
      assert len(lg) == 3 and np.all(np.isfinite(lg)), how
      np.testing.assert_allclose(lg, la, rtol=1e-8, err_msg=how)
    # the seeds reached their cells: different inits, batches and so losses
    assert not np.allclose(_losses(os.path.join(root, how, "g0")),
                           _losses(os.path.join(root, how, "g3")), rtol=1e-3), how


@pytest.mark.parametrize("name,hows", [("sae_batchtopk", "vmap"),
                                       pytest.param("beta_vae", "map,vmap", marks=pytest.mark.slow)])
def test_group_equals_each_cell_alone_float64(tmp_path, name, hows):
  if name == "sae_batchtopk":
    _group_equals_each_cell_alone_float64(str(tmp_path), name, hows)
    return
  # The float64 beta-VAE group programs compile in a fresh interpreter: in the full suite, the
  # xdist worker that reached them after ~400 tests died inside XLA:CPU while compiling them (the
  # process had reached vm.max_map_count; conftest's _release_compiled_programs now prevents it).
  # A fresh process keeps these large programs' mappings out of the worker, and a crash would be
  # this test's failure (faulthandler's stack in the message), not the loss of the worker. Both
  # group forms run in one process against one pair of cells trained alone (two processes that
  # each trained the same cells alone cost 33.5 s of the suite).
  here = os.path.dirname(os.path.abspath(__file__))
  code = ("import sys; sys.path.insert(0, sys.argv[1]); import test_model_axis as t; "
          "t._group_equals_each_cell_alone_float64(sys.argv[2], sys.argv[3], sys.argv[4])")
  done = subprocess.run([sys.executable, "-X", "faulthandler", "-c", code, here, str(tmp_path),
                         name, hows], capture_output=True, text=True, timeout=1800,
                        cwd=os.path.dirname(here))
  assert done.returncode == 0, done.stderr[-6000:]


@pytest.mark.slow
def test_group_resume_and_preemption_are_bitwise_exact(tmp_path):
  def cells(root, **over):
    return [(tiny_sae_config(**{"seed": s, **NO_END, **over}), str(tmp_path / root / f"s{s}"))
            for s in (0, 1)]

  straight = fit_group(cells("straight"), quiet=True)
  fit_group(cells("resumed", **{"train.num_steps": 2}), quiet=True)     # checkpoints at step 2
  # one cell further along (trained alone to step 4): the group resumes from the step all have
  fit(*cells("resumed")[1], quiet=True)
  pre = fit_group(cells("resumed"), quiet=True,
                  step_callback=lambda s: s == 3 and os.kill(os.getpid(), signal.SIGTERM))
  assert [r.preempted for r in pre] == [True, True]
  assert [r.resumed_from for r in pre] == [2, 2] and pre[0].step == 3
  resumed = fit_group(cells("resumed"), quiet=True)
  assert [r.resumed_from for r in resumed] == [3, 3] and resumed[0].step == 4
  for a, b in zip(straight, resumed):
    assert_bitwise(a.state, b.state)
  for s in (0, 1):
    untimed = lambda rows: [{k: v for k, v in m.items() if not k.endswith("/seconds")}
                            for m in rows]
    a = untimed(read_metrics(str(tmp_path / "straight" / f"s{s}" / "metrics.jsonl")))
    b = untimed(read_metrics(str(tmp_path / "resumed" / f"s{s}" / "metrics.jsonl")))
    assert [m["step"] for m in a if "loss" in m] == [1, 2, 3, 4]
    assert a == b


@pytest.mark.slow
def test_cell_reads_as_a_single_run(tmp_path):
  from jaxdisent.evals import read_record
  from jaxdisent.runs import restore_latest
  from jaxdisent.runs import evaluate_workdir
  configs = [tiny_sae_config(seed=s) for s in (0, 1)]
  group = fit_group([(c, str(tmp_path / f"s{c.seed}")) for c in configs], quiet=True)
  cell = str(tmp_path / "s1")
  config, _, state, step = restore_latest(cell)
  assert step == 4 and int(config.seed) == 1
  assert_bitwise(state, group[1].state)
  at_end = read_record(cell, 4)["evals"]["dictionary"]   # the group's end-of-run evaluation
  again = evaluate_workdir(cell, log=lambda *a: None)["dictionary"]
  for key in ("r2", "l0", "fvu"):
    assert np.isfinite(again[key])
    np.testing.assert_allclose(again[key], at_end[key], rtol=1e-6)
  # a plain launch.train-style fit on the cell resumes it (nothing left to train)
  assert fit(configs[1], cell, quiet=True).resumed_from == 4


def test_group_refuses_bad_cells(tmp_path):
  a = tiny_sae_config(seed=0)
  with pytest.raises(ValueError, match="differ only in 'seed'"):
    fit_group([(a, str(tmp_path / "a")), (tiny_sae_config(seed=1, **{"model.k": 2}),
                                           str(tmp_path / "b"))], quiet=True)
  with pytest.raises(ValueError, match="repeat a seed"):
    fit_group([(a, str(tmp_path / "a")), (tiny_sae_config(seed=0), str(tmp_path / "b"))],
              quiet=True)
  with pytest.raises(ValueError, match="model_axis"):
    fit_group([(a, str(tmp_path / "a")), (tiny_sae_config(seed=1), str(tmp_path / "b"))],
              quiet=True, how="pmap")
  with pytest.raises(ValueError, match="outside"):
    fit_group([(a, str(tmp_path / "a")), (tiny_sae_config(seed=2 ** 31), str(tmp_path / "b"))],
              quiet=True)
  assert group_key(a) == group_key(tiny_sae_config(seed=5))
  assert group_key(a) != group_key(tiny_sae_config(**{"optimizer.learning_rate": 1e-3}))
  # another process holds one cell: the group is refused before anything is written
  busy = tmp_path / "busy"
  busy.mkdir()
  holder = subprocess.Popen(
      [sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], "
       "os.O_RDWR | os.O_CREAT); fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); "
       "time.sleep(120)", str(busy / ".lock")], stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(WorkdirBusyError):
      fit_group([(a, str(tmp_path / "free")), (tiny_sae_config(seed=1), str(busy))], quiet=True)
  finally:
    holder.kill()
    holder.wait()
  assert not (tmp_path / "free" / "config.json").exists()
  assert not lock.held(str(tmp_path / "free"))


@pytest.mark.slow
def test_sweep_vmap_cells_groups_by_config_minus_seed(tmp_path, capsys):
  from launch import sweep
  root = str(tmp_path / "sweep")
  code = sweep.main([f"--config={os.path.join(os.path.dirname(__file__), '..', 'configs', 'sae_vlm_synthetic.py')}",
                     f"--workdir={root}", "--grid=model.k=2,3", "--seeds=0,1",
                     "--vmap_cells=true", "--config.data.synthetic.dim=16",
                     "--config.model.dict_size=32", "--config.model.init_batch=128",
                     "--config.train.batch_size=32", "--config.train.num_steps=2",
                     "--config.train.checkpoint_every=100", "--config.train.plots_at_end=false",
                     "--config.evals.dictionary.num_pairs=64",
                     "--config.evals.dictionary.plots=false"])
  err = capsys.readouterr().err
  assert code == 0, err
  assert "vmapped group of 2: k=2_seed0, k=2_seed1" in err
  assert "vmapped group of 2: k=3_seed0, k=3_seed1" in err
  import json
  with open(os.path.join(root, "summary.json")) as f:
    rows = json.load(f)["rows"]
  assert [r["run"] for r in rows] == ["k=2_seed0", "k=2_seed1", "k=3_seed0", "k=3_seed1"]
  assert all(r["step"] == 2 and np.isfinite(r["eval/dictionary/r2"]) for r in rows)
  # re-running resumes (finished cells are not regrouped); a lone seed trains alone, with a note
  code = sweep.main([f"--config={os.path.join(os.path.dirname(__file__), '..', 'configs', 'sae_vlm_synthetic.py')}",
                     f"--workdir={root}", "--grid=model.k=2,3", "--seeds=0,1,2",
                     "--vmap_cells=true", "--config.data.synthetic.dim=16",
                     "--config.model.dict_size=32", "--config.model.init_batch=128",
                     "--config.train.batch_size=32", "--config.train.num_steps=2",
                     "--config.train.checkpoint_every=100", "--config.train.plots_at_end=false",
                     "--config.evals.dictionary.num_pairs=64",
                     "--config.evals.dictionary.plots=false"])
  err = capsys.readouterr().err
  assert code == 0, err
  assert "note: k=2_seed2 shares its config with no other seed; it trains alone" in err
  assert sweep.main(["--config=x.py", "--workdir=y", "--vmap_cells=maybe"]) == 2
  assert sweep.main(["--config=x.py", "--workdir=y", "--vmap_cells=true", "--model_axis=pmap"]) == 2
  assert "--model_axis=pmap: use auto, map or vmap" in capsys.readouterr().err


class _NaNData:
  """A method whose batches are NaN: the loss of its cell (only) becomes NaN."""

  def __init__(self, method):
    self._method = method

  def __getattr__(self, name):
    return getattr(self._method, name)

  def local_batch(self, seed, step, start, size):
    batch = dict(self._method.local_batch(seed, step, start, size))
    batch["x"] = np.full(np.shape(batch["x"]), np.nan, np.float32)
    return batch


@pytest.mark.slow
def test_nonfinite_cell_is_named_and_no_checkpoint_of_it_is_written(tmp_path):
  from jaxdisent.train.loop import NonFiniteLossError
  configs = [tiny_sae_config(**{"seed": s, **NO_END}) for s in (0, 1)]
  methods = [make_method(configs[0]), _NaNData(make_method(configs[1]))]
  with pytest.raises(NonFiniteLossError, match=r"\('s1', 0\)"):
    fit_group([(c, str(tmp_path / f"s{c.seed}")) for c in configs], quiet=True, methods=methods)
  for s in (0, 1):   # stopped at the first log (step 1), before the step-2 checkpoint
    assert not os.path.isdir(tmp_path / f"s{s}" / "checkpoints" / "2")
