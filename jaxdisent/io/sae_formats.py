"""SAEs in the formats people share them in: SAELens and EleutherAI sparsify directories.

* SAELens (v6 ``SAE.save_model`` / ``load_from_disk``): ``cfg.json`` + ``sae_weights.safetensors``
  with W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in], b_dec [d_in] and, for
  ``architecture: "jumprelu"``, threshold [d_sae]. Encoding: h = (x - b_dec) W_enc + b_enc;
  standard: relu(h); topk: the k largest of relu(h); jumprelu: relu(h) * (h > threshold).
  BatchTopK (and Matryoshka BatchTopK, whose inference is BatchTopK's) exports as JumpReLU with
  its learned inference threshold on every latent, as SAELens does for both; the nesting (group
  sizes) is recorded in ``metadata.jaxdisent`` and restored on import.
* sparsify (``SparseCoder.save_to_disk``): ``cfg.json`` (activation, k, num_latents, d_in, ...) +
  ``sae.safetensors`` with encoder.weight [num_latents, d_in], encoder.bias, W_dec
  [num_latents, d_in], b_dec. Encoding: the k largest of relu((x - b_dec) encoder.weight^T +
  encoder.bias). It has no threshold activation: TopK SAEs export exactly; a BatchTopK SAE
  exports as TopK with the same k (its per-sample L0 becomes exactly k: not the same encoding).

jaxdisent trains on x / s (s = ``model_state['input_scale']``, unit mean squared norm). Exports
fold s into the weights so the files encode raw embeddings: W_enc / s, b_enc, s W_dec, s b_dec
(codes unchanged, reconstructions in raw units); s is recorded in cfg.json
(``metadata.jaxdisent`` / ``jaxdisent``) and unfolded on import. Folding is a float32 multiply,
so jaxdisent -> files -> jaxdisent agrees to ~1 ulp; files without a jaxdisent scale (any
SAELens / sparsify SAE) import with s = 1 and re-export bitwise identical.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

import numpy as np

SAELENS_WEIGHTS = "sae_weights.safetensors"
SPARSIFY_WEIGHTS = "sae.safetensors"
CFG = "cfg.json"
FORMATS = ("saelens", "sparsify")


@dataclasses.dataclass
class PortableSAE:
  """An SAE in jaxdisent's parametrisation (inputs divided by input_scale)."""
  kind: str                  # batchtopk | matryoshka_batchtopk | topk | relu | jumprelu
  k: int                     # topk / (matryoshka_)batchtopk; 0 otherwise
  params: dict               # W_enc [d, M], b_enc [M], W_dec [M, d], b_dec [d], log_threshold [M]
  input_scale: float = 1.0
  threshold: float = -1.0    # BatchTopK's global inference threshold (< 0: none learned)
  group_sizes: tuple = ()    # matryoshka_batchtopk: the nested groups' sizes (sum = d_sae)

  @property
  def d_in(self) -> int:
    return int(self.params["W_enc"].shape[0])

  @property
  def d_sae(self) -> int:
    return int(self.params["W_enc"].shape[1])


def _f32(a):
  return np.ascontiguousarray(np.asarray(a, dtype=np.float32))


def _folded(sae: PortableSAE):
  s = np.float32(sae.input_scale)
  p = sae.params
  return {"W_enc": _f32(p["W_enc"]) / s, "b_enc": _f32(p["b_enc"]),
          "W_dec": _f32(p["W_dec"]) * s, "b_dec": _f32(p["b_dec"]) * s}


def _unfold(tensors, scale: float):
  s = np.float32(scale)
  if s == 1:
    return {name: _f32(tensors[name]) for name in ("W_enc", "b_enc", "W_dec", "b_dec")}
  return {"W_enc": _f32(tensors["W_enc"]) * s, "b_enc": _f32(tensors["b_enc"]),
          "W_dec": _f32(tensors["W_dec"]) / s, "b_dec": _f32(tensors["b_dec"]) / s}


def _meta(sae: PortableSAE) -> dict:
  meta = {"kind": sae.kind, "k": sae.k, "input_scale": float(sae.input_scale),
          "input_scale_folded_into_weights": True, "threshold": float(sae.threshold)}
  if sae.group_sizes:
    meta["group_sizes"] = [int(g) for g in sae.group_sizes]
  return meta


BATCHTOPK_KINDS = ("batchtopk", "matryoshka_batchtopk")   # encode with one global threshold


def _group_sizes(meta: dict, d_sae: int, where: str) -> tuple:
  """A Matryoshka SAE's group sizes from its jaxdisent metadata, checked against d_sae."""
  sizes = meta.get("group_sizes")
  if (not isinstance(sizes, list) or not sizes or
      any(isinstance(g, bool) or not isinstance(g, int) or g < 1 for g in sizes) or
      sum(sizes) != d_sae):
    raise ValueError(f"{where}: a matryoshka_batchtopk SAE needs metadata group_sizes, positive "
                     f"integers summing to d_sae={d_sae}; got {sizes!r}")
  return tuple(sizes)


def _check_dir(path, weights):
  if not os.path.isdir(path):
    raise FileNotFoundError(f"{path} is not a directory" + (" (it is a file)" if os.path.exists(path)
                                                          else " (it does not exist)") +
                            ": pass the SAE's directory (cfg.json + weights)")
  for name in (CFG, weights):
    if not os.path.exists(os.path.join(path, name)):
      raise FileNotFoundError(f"{path} has no {name}: not a "
                              f"{'SAELens' if weights == SAELENS_WEIGHTS else 'sparsify'} SAE "
                              "directory")


def check_out_dir(out_dir: str, overwrite: bool):
  """Refuse an ``out_dir`` that is a file, or that already holds an SAE (unless ``overwrite``)."""
  if os.path.exists(out_dir) and not os.path.isdir(out_dir):
    raise ValueError(f"the output {out_dir} is an existing file, not a directory; pass a new "
                     f"directory")
  if os.path.isdir(out_dir) and not overwrite:
    present = [name for name in (CFG, SAELENS_WEIGHTS, SPARSIFY_WEIGHTS)
               if os.path.exists(os.path.join(out_dir, name))]
    if present:
      raise ValueError(f"{out_dir} already holds {', '.join(present)}; refusing to overwrite it: "
                       f"pass a new directory, or overwrite=True (--overwrite=true)")


def _write_bundle(out_dir: str, weights: str, tensors: dict, cfg: dict,
                  overwrite: bool = False) -> str:
  """``out_dir/weights`` (safetensors) + ``out_dir/cfg.json``: the layout SAELens and sparsify share.

  Each file is written to a temporary name and renamed into place, so an interrupted export never
  leaves a half-written file under the final name; with ``overwrite`` the other format's weights
  file is removed (one directory holds one SAE)."""
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  check_out_dir(out_dir, overwrite)
  os.makedirs(out_dir, exist_ok=True)
  weights_path, cfg_path = os.path.join(out_dir, weights), os.path.join(out_dir, CFG)
  suffix = f".tmp-{os.getpid()}"
  try:
    save_file(tensors, weights_path + suffix)
    with open(cfg_path + suffix, "w") as f:
      json.dump(cfg, f, indent=2)
    os.replace(weights_path + suffix, weights_path)
    os.replace(cfg_path + suffix, cfg_path)
  finally:
    for path in (weights_path + suffix, cfg_path + suffix):
      if os.path.exists(path):
        os.remove(path)
  other = os.path.join(out_dir, SPARSIFY_WEIGHTS if weights == SAELENS_WEIGHTS else SAELENS_WEIGHTS)
  if os.path.exists(other):
    os.remove(other)
  return out_dir


def _read_bundle(path: str, weights: str) -> tuple[dict, dict]:
  """(cfg, tensors) of a directory written in that layout; every failure names the file."""
  from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
  _check_dir(path, weights)
  cfg_path, weights_path = os.path.join(path, CFG), os.path.join(path, weights)
  try:
    with open(cfg_path) as f:
      cfg = json.load(f)
  except (ValueError, UnicodeDecodeError) as error:
    raise ValueError(f"{cfg_path} is not valid JSON ({' '.join(str(error).split())}); restore it "
                     f"from the SAE's source") from None
  if not isinstance(cfg, dict):
    raise ValueError(f"{cfg_path} must hold a JSON object (key: value); got {type(cfg).__name__}")
  try:
    tensors = load_file(weights_path)
  except Exception as error:  # SafetensorError (truncated / corrupt header), dtype errors
    raise ValueError(f"{weights_path} cannot be read as safetensors ({type(error).__name__}: "
                     f"{' '.join(str(error).split())}); the file is truncated or corrupt: "
                     f"download or export it again") from None
  return cfg, tensors


def _cfg_number(cfg, key, where, *, integer=False, default=None):
  """cfg[key] as a number (or ``default`` when absent / null), else a ValueError naming it."""
  value = cfg.get(key, default)
  if value is None or value is default:
    return value
  ok = isinstance(value, (int, float)) and not isinstance(value, bool)
  if ok and integer:
    ok = float(value).is_integer()
  if not ok:
    raise ValueError(f"{where}: {key}={value!r} must be {'an integer' if integer else 'a number'}")
  return int(value) if integer else float(value)


def _check_scale(scale, where):
  if not (isinstance(scale, (int, float)) and not isinstance(scale, bool) and math.isfinite(scale)
          and scale > 0):
    raise ValueError(f"{where}: input_scale={scale!r} must be a finite number > 0 (the RMS norm "
                     f"jaxdisent divided the inputs by; 1 if the SAE was trained on raw inputs)")
  return float(scale)


def _check_k(k, d_sae, where, needed: bool):
  if k is None or k == 0:
    if needed:
      raise ValueError(f"{where}: a TopK SAE needs k (latents kept per sample) in cfg.json; add "
                       f'"k": N with 1 <= N <= {d_sae}')
    return 0
  if not 1 <= k <= d_sae:
    raise ValueError(f"{where}: k={k} must be in [1, {d_sae}] (the SAE has {d_sae} latents); fix "
                     f"cfg.json")
  return k


def _check_tensors(params, where, cfg_d_in=None, cfg_d_sae=None, names=None):
  """Shapes W_enc [d, M], b_enc [M], W_dec [M, d], b_dec [d] (threshold / log_threshold [M]),
  floating point and finite; cfg.json's d_in / d_sae (given) must agree with them. ``names`` maps
  our names to the file's (sparsify: encoder.weight [M, d] is W_enc transposed)."""
  names = names or {}
  label = lambda key: names.get(key, key)
  sparsify = names.get("W_enc") == "encoder.weight"
  latents_key = "num_latents" if sparsify else "d_sae"
  for key, value in params.items():
    dtype = np.asarray(value).dtype
    if not (np.issubdtype(dtype, np.floating) or dtype.kind == "V"):   # "V": bfloat16 (ml_dtypes)
      raise ValueError(f"{where}: tensor {label(key)} has dtype {dtype}; SAE weights are floating "
                       f"point")
  w_enc = np.asarray(params["W_enc"])
  if w_enc.ndim != 2:
    raise ValueError(f"{where}: {label('W_enc')} must be a matrix; got shape {w_enc.shape}")
  d, m = w_enc.shape
  stored = (m, d) if sparsify else (d, m)
  for key, want, got in (("d_in", cfg_d_in, d), (latents_key, cfg_d_sae, m)):
    if want is not None and want != got:
      raise ValueError(f"{where}: cfg.json says {key}={want} but the weights have {got} "
                       f"({label('W_enc')} has shape {stored}); fix cfg.json or use the weights it "
                       f"belongs to")
  expected = {"W_enc": (d, m), "b_enc": (m,), "W_dec": (m, d), "b_dec": (d,),
              "log_threshold": (m,), "threshold": (m,)}
  for key, value in params.items():
    shape, want = tuple(np.shape(value)), expected.get(key)
    if want is None:     # a tensor the formats do not use
      continue
    if shape != want:
      hint = (f" (it looks transposed: {label('W_dec')} is stored [latents, d_in])"
              if key == "W_dec" and shape == want[::-1] else "")
      raise ValueError(f"{where}: {label(key)} has shape {shape}; with d_in={d} and "
                       f"{latents_key}={m} (from {label('W_enc')}) it must be {want}{hint}")
    bad = ~np.isfinite(np.asarray(value, np.float32))
    if bad.any():
      raise ValueError(f"{where}: {label(key)} holds {int(bad.sum())} NaN/inf value(s); the SAE is "
                       f"broken (a diverged run?): use another checkpoint")


# ---- SAELens -----------------------------------------------------------------------------------

def _check_portable(sae: PortableSAE):
  where = f"this {sae.kind} SAE"
  missing = {"W_enc", "b_enc", "W_dec", "b_dec"} - set(sae.params)
  if sae.kind == "jumprelu" and "log_threshold" not in sae.params:
    missing.add("log_threshold")
  if missing:
    raise ValueError(f"{where} lacks parameter(s) {sorted(missing)}")
  _check_tensors(dict(sae.params), where)
  _check_scale(sae.input_scale, where)
  if sae.kind in ("topk", *BATCHTOPK_KINDS):
    _check_k(sae.k, sae.d_sae, where, needed=True)
  if sae.kind == "matryoshka_batchtopk":
    _group_sizes({"group_sizes": list(sae.group_sizes)}, sae.d_sae, where)


def export_saelens(sae: PortableSAE, out_dir: str, overwrite: bool = False) -> str:
  _check_portable(sae)
  tensors = _folded(sae)
  cfg = {"d_in": sae.d_in, "d_sae": sae.d_sae, "dtype": "float32", "device": "cpu",
         "apply_b_dec_to_input": True, "normalize_activations": "none",
         "reshape_activations": "none", "metadata": {"jaxdisent": _meta(sae)}}
  if sae.kind in BATCHTOPK_KINDS:
    if not sae.threshold > 0:
      raise ValueError(f"this {sae.kind} SAE has no inference threshold yet (it is learned after "
                       "loss.threshold_start_step); train longer, or export format sparsify (TopK)")
    cfg["architecture"] = "jumprelu"
    tensors["threshold"] = np.full((sae.d_sae,), sae.threshold, np.float32)
  elif sae.kind == "jumprelu":
    cfg["architecture"] = "jumprelu"
    tensors["threshold"] = np.exp(_f32(sae.params["log_threshold"]))
  elif sae.kind == "topk":
    cfg["architecture"] = "topk"
    cfg["k"] = int(sae.k)
  elif sae.kind == "relu":
    cfg["architecture"] = "standard"
  else:
    raise ValueError(f"unknown SAE kind {sae.kind!r}")
  return _write_bundle(out_dir, SAELENS_WEIGHTS, tensors, cfg, overwrite)


def import_saelens(path: str) -> PortableSAE:
  cfg, tensors = _read_bundle(path, SAELENS_WEIGHTS)
  missing = {"W_enc", "b_enc", "W_dec", "b_dec"} - set(tensors)
  if missing:
    raise ValueError(f"{path}/{SAELENS_WEIGHTS} lacks {sorted(missing)}")
  if not cfg.get("apply_b_dec_to_input", True):
    raise ValueError(f"{path}: apply_b_dec_to_input=false is not supported (jaxdisent encodes "
                     "x - b_dec)")
  if cfg.get("normalize_activations", "none") != "none":
    raise ValueError(f"{path}: normalize_activations={cfg['normalize_activations']!r} is not "
                     "supported; fold the normalisation into the weights first")
  where = f"{path}/{CFG}"
  meta = _jaxdisent_meta(cfg.get("metadata") or {}, where)
  scale = _check_scale(meta.get("input_scale", 1.0), where)
  raw = {name: tensors[name] for name in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold")
         if name in tensors}
  _check_tensors(raw, f"{path}/{SAELENS_WEIGHTS}", _cfg_number(cfg, "d_in", where, integer=True),
                 _cfg_number(cfg, "d_sae", where, integer=True))
  d_sae = int(np.shape(tensors["W_enc"])[1])
  params = _unfold(tensors, scale)
  architecture = cfg.get("architecture", "standard")
  threshold, k = -1.0, _cfg_number(cfg, "k", where, integer=True, default=0) or 0
  group_sizes = ()
  if architecture == "jumprelu":
    if "threshold" not in tensors:
      raise ValueError(f"{path}: a jumprelu SAE needs a 'threshold' tensor")
    t = _f32(tensors["threshold"])
    if meta.get("kind") in BATCHTOPK_KINDS and np.all(t == t[0]):
      kind, threshold = meta["kind"], float(t[0])
      k = _check_k(_cfg_number(meta, "k", where, integer=True, default=0), d_sae, where, True)
      if kind == "matryoshka_batchtopk":
        group_sizes = _group_sizes(meta, d_sae, where)
    else:
      if np.any(t <= 0):
        raise ValueError(f"{path}: jumprelu thresholds must be > 0 (jaxdisent learns "
                         "log_threshold)")
      kind = "jumprelu"
      params["log_threshold"] = np.log(t)
  elif architecture == "topk":
    kind = "topk"
    k = _check_k(k, d_sae, where, needed=True)
  elif architecture == "standard":
    kind = "relu"
  else:
    raise ValueError(f"{path}: SAELens architecture {architecture!r} is not supported "
                     "(standard, topk, jumprelu)")
  return PortableSAE(kind, k, params, scale, threshold, group_sizes)


# ---- sparsify ----------------------------------------------------------------------------------

def export_sparsify(sae: PortableSAE, out_dir: str, overwrite: bool = False) -> str:
  if sae.kind not in ("topk", *BATCHTOPK_KINDS):
    raise ValueError(f"sparsify has no {sae.kind!r} activation (it encodes TopK); export "
                     "format saelens instead")
  _check_portable(sae)
  folded = _folded(sae)
  tensors = {"encoder.weight": np.ascontiguousarray(folded["W_enc"].T),
             "encoder.bias": folded["b_enc"], "W_dec": folded["W_dec"], "b_dec": folded["b_dec"]}
  cfg = {"activation": "topk", "expansion_factor": max(1, sae.d_sae // sae.d_in),
         "normalize_decoder": True, "num_latents": sae.d_sae, "k": int(sae.k),
         "multi_topk": False, "skip_connection": False, "transcode": False, "d_in": sae.d_in,
         "jaxdisent": _meta(sae)}
  return _write_bundle(out_dir, SPARSIFY_WEIGHTS, tensors, cfg, overwrite)


def import_sparsify(path: str) -> PortableSAE:
  cfg, tensors = _read_bundle(path, SPARSIFY_WEIGHTS)
  if cfg.get("activation", "topk") != "topk":
    raise ValueError(f"{path}: sparsify activation {cfg['activation']!r} is not supported (topk)")
  if cfg.get("skip_connection") or cfg.get("transcode"):
    raise ValueError(f"{path}: transcoders / skip connections are not SAEs jaxdisent can load")
  missing = {"encoder.weight", "encoder.bias", "W_dec", "b_dec"} - set(tensors)
  if missing:
    raise ValueError(f"{path}/{SPARSIFY_WEIGHTS} lacks {sorted(missing)}")
  where = f"{path}/{CFG}"
  meta = _jaxdisent_meta(cfg, where)
  scale = _check_scale(meta.get("input_scale", 1.0), where)
  encoder = np.asarray(tensors["encoder.weight"])
  raw = {"W_enc": encoder.T if encoder.ndim == 2 else encoder, "b_enc": tensors["encoder.bias"],
         "W_dec": tensors["W_dec"], "b_dec": tensors["b_dec"]}
  _check_tensors(raw, f"{path}/{SPARSIFY_WEIGHTS}", _cfg_number(cfg, "d_in", where, integer=True),
                 _cfg_number(cfg, "num_latents", where, integer=True),
                 names={"W_enc": "encoder.weight", "b_enc": "encoder.bias"})
  d_sae = int(raw["W_enc"].shape[1])
  k = _check_k(_cfg_number(cfg, "k", where, integer=True), d_sae, where, needed=True)
  params = _unfold({"W_enc": _f32(raw["W_enc"]), "b_enc": raw["b_enc"], "W_dec": raw["W_dec"],
                    "b_dec": raw["b_dec"]}, scale)
  kind = meta.get("kind") if meta.get("kind") in BATCHTOPK_KINDS else "topk"
  group_sizes = _group_sizes(meta, d_sae, where) if kind == "matryoshka_batchtopk" else ()
  threshold = _cfg_number(meta, "threshold", where, default=-1.0)
  return PortableSAE(kind, k, params, scale, float(threshold), group_sizes)


def _jaxdisent_meta(holder: dict, where: str) -> dict:
  meta = holder.get("jaxdisent", {}) if isinstance(holder, dict) else {}
  if not isinstance(meta, dict):
    raise ValueError(f"{where}: 'jaxdisent' must be a JSON object; got {meta!r}")
  return meta


def export(sae: PortableSAE, out_dir: str, fmt: str, overwrite: bool = False) -> str:
  """Write ``sae`` to ``out_dir`` in ``fmt``. An ``out_dir`` that already holds an SAE (cfg.json or
  a weights file) is refused unless ``overwrite``; a file there is always refused."""
  if fmt == "saelens":
    return export_saelens(sae, out_dir, overwrite)
  if fmt == "sparsify":
    return export_sparsify(sae, out_dir, overwrite)
  raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")


def load(path: str) -> PortableSAE:
  """An SAELens or sparsify directory, told apart by its weights file."""
  if not os.path.isdir(path):
    raise FileNotFoundError(f"{path} " + ("is a file, not an SAE directory" if os.path.exists(path)
                                          else "does not exist") +
                            f": pass a directory holding {CFG} and {SAELENS_WEIGHTS} (SAELens) or "
                            f"{SPARSIFY_WEIGHTS} (sparsify)")
  if os.path.exists(os.path.join(path, SAELENS_WEIGHTS)):
    return import_saelens(path)
  if os.path.exists(os.path.join(path, SPARSIFY_WEIGHTS)):
    return import_sparsify(path)
  raise FileNotFoundError(f"{path} holds neither {SAELENS_WEIGHTS} (SAELens) nor "
                          f"{SPARSIFY_WEIGHTS} (sparsify)")


# ---- plain NumPy encoders, from the files' own definitions (for checks) ------------------------

def numpy_encode_saelens(path: str, x_NxD):
  from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
  with open(os.path.join(path, CFG)) as f:
    cfg = json.load(f)
  t = load_file(os.path.join(path, SAELENS_WEIGHTS))
  x = np.asarray(x_NxD, np.float32)
  hidden = (x - t["b_dec"]) @ t["W_enc"] + t["b_enc"]
  acts = np.maximum(hidden, 0)
  if cfg["architecture"] == "jumprelu":
    return acts * (hidden > t["threshold"])
  if cfg["architecture"] == "topk":
    return _numpy_topk(acts, int(cfg["k"]))
  return acts


def numpy_encode_sparsify(path: str, x_NxD):
  from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
  with open(os.path.join(path, CFG)) as f:
    cfg = json.load(f)
  t = load_file(os.path.join(path, SPARSIFY_WEIGHTS))
  x = np.asarray(x_NxD, np.float32)
  acts = np.maximum((x - t["b_dec"]) @ t["encoder.weight"].T + t["encoder.bias"], 0)
  return _numpy_topk(acts, int(cfg["k"]))


def numpy_decode(path: str, codes_NxM):
  """Reconstruction in raw units from either format's files."""
  from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
  name = SAELENS_WEIGHTS if os.path.exists(os.path.join(path, SAELENS_WEIGHTS)) else SPARSIFY_WEIGHTS
  t = load_file(os.path.join(path, name))
  return np.asarray(codes_NxM, np.float32) @ t["W_dec"] + t["b_dec"]


def _numpy_topk(acts, k):
  keep = np.argsort(-acts, axis=1, kind="stable")[:, :k]
  out = np.zeros_like(acts)
  rows = np.arange(acts.shape[0])[:, None]
  out[rows, keep] = acts[rows, keep]
  return out


def tolerance(d_in: int, magnitude: float) -> float:
  """float32 rounding of a d_in-term dot product of `magnitude`-sized terms."""
  return 4 * float(np.finfo(np.float32).eps) * math.sqrt(d_in) * magnitude
