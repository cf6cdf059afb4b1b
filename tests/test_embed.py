"""launch.embed on a tiny randomly initialised CLIP saved by the test (nothing downloaded):
image-folder and COCO inputs, L2-normalised row-aligned outputs, resuming after a stop."""

import importlib.util
import json
import os

import numpy as np
import pytest

# The embed extra (pip install -e '.[embed]'): without it these tests skip instead of failing to
# collect. torch and transformers are imported by the fixture below, when the first test here
# runs, not at collection: every xdist worker collects this file, and the imports take ~4.5 s.
_MISSING = [name for name in ("torch", "transformers", "tokenizers", "PIL")
            if importlib.util.find_spec(name) is None]
if _MISSING:
  pytest.skip(f"the embed extra is not installed (no {', '.join(_MISSING)}): "
              "pip install -e '.[embed]'", allow_module_level=True)


@pytest.fixture(scope="module", autouse=True)
def _embed_libraries():
  # pylint: disable=g-import-not-at-top,global-variable-undefined,redefined-outer-name
  global torch, Image, Tokenizer, models, pre_tokenizers, processors
  global CLIPConfig, CLIPImageProcessor, CLIPModel, PreTrainedTokenizerFast
  global Embedder, coco_items, folder_items, embed_main
  import torch
  from PIL import Image
  from tokenizers import Tokenizer, models, pre_tokenizers, processors
  from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, PreTrainedTokenizerFast
  from launch.embed import Embedder, coco_items, folder_items, main as embed_main


WORDS = ["a", "red", "blue", "green", "cat", "dog", "car", "on", "the", "grass", "road", "sky"]


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
  path = tmp_path_factory.mktemp("tiny_clip")
  vocab = {"[PAD]": 0, "[UNK]": 1, "<s>": 2, "</s>": 3}
  vocab.update({w: i + 4 for i, w in enumerate(WORDS)})
  backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
  backend.pre_tokenizer = pre_tokenizers.Whitespace()
  backend.post_processor = processors.TemplateProcessing(
      single="<s> $A </s>", special_tokens=[("<s>", 2), ("</s>", 3)])
  tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]",
                                      unk_token="[UNK]", bos_token="<s>", eos_token="</s>",
                                      model_max_length=16)
  torch.manual_seed(0)
  config = CLIPConfig(
      text_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                       num_attention_heads=4, vocab_size=len(vocab), max_position_embeddings=16,
                       pad_token_id=0, bos_token_id=2, eos_token_id=3),
      vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                         num_attention_heads=4, image_size=32, patch_size=8),
      projection_dim=24)
  CLIPModel(config).save_pretrained(str(path))
  tokenizer.save_pretrained(str(path))
  CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
                     ).save_pretrained(str(path))
  return str(path)


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
  folder = tmp_path_factory.mktemp("images")
  rng = np.random.default_rng(0)
  captions = []
  for i in range(7):
    pixels = rng.integers(0, 255, size=(40 + i, 36, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(folder / f"img{i}.png")
    caption = " ".join(rng.choice(WORDS, size=3 + i % 3))
    (folder / f"img{i}.txt").write_text(caption)
    captions.append(caption)
  coco = {"images": [{"id": 10 + i, "file_name": f"img{i}.png"} for i in range(7)],
          "annotations": [{"id": j, "image_id": 10 + j % 7, "caption": f"caption {j} a cat"}
                          for j in range(14)]}
  (folder / "captions.json").write_text(json.dumps(coco))
  return str(folder), captions


def test_folder_embeddings_are_normalised_and_row_aligned(tmp_path, tiny_clip, pictures):
  folder, captions = pictures
  out = str(tmp_path / "out")
  assert embed_main([f"--model={tiny_clip}", f"--images={folder}", f"--out={out}",
                     "--batch_size=3"]) == 0
  image = np.load(os.path.join(out, "image_embeddings.npy"))
  text = np.load(os.path.join(out, "text_embeddings.npy"))
  assert image.shape == text.shape == (7, 24) and image.dtype == np.float32
  np.testing.assert_allclose(np.linalg.norm(image, axis=1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, rtol=1e-5)
  lines = open(os.path.join(out, "captions.txt")).read().splitlines()
  assert lines == captions
  paths = open(os.path.join(out, "images.txt")).read().splitlines()
  assert [os.path.basename(p) for p in paths] == [f"img{i}.png" for i in range(7)]
  # row i is pair i: each row equals its pair embedded alone
  embedder = Embedder(tiny_clip)
  for i in (0, 4, 6):
    np.testing.assert_allclose(image[i], embedder.images([paths[i]])[0], atol=1e-5)
    np.testing.assert_allclose(text[i], embedder.texts([captions[i]])[0], atol=1e-5)
  assert not np.allclose(text[0], text[1])
  index = json.loads(open(os.path.join(out, "index.json")).read())
  assert index["rows"][2]["caption"] == captions[2] and index["dim"] == 24
  assert not os.path.exists(os.path.join(out, "embed_progress.json"))


def test_coco_resume_equals_one_run(tmp_path, tiny_clip, pictures):
  folder, _ = pictures
  coco = os.path.join(folder, "captions.json")
  assert len(coco_items(coco)) == 7 and len(coco_items(coco, all_captions=True)) == 14
  whole, parts = str(tmp_path / "whole"), str(tmp_path / "parts")
  args = [f"--model={tiny_clip}", f"--coco={coco}", "--all_captions=true", "--batch_size=4"]
  assert embed_main(args + [f"--out={whole}"]) == 0
  assert embed_main(args + [f"--out={parts}", "--max_batches=2"]) == 0
  progress = json.loads(open(os.path.join(parts, "embed_progress.json")).read())
  assert progress["rows_done"] == 8 and not os.path.exists(os.path.join(parts,
                                                                        "text_embeddings.npy"))
  assert embed_main(args + [f"--out={parts}"]) == 0
  for name in ("image_embeddings.npy", "text_embeddings.npy"):
    np.testing.assert_array_equal(np.load(os.path.join(parts, name)),
                                  np.load(os.path.join(whole, name)))
  assert open(os.path.join(parts, "captions.txt")).read().splitlines()[13] == "caption 13 a cat"


def test_embed_errors(tmp_path, tiny_clip):
  assert embed_main([f"--model={tiny_clip}", f"--out={tmp_path}"]) == 2
  assert embed_main([f"--model={tmp_path}", f"--images={tmp_path}", f"--out={tmp_path}/o"]) == 2
  with pytest.raises(ValueError, match="no images"):
    folder_items(str(tmp_path))
  (tmp_path / "bad.json").write_text("[]")
  with pytest.raises(ValueError, match="not a COCO captions file"):
    coco_items(str(tmp_path / "bad.json"))


def _tiny_language_model(path):
  """A 3-layer GPT-2 with a word-level tokenizer and no pad token (as GPT-2 ships)."""
  from transformers import GPT2Config, GPT2Model
  vocab = {"[UNK]": 0, "<|endoftext|>": 1}
  vocab.update({w: i + 2 for i, w in enumerate(WORDS)})
  backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
  backend.pre_tokenizer = pre_tokenizers.Whitespace()
  tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]",
                                      eos_token="<|endoftext|>", model_max_length=16)
  torch.manual_seed(1)
  GPT2Model(GPT2Config(n_embd=16, n_layer=3, n_head=2, vocab_size=len(vocab), n_positions=16,
                       bos_token_id=1, eos_token_id=1)).save_pretrained(str(path))
  tokenizer.save_pretrained(str(path))
  return str(path)


def test_layers_all_pools_as_platonic_rep_and_feeds_compare(tmp_path, tiny_clip, pictures):
  folder, captions = pictures
  out = str(tmp_path / "layers")
  assert embed_main([f"--model={tiny_clip}", f"--images={folder}", f"--out={out}",
                     "--layers=all", "--batch_size=3"]) == 0
  image = np.load(os.path.join(out, "image_layers.npz"))
  text = np.load(os.path.join(out, "text_layers.npz"))
  assert image.files == ["layer_0", "layer_1"]                 # one per vision block
  assert text.files == ["layer_0", "layer_1", "layer_2"]       # embeddings + 2 blocks
  assert image["layer_0"].shape == (7, 32) and text["layer_2"].shape == (7, 32)
  # the pooling, recomputed by hand for one row embedded alone
  model = CLIPModel.from_pretrained(tiny_clip).eval()
  processor = CLIPImageProcessor.from_pretrained(tiny_clip)
  tokenizer = PreTrainedTokenizerFast.from_pretrained(tiny_clip)
  paths = open(os.path.join(out, "images.txt")).read().splitlines()
  with torch.no_grad():
    pixels = processor(images=[Image.open(paths[4]).convert("RGB")], return_tensors="pt")
    hidden = model.vision_model(pixel_values=pixels["pixel_values"],
                                output_hidden_states=True).hidden_states
    tokens = tokenizer([captions[4]], return_tensors="pt")
    text_hidden = model.text_model(**tokens, output_hidden_states=True).hidden_states
  for i in range(2):
    np.testing.assert_allclose(image[f"layer_{i}"][4], hidden[i + 1][0, 0].numpy(), atol=1e-5)
  for i in range(3):
    np.testing.assert_allclose(text[f"layer_{i}"][4], text_hidden[i][0].mean(0).numpy(), atol=1e-5)
  index = json.loads(open(os.path.join(out, "index.json")).read())
  assert index["layers"] == "all" and index["num_layers"] == {"image": 2, "text": 3}
  # the two files go straight into launch.compare
  from launch.common import run_main
  from launch.compare import main as compare_main
  report = str(tmp_path / "r.json")
  assert run_main(compare_main, [f"--a={out}/image_layers.npz", f"--b={out}/text_layers.npz",
                                 "--metric=cka,mutual_knn", "--k=3", f"--out={report}"]) == 0
  assert len(json.loads(open(report).read())["metrics"]["cka"]["matrix"]) == 2


def test_layers_all_with_a_language_model(tmp_path, pictures):
  folder, captions = pictures
  lm = _tiny_language_model(tmp_path / "lm")
  out = str(tmp_path / "lm_layers")
  assert embed_main([f"--model={lm}", f"--images={folder}", f"--out={out}", "--layers=all",
                     "--batch_size=4"]) == 0
  assert not os.path.exists(os.path.join(out, "image_layers.npz"))
  text = np.load(os.path.join(out, "text_layers.npz"))
  assert text.files == [f"layer_{i}" for i in range(4)] and text["layer_3"].shape == (7, 16)
  # padded batches: the masked mean equals the row embedded alone
  from transformers import GPT2Model
  model = GPT2Model.from_pretrained(lm).eval()
  tokenizer = PreTrainedTokenizerFast.from_pretrained(lm)
  with torch.no_grad():
    hidden = model(**tokenizer([captions[0]], return_tensors="pt"),
                   output_hidden_states=True).hidden_states
  np.testing.assert_allclose(text["layer_3"][0], hidden[3][0].mean(0).numpy(), atol=1e-5)
  assert embed_main([f"--model={lm}", f"--images={folder}", f"--out={out}2",
                     "--layers=some"]) == 2
