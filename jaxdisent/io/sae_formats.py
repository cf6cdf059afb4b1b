"""SAEs in the formats people share them in: SAELens and EleutherAI sparsify directories.

* SAELens (v6 ``SAE.save_model`` / ``load_from_disk``): ``cfg.json`` + ``sae_weights.safetensors``
  with W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in], b_dec [d_in] and, for
  ``architecture: "jumprelu"``, threshold [d_sae]. Encoding: h = (x - b_dec) W_enc + b_enc;
  standard: relu(h); topk: the k largest of relu(h); jumprelu: relu(h) * (h > threshold).
  BatchTopK exports as JumpReLU with its learned inference threshold on every latent, as SAELens
  does for BatchTopK SAEs.
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
  kind: str                  # batchtopk | topk | relu | jumprelu
  k: int                     # topk / batchtopk; 0 otherwise
  params: dict               # W_enc [d, M], b_enc [M], W_dec [M, d], b_dec [d], log_threshold [M]
  input_scale: float = 1.0
  threshold: float = -1.0    # BatchTopK's global inference threshold (< 0: none learned)

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
  return {"kind": sae.kind, "k": sae.k, "input_scale": float(sae.input_scale),
          "input_scale_folded_into_weights": True, "threshold": float(sae.threshold)}


def _check_dir(path, weights):
  for name in (CFG, weights):
    if not os.path.exists(os.path.join(path, name)):
      raise FileNotFoundError(f"{path} has no {name}: not a "
                              f"{'SAELens' if weights == SAELENS_WEIGHTS else 'sparsify'} SAE "
                              "directory")


def _write_bundle(out_dir: str, weights: str, tensors: dict, cfg: dict) -> str:
  """``out_dir/weights`` (safetensors) + ``out_dir/cfg.json``: the layout SAELens and sparsify share."""
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  os.makedirs(out_dir, exist_ok=True)
  save_file(tensors, os.path.join(out_dir, weights))
  with open(os.path.join(out_dir, CFG), "w") as f:
    json.dump(cfg, f, indent=2)
  return out_dir


def _read_bundle(path: str, weights: str) -> tuple[dict, dict]:
  """(cfg, tensors) of a directory written in that layout; names the missing file if any."""
  from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
  _check_dir(path, weights)
  with open(os.path.join(path, CFG)) as f:
    cfg = json.load(f)
  return cfg, load_file(os.path.join(path, weights))


# ---- SAELens -----------------------------------------------------------------------------------

def export_saelens(sae: PortableSAE, out_dir: str) -> str:
  tensors = _folded(sae)
  cfg = {"d_in": sae.d_in, "d_sae": sae.d_sae, "dtype": "float32", "device": "cpu",
         "apply_b_dec_to_input": True, "normalize_activations": "none",
         "reshape_activations": "none", "metadata": {"jaxdisent": _meta(sae)}}
  if sae.kind == "batchtopk":
    if not sae.threshold > 0:
      raise ValueError("this BatchTopK SAE has no inference threshold yet (it is learned after "
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
  return _write_bundle(out_dir, SAELENS_WEIGHTS, tensors, cfg)


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
  meta = (cfg.get("metadata") or {}).get("jaxdisent", {})
  scale = float(meta.get("input_scale", 1.0))
  params = _unfold(tensors, scale)
  architecture = cfg.get("architecture", "standard")
  threshold, k = -1.0, int(cfg.get("k", 0) or 0)
  if architecture == "jumprelu":
    if "threshold" not in tensors:
      raise ValueError(f"{path}: a jumprelu SAE needs a 'threshold' tensor")
    t = _f32(tensors["threshold"])
    if meta.get("kind") == "batchtopk" and np.all(t == t[0]):
      kind, threshold, k = "batchtopk", float(t[0]), int(meta.get("k", 0))
    else:
      if np.any(t <= 0):
        raise ValueError(f"{path}: jumprelu thresholds must be > 0 (jaxdisent learns "
                         "log_threshold)")
      kind = "jumprelu"
      params["log_threshold"] = np.log(t)
  elif architecture == "topk":
    kind = "topk"
    if k <= 0:
      raise ValueError(f"{path}: a topk SAE needs k in cfg.json")
  elif architecture == "standard":
    kind = "relu"
  else:
    raise ValueError(f"{path}: SAELens architecture {architecture!r} is not supported "
                     "(standard, topk, jumprelu)")
  return PortableSAE(kind, k, params, scale, threshold)


# ---- sparsify ----------------------------------------------------------------------------------

def export_sparsify(sae: PortableSAE, out_dir: str) -> str:
  if sae.kind not in ("topk", "batchtopk"):
    raise ValueError(f"sparsify has no {sae.kind!r} activation (it encodes TopK); export "
                     "format saelens instead")
  folded = _folded(sae)
  tensors = {"encoder.weight": np.ascontiguousarray(folded["W_enc"].T),
             "encoder.bias": folded["b_enc"], "W_dec": folded["W_dec"], "b_dec": folded["b_dec"]}
  cfg = {"activation": "topk", "expansion_factor": max(1, sae.d_sae // sae.d_in),
         "normalize_decoder": True, "num_latents": sae.d_sae, "k": int(sae.k),
         "multi_topk": False, "skip_connection": False, "transcode": False, "d_in": sae.d_in,
         "jaxdisent": _meta(sae)}
  return _write_bundle(out_dir, SPARSIFY_WEIGHTS, tensors, cfg)


def import_sparsify(path: str) -> PortableSAE:
  cfg, tensors = _read_bundle(path, SPARSIFY_WEIGHTS)
  if cfg.get("activation", "topk") != "topk":
    raise ValueError(f"{path}: sparsify activation {cfg['activation']!r} is not supported (topk)")
  if cfg.get("skip_connection") or cfg.get("transcode"):
    raise ValueError(f"{path}: transcoders / skip connections are not SAEs jaxdisent can load")
  missing = {"encoder.weight", "encoder.bias", "W_dec", "b_dec"} - set(tensors)
  if missing:
    raise ValueError(f"{path}/{SPARSIFY_WEIGHTS} lacks {sorted(missing)}")
  meta = cfg.get("jaxdisent", {})
  scale = float(meta.get("input_scale", 1.0))
  params = _unfold({"W_enc": _f32(tensors["encoder.weight"]).T, "b_enc": tensors["encoder.bias"],
                    "W_dec": tensors["W_dec"], "b_dec": tensors["b_dec"]}, scale)
  kind = "batchtopk" if meta.get("kind") == "batchtopk" else "topk"
  return PortableSAE(kind, int(cfg["k"]), params, scale, float(meta.get("threshold", -1.0)))


def export(sae: PortableSAE, out_dir: str, fmt: str) -> str:
  if fmt == "saelens":
    return export_saelens(sae, out_dir)
  if fmt == "sparsify":
    return export_sparsify(sae, out_dir)
  raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")


def load(path: str) -> PortableSAE:
  """An SAELens or sparsify directory, told apart by its weights file."""
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
