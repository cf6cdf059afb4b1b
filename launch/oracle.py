"""Run a relation oracle over N pool images of a GEM dataset and write its scores file.

  python -m launch.oracle --config=configs/gem_dsprites.py --out=runs/scores.npz [--num_images=2000]
      [--config.oracle.kind=chat --config.oracle.base_url=http://127.0.0.1:8000/v1
       --config.oracle.model=MODEL ...]

The expensive, non-deterministic step (an MLLM over HTTP) is its own stage: it writes OUT (a
``.npz`` with the scores, validity mask, attribute names, pool indices and a meta record holding the
dataset fingerprint, oracle kind, model and prompt hash) which training reads as fixed data with
``--config.oracle.scores_path=OUT``. ``simulated`` and ``labels`` oracles write the same kind of file.

The chat oracle (keys: configs/gem_dsprites.py ``oracle.*``; README "GEM") caches every complete
answer under ``oracle.cache_dir`` (default OUT + '.cache/'), keyed by base_url + model + prompt +
image, so re-running after a crash or Ctrl-C only pays for the images not yet answered; incomplete
answers (refusals, cut-off or unreadable replies) are asked again on the next run. A run whose share
of valid scores is below ``oracle.min_answer_rate`` (default 0.5) writes nothing and exits 2 naming
the three most common problems. A server asking to wait (Retry-After) longer than
``oracle.max_wait_s`` stops the run at once. For Ollama / llama.cpp add
``--config.oracle.use_json_schema=false``. While it runs, the folder of OUT is locked (one writer).
"""

from __future__ import annotations

import os
import sys

from launch.common import (UsageError, fail, load_config_from_args, parse_args, parse_int,
                           run_main)


def run_oracle(config, out: str, num_images: int, log=print, chunk: int = 256):
  """Score `num_images` pool images with ``config.oracle`` and write OUT, holding OUT's folder lock.

  The chat oracle raises ChatOracleError (nothing written to OUT) when its answer rate is below
  ``oracle.min_answer_rate``; its complete answers stay cached for the re-run.
  """
  from jaxdisent.oracles import KINDS  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.lock import WorkdirBusyError, workdir_lock  # pylint: disable=g-import-not-at-top
  if num_images < 1:
    raise ValueError(f"--num_images must be positive, got {num_images}")
  kind = config.oracle.get("kind", "simulated")
  if kind not in KINDS:
    raise ValueError(f"unknown oracle.kind {kind!r}; use one of {KINDS}")
  if kind == "statistical":
    raise ValueError("the statistical oracle has no scores: it reads the model's own codes "
                     "during training; use --config.oracle.kind=simulated, labels or chat")
  if os.path.isdir(out):
    raise ValueError(f"--out={out} is a directory; name the scores file, e.g. "
                     f"--out={os.path.join(out, 'scores.npz')}")
  if kind == "chat":  # bad client settings fail before anything is locked or built
    from jaxdisent.oracles.chat import ChatSettings  # pylint: disable=g-import-not-at-top
    ChatSettings.from_config(config.oracle).check()
  folder = os.path.dirname(os.path.abspath(out))
  try:
    with workdir_lock(folder, f"writing oracle scores {os.path.basename(out)}"):
      return _score_and_write(config, out, num_images, log, chunk)
  except WorkdirBusyError as error:
    raise WorkdirBusyError(f"{error} (launch.oracle locks the folder of --out: pick another "
                           "folder for --out to run two oracles at once)") from None


def _score_and_write(config, out, num_images, log, chunk):
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tqdm  # pylint: disable=g-import-not-at-top
  from jaxdisent.data import make_source  # pylint: disable=g-import-not-at-top
  from jaxdisent.oracles import attribute_subset, oracle_scores  # pylint: disable=g-import-not-at-top
  from jaxdisent.oracles.base import Scores  # pylint: disable=g-import-not-at-top
  source = make_source(config.data, "graph")
  count = min(num_images, source.pool_size)
  index = np.arange(count)
  names = attribute_subset(source, config.oracle)
  kind = config.oracle.get("kind", "simulated")
  meta = {"dataset": source.name, "dataset_fingerprint": source.fingerprint()}
  if kind == "chat":
    from jaxdisent.oracles.chat import ChatOracle, ChatSettings, check_answer_rate  # pylint: disable=g-import-not-at-top
    settings = ChatSettings.from_config(config.oracle)
    if not settings.cache_dir:
      settings.cache_dir = out + ".cache"
    chat = ChatOracle(settings, names, log=log)
    parts = []
    with tqdm.tqdm(total=count, desc="oracle", unit="image", file=sys.stderr) as bar:
      for start in range(0, count, chunk):
        part = index[start:start + chunk]
        images = np.asarray(source.pool_images(part))
        parts.append(chat.score_images(images, part, progress=bar.update))
    problems = {k: v for p in parts for k, v in p.meta["problems"].items()}
    counts = {k: int(chat.counts[k]) for k in ("requests", "cached", "new_answers", "failures",
                                               "reused_failures")}
    scores = Scores(np.concatenate([p.scores for p in parts]),
                    np.concatenate([p.valid for p in parts]), names, index,
                    dict(meta, **{k: v for k, v in parts[0].meta.items() if k != "problems"},
                         problems=problems, **counts))
    log(f"[jaxdisent] oracle: {counts['cached']} answer(s) from the cache, {counts['new_answers']} "
        f"new, {counts['failures'] + counts['reused_failures']} incomplete "
        f"({counts['requests']} request(s) to {settings.base_url})")
    if problems:
      first = next(iter(problems))
      log(f"[jaxdisent] {len(problems)} image(s) had answer problems (invalid scores), e.g. "
          f"image {first}: {problems[first]}")
    check_answer_rate(scores, settings.min_answer_rate)  # nothing is written below the floor
  else:
    scores = oracle_scores(source, config.oracle, index)
    scores.meta.update(meta)
  scores.save(out)
  log(f"[jaxdisent] wrote {out}: {count} images x {len(names)} attributes, answer rate "
      f"{scores.answer_rate:.3f}")
  return scores


def main(argv) -> int:
  try:
    overrides, flags = parse_args(argv, {"config": None, "out": None, "num_images": "2000"})
    if not flags["out"]:
      raise UsageError("--out=PATH.npz is required (where the scores file goes)")
    config = load_config_from_args(flags["config"], overrides)
    num_images = parse_int("num_images", flags["num_images"], minimum=1)
  except (UsageError, FileNotFoundError, ValueError) as error:
    return fail(str(error))
  from jaxdisent.oracles.chat import ChatOracleError  # pylint: disable=g-import-not-at-top
  try:
    run_oracle(config, flags["out"], num_images, log=lambda *a: print(*a, file=sys.stderr))
  except (ChatOracleError, ValueError, OSError) as error:
    return fail(str(error))
  return 0


if __name__ == "__main__":
  sys.exit(run_main(main, doc=__doc__))
