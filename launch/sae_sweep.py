"""SAE sweeps: the R^2-vs-L0 frontier of BatchTopK / TopK / ReLU / JumpReLU and stability vs energy.

  python -m launch.sae_sweep --config=configs/sae_vlm_synthetic.py --root=runs/sae_sweep \
      [--kinds=batchtopk,topk,relu,jumprelu] [--ks=2,4,8] [--l1=0.1,0.03,0.01] \
      [--l0=0.03,0.01,0.003] [--seeds=0,1] [--config.train.num_steps=...]

Each point trains through the shared engine in ROOT/<kind>_<knob>_seed<s> (re-running resumes or
skips finished runs). The sparsity knob is k for BatchTopK/TopK, the L1 coefficient for ReLU and
the L0 coefficient for JumpReLU. Writes ROOT/frontier.json, ROOT/frontier.png and, from the
BatchTopK runs of the first two seeds at the middle k, ROOT/stability_vs_energy.png.
"""

from __future__ import annotations

import json
import os
import sys

from launch.common import UsageError, apply_overrides, fail, parse_args


def _floats(text):
  return [float(v) for v in text.split(",") if v]


def main(argv) -> int:
  try:
    overrides, flags = parse_args(argv, {"config": None, "root": None,
                                         "kinds": "batchtopk,topk,relu,jumprelu", "ks": "2,4,8",
                                         "l1": "0.1,0.03,0.01", "l0": "0.03,0.01,0.003",
                                         "seeds": "0,1"})
    if not flags["config"] or not flags["root"]:
      raise UsageError("--config=FILE and --root=DIR are required")
    kinds = flags["kinds"].split(",")
    seeds = [int(s) for s in flags["seeds"].split(",")]
    knobs = {"batchtopk": ("model.k", [int(k) for k in flags["ks"].split(",")]),
             "topk": ("model.k", [int(k) for k in flags["ks"].split(",")]),
             "relu": ("loss.l1_coeff", _floats(flags["l1"])),
             "jumprelu": ("loss.jumprelu_l0_coeff", _floats(flags["l0"]))}
    unknown = [k for k in kinds if k not in knobs]
    if unknown:
      raise UsageError(f"unknown SAE kind(s) {unknown}; use {sorted(knobs)}")
  except (UsageError, ValueError) as error:
    return fail(str(error))
  from absl import logging  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.config import load_config  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.loop import fit  # pylint: disable=g-import-not-at-top
  from jaxdisent.metrics import dictionary as D  # pylint: disable=g-import-not-at-top
  from jaxdisent.viz import sae_plots  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.WARNING)

  root = flags["root"]
  os.makedirs(root, exist_ok=True)
  points, states = [], {}
  for kind in kinds:
    key, values = knobs[kind]
    for value in values:
      for seed in (seeds if kind == "batchtopk" else seeds[:1]):
        config = load_config(flags["config"])
        apply_overrides(config, overrides + [("model.kind", kind), (key, str(value)),
                                             ("seed", str(seed))])
        name = f"{kind}_{key.split('.')[-1]}={value}_seed{seed}"
        print(f"[sae_sweep] {name}", file=sys.stderr, flush=True)
        result = fit(config, os.path.join(root, name), quiet=True)
        report = result.method.evaluate(result.state, num_pairs=int(config.eval.num_pairs))
        points.append({"kind": kind, "knob": key, "value": value, "seed": seed,
                       "l0": report["l0"], "r2": report["r2"], "fvu": report["fvu"],
                       "dead_fraction": report["dead_fraction"],
                       "concept_recovery": report.get("concept_recovery")})
        states[(kind, value, seed)] = result
  with open(os.path.join(root, "frontier.json"), "w") as f:
    json.dump(points, f, indent=2)
  sae_plots.frontier(points, os.path.join(root, "frontier.png"))
  ks = knobs["batchtopk"][1]
  middle = ks[len(ks) // 2]
  if "batchtopk" in kinds and len(seeds) >= 2:
    a, b = states[("batchtopk", middle, seeds[0])], states[("batchtopk", middle, seeds[1])]
    match = D.stability(np.asarray(a.state.params["W_dec"]), np.asarray(b.state.params["W_dec"]))
    data = a.method.data
    if hasattr(data, "pairs"):
      import jax  # pylint: disable=g-import-not-at-top
      image, text, _, _ = data.pairs(jax.random.key(99), 4096)
      x = np.concatenate([np.asarray(image), np.asarray(text)])
    else:
      x = np.asarray(data.batch(99, 0, 0, 8192)["x"])
    codes = np.asarray(a.method.encode(a.state.params, a.state.model_state, x))
    sae_plots.stability_vs_energy(D.energy(codes), match["per_atom"],
                                  os.path.join(root, "stability_vs_energy.png"),
                                  title=f"BatchTopK k={middle}: seed {seeds[0]} vs {seeds[1]}, "
                                        f"mean matched cosine {match['mean_matched_cosine']:.3f}")
  print(json.dumps(points, indent=1))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
