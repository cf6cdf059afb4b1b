"""Paired image / text embeddings from a CLIP or SigLIP checkpoint on disk, for SAE training.

  pip install -e '.[embed]'      # transformers + torch (CPU is fine)
  python -m launch.embed --model=PATH/TO/clip-or-siglip --images=FOLDER --out=DIR
  python -m launch.embed --model=PATH --coco=captions_val2017.json --image_root=val2017 --out=DIR
      [--batch_size=64] [--all_captions=false] [--device=cpu] [--max_batches=N]
  python -m launch.embed --layers=all --model=PATH --images=FOLDER --out=DIR   # every layer
  python -m launch.embed --model=PATH --texts=vocabulary.txt --out=DIR   # concept vocabulary

--model is a Hugging Face transformers checkpoint directory (config.json + weights, with its
tokenizer and preprocessor files): CLIPModel or SiglipModel. Nothing is downloaded.
--images: every image under FOLDER (sorted); an image's caption is the sidecar STEM.txt next to
it. Texts are embedded when every image has one, otherwise only images are.
--coco: a COCO-style captions JSON ({"images": [{id, file_name}], "annotations": [{image_id,
caption}]}); one row per image with its first caption, or one row per caption with
--all_captions=true. Images are read from --image_root (default: the JSON's folder).

--texts: text only, one phrase per non-empty line (a concept vocabulary for naming SAE features):
DIR receives vocabulary.txt (the phrases kept) and vocabulary_embeddings.npy (float32,
L2-normalised, row i = phrase i), for --vocabulary / --vocabulary_embeddings of launch.intervene,
launch.explore and evals.dictionary.

Otherwise DIR receives image_embeddings.npy and text_embeddings.npy (float32, L2-normalised rows, row i of
both = pair i), captions.txt and images.txt (one line per row, for launch.explore --captions /
--thumbnails) and index.json. Work is resumable: rows are written into DIR/*.partial.npy and the
count of finished rows into DIR/embed_progress.json after every batch; re-running the same
command continues from there (a different model or input list starts over).

--layers=all writes the features of every layer instead, for ``launch.compare``: DIR/
image_layers.npz and/or text_layers.npz, one (N, D) float32 array per layer (not normalised;
launch.compare L2-normalises), pooled as platonic-rep's extract_features.py pools them:
  * images (the vision tower of a CLIP / SigLIP checkpoint): the output of every transformer block
    (hidden_states[1:]; platonic-rep's ``blocks.i.add_1`` of a timm ViT), its CLS token
    (platonic-rep's pool 'none'); SigLIP has no CLS token: the mean over patch tokens;
  * texts (the text tower of a dual encoder, or any transformers language model, e.g. a
    GPT-2 / Llama checkpoint): every hidden state including the embedding output, averaged over
    the non-padding tokens (platonic-rep's pool 'avg').
A language-model checkpoint has no vision tower: only texts are embedded (captions required).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

from launch.common import UsageError, fail, parse_args, run_main

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")
PROGRESS = "embed_progress.json"


def folder_items(folder):
  """[(image path, caption or None)] for every image under `folder`, sorted by path."""
  if not os.path.isdir(folder):
    raise FileNotFoundError(f"image folder {folder} not found")
  items = []
  for root, _, files in os.walk(folder):
    for name in files:
      if name.lower().endswith(IMAGE_SUFFIXES):
        path = os.path.join(root, name)
        sidecar = os.path.splitext(path)[0] + ".txt"
        caption = None
        if os.path.exists(sidecar):
          with open(sidecar, encoding="utf-8") as f:
            caption = " ".join(f.read().split())
        items.append((path, caption))
  if not items:
    raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
  items.sort()
  if any(c is None for _, c in items):
    items = [(path, None) for path, _ in items]
  return items


def coco_items(path, image_root=None, all_captions=False):
  if not os.path.exists(path):
    raise FileNotFoundError(f"captions file {path} not found")
  with open(path, encoding="utf-8") as f:
    data = json.load(f)
  if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
    raise ValueError(f"{path} is not a COCO captions file: it needs 'images' and 'annotations'")
  root = image_root or os.path.dirname(os.path.abspath(path))
  files = {image["id"]: os.path.join(root, image["file_name"]) for image in data["images"]}
  items, seen = [], set()
  for annotation in data["annotations"]:
    image_id = annotation["image_id"]
    if image_id not in files:
      raise ValueError(f"{path}: annotation {annotation.get('id')} names image_id {image_id}, "
                       "which is not in 'images'")
    if not all_captions and image_id in seen:
      continue
    seen.add(image_id)
    items.append((files[image_id], " ".join(str(annotation["caption"]).split())))
  if not items:
    raise ValueError(f"{path} has no annotations")
  return items


class Embedder:
  """A CLIP / SigLIP transformers checkpoint: L2-normalised image and text embeddings."""

  def __init__(self, model_dir, device="cpu"):
    try:
      import torch  # pylint: disable=g-import-not-at-top
      from transformers import (AutoImageProcessor, AutoModel,  # pylint: disable=g-import-not-at-top
                                AutoTokenizer)
    except ImportError as error:
      raise ImportError("launch.embed needs transformers and torch: pip install -e '.[embed]'"
                        ) from error
    if not os.path.isfile(os.path.join(model_dir, "config.json")):
      raise FileNotFoundError(f"{model_dir} is not a transformers checkpoint (no config.json); "
                              "point --model at a CLIP or SigLIP model saved with save_pretrained")
    self.torch = torch
    self.model = AutoModel.from_pretrained(model_dir).to(device).eval()
    kind = self.model.config.model_type
    if not hasattr(self.model, "get_image_features") or not hasattr(self.model,
                                                                     "get_text_features"):
      raise ValueError(f"{model_dir} holds a {kind!r} model; launch.embed needs a dual encoder "
                       "with get_image_features / get_text_features (CLIP, SigLIP)")
    self.kind = kind
    self.device = device
    self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
    self.image_processor = AutoImageProcessor.from_pretrained(model_dir)
    text_config = getattr(self.model.config, "text_config", None)
    self.max_length = int(getattr(text_config, "max_position_embeddings", 64) or 64)

  def _features(self, output):
    if not isinstance(output, self.torch.Tensor):   # some versions return a model output
      output = getattr(output, "pooler_output", None)
      if output is None:
        raise ValueError("the model's get_*_features returned no pooled embedding")
    output = output.float()
    return (output / output.norm(dim=-1, keepdim=True).clamp_min(1e-12)).cpu().numpy()

  def images(self, paths):
    from PIL import Image  # pylint: disable=g-import-not-at-top
    pictures = []
    for path in paths:
      try:
        with Image.open(path) as picture:
          pictures.append(picture.convert("RGB"))
      except (OSError, ValueError) as error:
        raise ValueError(f"cannot read image {path}: {error}") from error
    inputs = self.image_processor(images=pictures, return_tensors="pt")
    with self.torch.no_grad():
      return self._features(self.model.get_image_features(
          pixel_values=inputs["pixel_values"].to(self.device)))

  def texts(self, captions):
    # SigLIP was trained on texts padded to max_length; CLIP pads to the longest
    padding = "max_length" if self.kind.startswith("siglip") else True
    inputs = self.tokenizer(list(captions), padding=padding, truncation=True,
                            max_length=self.max_length, return_tensors="pt")
    inputs = {k: v.to(self.device) for k, v in inputs.items()
              if k in ("input_ids", "attention_mask")}
    if self.kind.startswith("siglip"):
      inputs.pop("attention_mask", None)
    with self.torch.no_grad():
      return self._features(self.model.get_text_features(**inputs))


class LayerEmbedder:
  """Per-layer features of a transformers checkpoint (``--layers=all``), pooled as platonic-rep:
  images -> CLS token (SigLIP: patch mean) of every vision block, (B, L, D); texts -> masked mean
  over tokens of every hidden state including the embeddings, (B, L + 1, D)."""

  def __init__(self, model_dir, device="cpu"):
    try:
      import torch  # pylint: disable=g-import-not-at-top
      from transformers import AutoModel, AutoTokenizer  # pylint: disable=g-import-not-at-top
    except ImportError as error:
      raise ImportError("launch.embed needs transformers and torch: pip install -e '.[embed]'"
                        ) from error
    if not os.path.isfile(os.path.join(model_dir, "config.json")):
      raise FileNotFoundError(f"{model_dir} is not a transformers checkpoint (no config.json); "
                              "point --model at a model saved with save_pretrained")
    self.torch = torch
    self.device = device
    self.model = AutoModel.from_pretrained(model_dir).to(device).eval()
    self.kind = self.model.config.model_type
    self.vision = getattr(self.model, "vision_model", None)
    self.text = getattr(self.model, "text_model", None)
    if self.text is None and self.vision is None:
      self.text = self.model                       # a (decoder or encoder) language model
    self.image_processor = None
    if self.vision is not None:
      from transformers import AutoImageProcessor  # pylint: disable=g-import-not-at-top
      self.image_processor = AutoImageProcessor.from_pretrained(model_dir)
    self.tokenizer = None
    if self.text is not None:
      self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
      if self.tokenizer.pad_token is None:
        if self.tokenizer.eos_token is None:
          raise ValueError(f"the tokenizer of {model_dir} has neither a pad nor an eos token; "
                           "save it with a pad_token")
        self.tokenizer.pad_token = self.tokenizer.eos_token   # masked out by the mean anyway
    config = getattr(self.model.config, "text_config", None) or self.model.config
    self.max_length = int(getattr(config, "max_position_embeddings", 512) or 512)

  def images(self, paths):
    from PIL import Image  # pylint: disable=g-import-not-at-top
    if self.vision is None:
      raise ValueError(f"the {self.kind!r} checkpoint has no vision tower")
    pictures = []
    for path in paths:
      try:
        with Image.open(path) as picture:
          pictures.append(picture.convert("RGB"))
      except (OSError, ValueError) as error:
        raise ValueError(f"cannot read image {path}: {error}") from error
    pixels = self.image_processor(images=pictures, return_tensors="pt")["pixel_values"]
    with self.torch.no_grad():
      hidden = self.vision(pixel_values=pixels.to(self.device), output_hidden_states=True
                           ).hidden_states[1:]
    if self.kind.startswith("siglip"):   # no CLS token
      pooled = [h.mean(dim=1) for h in hidden]
    else:
      pooled = [h[:, 0] for h in hidden]
    return self.torch.stack(pooled, dim=1).float().cpu().numpy()

  def texts(self, captions):
    padding = "max_length" if self.kind.startswith("siglip") else True
    inputs = self.tokenizer(list(captions), padding=padding, truncation=True,
                            max_length=self.max_length, return_tensors="pt")
    mask = inputs["attention_mask"].to(self.device)
    with self.torch.no_grad():
      hidden = self.text(input_ids=inputs["input_ids"].to(self.device), attention_mask=mask,
                         output_hidden_states=True).hidden_states
    weights = mask.unsqueeze(-1).to(hidden[0].dtype)
    pooled = [(h * weights).sum(1) / weights.sum(1).clamp_min(1) for h in hidden]
    return self.torch.stack(pooled, dim=1).float().cpu().numpy()


def _fingerprint(model_dir, items, layers="final"):
  digest = hashlib.sha256()
  digest.update(f"layers={layers}\n".encode())
  with open(os.path.join(model_dir, "config.json"), "rb") as f:
    digest.update(f.read())
  for path, caption in items:
    digest.update(f"{path}\0{caption}\n".encode())
  return digest.hexdigest()


def embed(model_dir, items, out, batch_size=64, device="cpu", max_batches=None, log=print,
          layers="final"):
  """Embed `items` [(image path, caption or None)] into `out`; returns the output paths, or None
  when `max_batches` stopped it before the end (run again to continue). ``layers='all'``: the
  per-layer features of ``LayerEmbedder`` into ``{image,text}_layers.npz``."""
  if layers not in ("final", "all"):
    raise UsageError(f"--layers={layers}: expected final or all")
  import numpy as np  # pylint: disable=g-import-not-at-top
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  if batch_size < 1:
    raise UsageError("--batch_size must be >= 1")
  os.makedirs(out, exist_ok=True)
  with_text = items[0][1] is not None
  embedder = Embedder(model_dir, device) if layers == "final" else LayerEmbedder(model_dir, device)
  with_image = layers == "final" or embedder.vision is not None
  if layers == "all" and embedder.text is None:
    with_text = False
  if not with_image and not with_text:
    raise ValueError(f"{model_dir} is a language model ({embedder.kind!r}): it embeds captions, "
                     "and these images have none (give sidecar .txt captions or --coco)")
  fingerprint = _fingerprint(model_dir, items, layers)
  progress_path = os.path.join(out, PROGRESS)
  done = 0
  if os.path.exists(progress_path):
    with open(progress_path) as f:
      progress = json.load(f)
    if progress.get("fingerprint") == fingerprint:
      done = int(progress["rows_done"])
      log(f"[jaxdisent] resuming at row {done} of {len(items)}")
  names = (["image"] if with_image else []) + (["text"] if with_text else [])
  paths = {name: os.path.join(out, f"{name}_embeddings.partial.npy") for name in names}
  if done and not all(os.path.exists(p) for p in paths.values()):
    done = 0
  probe = {"image": lambda: embedder.images([items[0][0]]),
           "text": lambda: embedder.texts([items[0][1]])}
  shapes = {name: probe[name]().shape[1:] for name in names}
  width = shapes[names[0]][-1]
  partial = {name: np.lib.format.open_memmap(path, mode="r+" if done else "w+", dtype=np.float32,
                                             shape=(len(items),) + shapes[name])
             for name, path in paths.items()}
  batches = 0
  with tqdm(total=len(items), initial=done, unit="pair", disable=None, file=sys.stderr) as bar:
    while done < len(items):
      if max_batches is not None and batches >= max_batches:
        return None
      chunk = items[done:done + batch_size]
      if with_image:
        partial["image"][done:done + len(chunk)] = embedder.images([p for p, _ in chunk])
      if with_text:
        partial["text"][done:done + len(chunk)] = embedder.texts([c for _, c in chunk])
      for array in partial.values():
        array.flush()
      done += len(chunk)
      batches += 1
      tmp = progress_path + ".tmp"
      with open(tmp, "w") as f:
        json.dump({"fingerprint": fingerprint, "rows_done": done, "total": len(items)}, f)
      os.replace(tmp, progress_path)
      bar.update(len(chunk))
  for array in partial.values():
    array.flush()
  partial.clear()
  outputs = {}
  for name, path in paths.items():
    if layers == "all":
      outputs[name] = os.path.join(out, f"{name}_layers.npz")
      stacked = np.load(path, mmap_mode="r")
      tmp = outputs[name] + ".tmp.npz"
      # one (N, D) array per layer, in layer order (launch.compare reads them in file order)
      np.savez(tmp, **{f"layer_{i}": np.ascontiguousarray(stacked[:, i])
                       for i in range(stacked.shape[1])})
      os.replace(tmp, outputs[name])
      del stacked
      os.remove(path)
    else:
      outputs[name] = os.path.join(out, f"{name}_embeddings.npy")
      os.replace(path, outputs[name])
  with open(os.path.join(out, "images.txt"), "w", encoding="utf-8") as f:
    f.writelines(f"{path}\n" for path, _ in items)
  if with_text:
    with open(os.path.join(out, "captions.txt"), "w", encoding="utf-8") as f:
      f.writelines(f"{caption}\n" for _, caption in items)
  with open(os.path.join(out, "index.json"), "w", encoding="utf-8") as f:
    meta = {"model": os.path.abspath(model_dir), "model_type": embedder.kind, "dim": width,
            "normalised": "l2" if layers == "final" else "none", "layers": layers}
    if layers == "all":
      meta["num_layers"] = {name: int(shapes[name][0]) for name in names}
      meta["pooling"] = {"image": "CLS token of every vision block (SigLIP: patch mean), as "
                                  "platonic-rep pool 'none'",
                         "text": "mean over non-padding tokens of every hidden state incl. the "
                                 "embeddings, as platonic-rep pool 'avg'"}
    meta["rows"] = [{"image": p, "caption": c} for p, c in items]
    json.dump(meta, f, indent=1)
  os.remove(progress_path)
  log(f"[jaxdisent] {len(items)} rows, {width} dims -> " + ", ".join(outputs.values()))
  return outputs


def embed_texts(model_dir, phrases_path, out, batch_size=64, device="cpu", log=print):
  """Embed each non-empty line of ``phrases_path`` -> out/vocabulary_embeddings.npy (+ .txt)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  if batch_size < 1:
    raise UsageError("--batch_size must be >= 1")
  if not os.path.exists(phrases_path):
    raise FileNotFoundError(f"--texts file {phrases_path!r} not found (one phrase per line)")
  with open(phrases_path, encoding="utf-8") as f:
    phrases = [line.strip() for line in f if line.strip()]
  if len(phrases) < 2:
    raise UsageError(f"{phrases_path} has {len(phrases)} phrase(s); a vocabulary needs at least 2")
  embedder = Embedder(model_dir, device)
  rows = np.concatenate([np.asarray(embedder.texts(phrases[i:i + batch_size]), np.float32)
                         for i in range(0, len(phrases), batch_size)])
  os.makedirs(out, exist_ok=True)
  path = os.path.join(out, "vocabulary_embeddings.npy")
  np.save(path + ".tmp.npy", rows)
  os.replace(path + ".tmp.npy", path)
  with open(os.path.join(out, "vocabulary.txt"), "w", encoding="utf-8") as f:
    f.writelines(f"{phrase}\n" for phrase in phrases)
  log(f"[jaxdisent] {len(phrases)} phrases, {rows.shape[1]} dims -> {path}")
  return path


def main(argv) -> int:
  try:
    _, flags = parse_args(argv, {"model": None, "images": None, "coco": None, "image_root": None,
                                 "out": None, "batch_size": "64", "all_captions": "false",
                                 "device": "cpu", "max_batches": None, "layers": "final",
                                 "texts": None})
    if not flags["model"] or not flags["out"]:
      raise UsageError("--model=CHECKPOINT_DIR and --out=DIR are required")
    if flags["texts"]:
      if flags["images"] or flags["coco"]:
        raise UsageError("--texts embeds a vocabulary alone; run --images / --coco separately")
      try:
        embed_texts(flags["model"], flags["texts"], flags["out"], int(flags["batch_size"]),
                    flags["device"], log=lambda *a: print(*a, file=sys.stderr))
      except (UsageError, FileNotFoundError, ValueError, ImportError) as error:
        return fail(str(error))
      return 0
    if bool(flags["images"]) == bool(flags["coco"]):
      raise UsageError("give exactly one of --images=FOLDER, --coco=CAPTIONS.json or "
                       "--texts=PHRASES.txt")
    batch_size = int(flags["batch_size"])
    max_batches = int(flags["max_batches"]) if flags["max_batches"] else None
    all_captions = flags["all_captions"].lower() in ("1", "true", "yes")
  except (UsageError, ValueError) as error:
    return fail(str(error))
  try:
    if flags["images"]:
      items = folder_items(flags["images"])
    else:
      items = coco_items(flags["coco"], flags["image_root"], all_captions)
    result = embed(flags["model"], items, flags["out"], batch_size, flags["device"], max_batches,
                   log=lambda *a: print(*a, file=sys.stderr), layers=flags["layers"])
  except (UsageError, FileNotFoundError, ValueError, ImportError) as error:
    return fail(str(error))
  if result is None:
    print("[jaxdisent] stopped after --max_batches; run the same command again to continue",
          file=sys.stderr)
  return 0


if __name__ == "__main__":
  sys.exit(run_main(main, doc=__doc__))
