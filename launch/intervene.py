"""Edit a trained SAE's codes (ablate or steer features), decode, and score the change on a task.

  python -m launch.intervene --workdir=runs/sae --ablate=mds:CrossD      # or mds:ImgD, mds:TxtD
  python -m launch.intervene --workdir=runs/sae --ablate=random:16       # 16 random live features
  python -m launch.intervene --workdir=runs/sae --ablate=idx:1,2,3
  python -m launch.intervene --workdir=runs/sae --ablate=name:dog \
      --vocabulary=phrases.txt --vocabulary_embeddings=phrases.npy
  python -m launch.intervene --workdir=runs/sae --steer=12:2.0,40:-1.0 [--set=7:0.5]
      [--num_pairs=1024] [--num_random=5] [--seed=0] [--zero_shot=classes.npz] [--name=NAME]

Needs paired image/text embeddings (the synthetic data, or files trained with data.text_path /
data.text_key). On ``--num_pairs`` pairs it encodes both sides, applies the edit to the codes of
both (ablation: those features' codes := 0; steering: code_j += alpha, i.e. add alpha times atom
j; --set: code_j := value), decodes, and measures image->text and text->image retrieval recall@1/5/10
by cosine (``before`` = the unedited reconstructions, ``after`` = edited, ``random_control`` = the
mean over --num_random size-matched random sets of live features outside the edited set, with
their std), and the raw embeddings' recall for reference. ``--zero_shot=FILE.npz`` (arrays
``images`` (N, D), ``labels`` (N,) ints, ``prompts`` (C, D) class-prompt text embeddings) adds
zero-shot accuracy the same way.

Writes WORKDIR/interventions/<name>.json (name from the spec: mds_CrossD, random_16, ...) and
rewrites WORKDIR/interventions/summary.md (one row per intervention recorded there) and
deletion.png (image->text and text->image recall@1 before / after / control). MDS classes use
the run's ``evals.dictionary.mds_cutoffs`` (default -0.6 / 0.6).
"""

from __future__ import annotations

import json
import os
import re
import sys

from launch.common import UsageError, fail, force_cpu_devices, parse_args, parse_int, run_main

MDS_ALIASES = {"imgd": "image-dominant", "image-dominant": "image-dominant",
               "txtd": "text-dominant", "text-dominant": "text-dominant",
               "crossd": "cross-modal", "cross-modal": "cross-modal"}


def _pairs_spec(text: str, flag: str) -> dict:
  out = {}
  for part in (p for p in text.split(",") if p.strip()):
    index, sep, value = part.partition(":")
    try:
      if not sep:
        raise ValueError
      out[int(index)] = float(value)
    except ValueError:
      raise UsageError(f"--{flag}={text!r}: write FEATURE:VALUE[,FEATURE:VALUE...], e.g. "
                       f"--{flag}=12:2.0,40:-1") from None
  if not out:
    raise UsageError(f"--{flag} is empty: write FEATURE:VALUE[,FEATURE:VALUE...]")
  return out


def default_name(spec: str) -> str:
  return re.sub(r"[^A-Za-z0-9_.=-]+", "-", spec.replace(":", "_", 1)).strip("-")[:80] or "edit"


def _select(spec, num_features, mds_labels, live, names, seed):
  """Feature indices an --ablate spec names."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  kind, sep, arg = spec.partition(":")
  if not sep or not arg:
    raise UsageError(f"--ablate={spec!r}: use mds:CrossD|ImgD|TxtD, random:N, idx:I,J,... or "
                     "name:PHRASE")
  if kind == "mds":
    cls = MDS_ALIASES.get(arg.lower())
    if cls is None:
      raise UsageError(f"--ablate={spec!r}: the MDS classes are CrossD, ImgD, TxtD")
    chosen = np.nonzero(mds_labels == cls)[0]
  elif kind == "random":
    n = parse_int("ablate=random", arg, minimum=1)
    alive = np.nonzero(live)[0]
    if n > len(alive):
      raise ValueError(f"--ablate={spec}: only {len(alive)} features are live on these pairs")
    chosen = np.sort(np.random.default_rng(seed + 17).choice(alive, n, replace=False))
  elif kind == "idx":
    try:
      chosen = np.array(sorted({int(v) for v in arg.split(",") if v.strip()}), np.int64)
    except ValueError:
      raise UsageError(f"--ablate={spec!r}: idx takes comma-separated feature numbers") from None
    bad = [int(i) for i in chosen if not 0 <= i < num_features]
    if bad:
      raise ValueError(f"--ablate={spec}: feature(s) {bad} outside [0, {num_features})")
  elif kind == "name":
    if names is None:
      raise UsageError("--ablate=name:... needs --vocabulary=PHRASES.txt and "
                       "--vocabulary_embeddings=EMBEDDINGS.npy to name the features")
    chosen = np.array([i for i, n in enumerate(names) if live[i] and n["name"] is not None
                       and n["name"].lower() == arg.lower()], np.int64)
    if not len(chosen):
      known = sorted({n["name"] for i, n in enumerate(names) if live[i] and n["name"]})
      raise ValueError(f"--ablate={spec}: no live feature is named {arg!r}; names on this run: "
                       f"{', '.join(known[:20])}{' ...' if len(known) > 20 else ''}")
  else:
    raise UsageError(f"--ablate={spec!r}: unknown selector {kind!r}; use mds:, random:, idx: or name:")
  if not len(chosen):
    raise ValueError(f"--ablate={spec} selects no features on this run (see the dictionary "
                     "evaluator's mds_* counts)")
  return np.asarray(chosen, np.int64)


def _zero_shot_file(path, dim):
  import numpy as np  # pylint: disable=g-import-not-at-top
  if not os.path.exists(path):
    raise FileNotFoundError(f"--zero_shot file {path!r} not found")
  try:
    archive = np.load(path, allow_pickle=False)
  except (OSError, ValueError, EOFError) as error:    # not a NumPy file, truncated, a pickle
    raise ValueError(f"--zero_shot file {path!r} cannot be read as .npz ({error}); save it with "
                     "numpy.savez(path, images=..., labels=..., prompts=...)") from None
  if not hasattr(archive, "files"):
    raise ValueError(f"--zero_shot file {path!r} holds one array, not an .npz archive; save it "
                     "with numpy.savez(path, images=..., labels=..., prompts=...)")
  with archive:
    missing = [k for k in ("images", "labels", "prompts") if k not in archive]
    if missing:
      raise KeyError(f"{path} lacks array(s) {missing}; it needs images (N, D), labels (N,) and "
                     "prompts (C, D)")
    images, labels, prompts = (np.asarray(archive[k]) for k in ("images", "labels", "prompts"))
  if images.ndim != 2 or prompts.ndim != 2 or images.shape[1] != dim or prompts.shape[1] != dim:
    raise ValueError(f"{path}: images {images.shape} and prompts {prompts.shape} must be 2-D with "
                     f"the run's width {dim}")
  if labels.shape != (images.shape[0],) or labels.dtype.kind not in "iu":
    raise ValueError(f"{path}: labels must be {images.shape[0]} integers (one per image); got "
                     f"{labels.dtype} {labels.shape}")
  if labels.min() < 0 or labels.max() >= len(prompts):
    raise ValueError(f"{path}: labels must be in [0, {len(prompts)}) (one prompt per class)")
  if not (np.isfinite(images).all() and np.isfinite(prompts).all()):
    raise ValueError(f"{path}: images / prompts contain NaN or inf")
  return images.astype(np.float32), labels.astype(np.int32), prompts.astype(np.float32)


def intervene(workdir, *, ablate=None, steer=None, set_codes=None, num_pairs=1024, num_random=5,
              seed=0, zero_shot=None, vocabulary=None, vocabulary_embeddings=None, name=None,
              log=print) -> dict:
  """Run one intervention (module doc); returns the record written to interventions/<name>.json."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jaxdisent.evals.dictionary import _cutoffs, encode_batched, paired_embeddings  # pylint: disable=g-import-not-at-top
  from jaxdisent.metrics import dictionary as D  # pylint: disable=g-import-not-at-top
  from jaxdisent.metrics import interventions as I  # pylint: disable=g-import-not-at-top
  from jaxdisent.models.sae import SparseAutoencoder  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.lock import workdir_lock  # pylint: disable=g-import-not-at-top
  from jaxdisent.runs import restore_latest  # pylint: disable=g-import-not-at-top
  if (ablate is None) == (steer is None and set_codes is None):
    raise UsageError("give exactly one edit: --ablate=SPEC, or --steer=F:ALPHA,... / --set=F:VALUE")
  if num_random < 1 or num_pairs < 10:
    raise UsageError(f"--num_random={num_random} must be >= 1 and --num_pairs={num_pairs} >= 10 "
                     "(recall@10 needs 10 candidates)")
  config, method, state, step = restore_latest(workdir)
  if config.method != "sae":
    raise ValueError(f"{workdir} is a {config.method!r} run; interventions edit SAE codes")
  paired = paired_embeddings(method.data, num_pairs, 4321 + int(seed))
  if paired is None:
    raise ValueError(f"{workdir} was trained on one embedding file; interventions are scored by "
                     "image<->text retrieval and need paired files (data.text_path / data.text_key)")
  image, text = paired
  codes_img = encode_batched(method, state, image)
  codes_txt = encode_batched(method, state, text)
  num_features = codes_img.shape[1]
  params, model_state = state.params, state.model_state

  @jax.jit
  def decode_edited(codes, edit):
    edited = I.edit_codes_core(codes, *edit)
    x_hat = method.model.apply({"params": params}, edited, method=SparseAutoencoder.decode)
    return x_hat * model_state["input_scale"]

  settings = config.get("evals", {}).get("dictionary", {}) if "evals" in config else {}
  mds = D.modality_dominance(codes_img, codes_txt, cutoffs=_cutoffs(settings or {}))
  live = (codes_img > 0).any(0) | (codes_txt > 0).any(0)
  names = None
  if vocabulary:
    from jaxdisent.metrics import naming  # pylint: disable=g-import-not-at-top
    phrases, vocab = naming.load_vocabulary(vocabulary, vocabulary_embeddings or "")
    names = naming.name_atoms(np.asarray(params["W_dec"]), vocab, phrases)
  zs = _zero_shot_file(zero_shot, method.dim) if zero_shot else None
  if zs is not None:
    zs_img = encode_batched(method, state, zs[0])
    zs_prompts = encode_batched(method, state, zs[2])

  if ablate is not None:
    chosen = _select(ablate, num_features, np.asarray(mds["label"]), live, names, int(seed))
    make_edit = lambda features: I.ablation_edit(num_features, features)
    spec_key, spec = "ablate", ablate
  else:
    alphas, fixed = steer or {}, set_codes or {}
    bad = [j for j in [*alphas, *fixed] if not 0 <= j < num_features]
    if bad:
      raise ValueError(f"--steer/--set feature(s) {bad} outside [0, {num_features})")
    chosen = np.array(sorted({*alphas, *fixed}), np.int64)

    def make_edit(features):  # the same values on the given features, in order
      mapping = dict(zip(chosen.tolist(), np.asarray(features).tolist()))
      return I.steering_edit(num_features, {mapping[j]: a for j, a in alphas.items()},
                             {mapping[j]: v for j, v in fixed.items()})
    spec_key = "steer"
    spec = ",".join([f"{j}:{a:g}" for j, a in alphas.items()] +
                    [f"{j}={v:g}" for j, v in fixed.items()])

  candidates = np.setdiff1d(np.nonzero(live)[0], chosen)
  controls = I.random_feature_sets(candidates, len(chosen), int(num_random), int(seed))

  def scores(edit):
    edit = tuple(jnp.asarray(e) for e in edit)
    img_hat = decode_edited(jnp.asarray(codes_img), edit)
    txt_hat = decode_edited(jnp.asarray(codes_txt), edit)
    out = {"image_to_text": I.retrieval_recall_core(img_hat, txt_hat),
           "text_to_image": I.retrieval_recall_core(txt_hat, img_hat)}
    if zs is not None:
      out["zero_shot"] = I.zero_shot_accuracy_core(decode_edited(jnp.asarray(zs_img), edit),
                                                   decode_edited(jnp.asarray(zs_prompts), edit),
                                                   jnp.asarray(zs[1]))
    return jax.tree.map(float, out)

  before = scores(I.identity_edit(num_features))
  after = scores(make_edit(chosen))
  control = [scores(make_edit(features)) for features in controls]
  record = {spec_key: spec, "num_features": int(len(chosen)),
            "features": chosen.tolist(), "step": int(step), "num_pairs": int(len(image)),
            "num_random": int(num_random), "seed": int(seed)}
  if names is not None:
    record["feature_names"] = [names[i]["name"] for i in chosen]
  raw = {"image_to_text": I.retrieval_recall_core(image, text),
         "text_to_image": I.retrieval_recall_core(text, image)}
  for direction in ("image_to_text", "text_to_image"):
    record[direction] = {
        f"recall_at_{k}": {"before": before[direction][k], "after": after[direction][k],
                           "random_control": float(np.mean([c[direction][k] for c in control])),
                           "random_control_std": float(np.std([c[direction][k] for c in control]))}
        for k in I.KS}
  record["raw_embeddings"] = {d: {f"recall_at_{k}": float(v) for k, v in raw[d].items()}
                              for d in raw}
  if zs is not None:
    record["zero_shot_accuracy"] = {
        "before": before["zero_shot"], "after": after["zero_shot"],
        "random_control": float(np.mean([c["zero_shot"] for c in control])),
        "random_control_std": float(np.std([c["zero_shot"] for c in control])),
        "num_images": int(len(zs[0])), "num_classes": int(len(zs[2]))}
  name = name or default_name(ablate if ablate is not None else f"steer:{spec}")
  if not re.fullmatch(r"[A-Za-z0-9_.=-]+", name):
    raise UsageError(f"--name={name!r}: use letters, digits and _ . = - only")
  directory = os.path.join(workdir, "interventions")
  with workdir_lock(workdir, "writing interventions"):
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"{name}.json")
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
      json.dump(record, f, indent=1)
    os.replace(tmp, path)
    write_summary(directory)
  r = record["image_to_text"]["recall_at_1"]
  log(f"[jaxdisent] {spec_key} {record[spec_key]} ({len(chosen)} features): image->text R@1 "
      f"{r['before']:.3f} -> {r['after']:.3f} (random control {r['random_control']:.3f}); "
      f"wrote {path}")
  return record


def write_summary(directory: str) -> str:
  """summary.md (one row per interventions/*.json) and deletion.png, from the records there."""
  from jaxdisent.viz import sae_plots  # pylint: disable=g-import-not-at-top
  records = []
  for file in sorted(os.listdir(directory)):
    if file.endswith(".json"):
      with open(os.path.join(directory, file)) as f:
        records.append((file[:-5], json.load(f)))
  lines = ["| intervention | features | i->t R@1 before / after / control | i->t R@5 after / "
           "control | t->i R@1 before / after / control | zero-shot before / after / control |",
           "|---|---|---|---|---|---|"]
  for name, r in records:
    cell = lambda d, k: r[d][f"recall_at_{k}"]
    trio = lambda c: f"{c['before']:.3f} / {c['after']:.3f} / {c['random_control']:.3f}"
    zs = trio(r["zero_shot_accuracy"]) if "zero_shot_accuracy" in r else "-"
    lines.append(f"| {name} | {r['num_features']} | {trio(cell('image_to_text', 1))} | "
                 f"{cell('image_to_text', 5)['after']:.3f} / "
                 f"{cell('image_to_text', 5)['random_control']:.3f} | "
                 f"{trio(cell('text_to_image', 1))} | {zs} |")
  path = os.path.join(directory, "summary.md")
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
  sae_plots.intervention_bars(records, os.path.join(directory, "deletion.png"))
  return path


def main(argv) -> int:
  try:
    _, flags = parse_args(argv, {"workdir": None, "ablate": None, "steer": None, "set": None,
                                 "num_pairs": "1024", "num_random": "5", "seed": "0",
                                 "zero_shot": None, "vocabulary": None,
                                 "vocabulary_embeddings": None, "name": None, "devices": None})
    if not flags["workdir"]:
      raise UsageError("--workdir=DIR is required (an SAE run written by launch.train)")
    force_cpu_devices(argv)
    kwargs = dict(
        ablate=flags["ablate"],
        steer=_pairs_spec(flags["steer"], "steer") if flags["steer"] is not None else None,
        set_codes=_pairs_spec(flags["set"], "set") if flags["set"] is not None else None,
        num_pairs=parse_int("num_pairs", flags["num_pairs"], minimum=10),
        num_random=parse_int("num_random", flags["num_random"], minimum=1),
        seed=parse_int("seed", flags["seed"], minimum=0), zero_shot=flags["zero_shot"],
        vocabulary=flags["vocabulary"], vocabulary_embeddings=flags["vocabulary_embeddings"],
        name=flags["name"])
  except UsageError as error:
    return fail(str(error))
  from jaxdisent.train.checkpoint import CheckpointError  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.lock import WorkdirBusyError  # pylint: disable=g-import-not-at-top
  try:
    intervene(flags["workdir"], log=lambda *a: print(*a, file=sys.stderr), **kwargs)
  except (ValueError, KeyError, OSError, CheckpointError, WorkdirBusyError) as error:
    return fail(str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error))
  return 0


if __name__ == "__main__":
  sys.exit(run_main(main, doc=__doc__))
