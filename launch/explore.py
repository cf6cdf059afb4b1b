"""Write a self-contained HTML concept explorer for a trained SAE run.

  python -m launch.explore --workdir=runs/sae [--captions=captions.txt] [--thumbnails=paths.txt]
      [--num_pairs=4096] [--out=DIR/explorer.html]
      [--vocabulary=phrases.txt --vocabulary_embeddings=phrases.npy]

--captions / --thumbnails: text files with one caption / image path (or URL) per line, in the same
row order as the embeddings (pair i = line i). Without them samples are named by row. For the
synthetic default data, samples are described by their planted concepts. --vocabulary (one phrase
per line) with its text embeddings (same model) names each concept by its nearest phrases
(jaxdisent.metrics.naming).
"""

from __future__ import annotations

import os
import sys

from launch.common import UsageError, fail, force_cpu_devices, parse_args, parse_int, run_main


def _read_lines(path, expected):
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found")
  with open(path, encoding="utf-8") as f:
    lines = [line.rstrip("\n") for line in f]
  if len(lines) < expected:
    raise ValueError(f"{path} has {len(lines)} lines but the embeddings have {expected} rows; "
                     "give one line per row, in the same order")
  return lines


def explore(workdir, *, num_pairs=4096, captions=None, thumbnails=None, out=None, log=print,
            vocabulary=None, vocabulary_embeddings=None):
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jaxdisent.runs import restore_latest  # pylint: disable=g-import-not-at-top
  from jaxdisent.viz import explorer  # pylint: disable=g-import-not-at-top
  config, method, state, step = restore_latest(workdir)
  if config.method != "sae":
    raise ValueError(f"{workdir} is a {config.method!r} run; the explorer needs an SAE run")
  encode = jax.jit(lambda x: method.encode(state.params, state.model_state, x))
  data = method.data
  names = None
  if hasattr(data, "pairs"):  # synthetic: describe samples by their planted concepts
    image, text, acts_img, acts_txt = data.pairs(jax.random.key(4321), num_pairs)
    codes_img, codes_txt = np.asarray(encode(image)), np.asarray(encode(text))
    names = [f"pair {i}: planted " + ",".join(f"c{c}" for c in np.nonzero(np.asarray(acts_img[i]) +
                                                                          np.asarray(acts_txt[i]))[0])
             for i in range(num_pairs)]
    rows = num_pairs
  else:
    rows = min(num_pairs, data.num_rows)
    index = np.arange(rows)
    codes_img = np.asarray(encode(data.rows(index, "image")))
    codes_txt = np.asarray(encode(data.rows(index, "text"))) if data.text is not None else None
  caption_lines = _read_lines(captions, rows)[:rows] if captions else None
  thumb_lines = _read_lines(thumbnails, rows)[:rows] if thumbnails else None
  concept_names = None
  if vocabulary:
    from jaxdisent.metrics import naming  # pylint: disable=g-import-not-at-top
    phrases, vocab = naming.load_vocabulary(vocabulary, vocabulary_embeddings or "")
    concept_names = naming.name_atoms(np.asarray(state.params["W_dec"]), vocab, phrases)
  table = explorer.concept_table(codes_img, codes_txt, np.asarray(state.params["W_dec"]),
                                 concept_names=concept_names,
                                 captions=caption_lines, thumbnails=thumb_lines, sample_names=names)
  out = out or os.path.join(workdir, "explorer.html")
  explorer.write_page(table, out, title=f"jaxdisent concepts: {config.model.kind} SAE, "
                      f"{config.model.dict_size} latents, step {step}")
  log(f"[jaxdisent] wrote {out} ({table['meta']['num_concepts']} concepts); open it in a browser")
  return out


def main(argv) -> int:
  try:
    _, flags = parse_args(argv, {"workdir": None, "captions": None, "thumbnails": None,
                                 "num_pairs": "4096", "out": None, "devices": None,
                                 "vocabulary": None, "vocabulary_embeddings": None})
    if not flags["workdir"]:
      raise UsageError("--workdir=DIR is required")
    num_pairs = parse_int("num_pairs", flags["num_pairs"], minimum=1)
    force_cpu_devices(argv)
  except (UsageError, ValueError) as error:
    return fail(str(error))
  from jaxdisent.train.checkpoint import CheckpointError  # pylint: disable=g-import-not-at-top
  try:
    explore(flags["workdir"], num_pairs=num_pairs, captions=flags["captions"],
            thumbnails=flags["thumbnails"], out=flags["out"], vocabulary=flags["vocabulary"],
            vocabulary_embeddings=flags["vocabulary_embeddings"],
            log=lambda *a: print(*a, file=sys.stderr))
  except (FileNotFoundError, ValueError, CheckpointError) as error:
    return fail(str(error))
  return 0


if __name__ == "__main__":
  sys.exit(run_main(main, doc=__doc__))
