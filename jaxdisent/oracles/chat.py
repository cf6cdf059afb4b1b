"""The chat oracle: an OpenAI-compatible chat-completions client that scores image attributes.

Standard library only (urllib, concurrent.futures, zlib for PNG). One request per image:

    POST {base_url}/chat/completions
    Authorization: Bearer $API_KEY           (from the environment variable ``api_key_env``;
                                              omitted when that variable is unset, e.g. Ollama)
    {"model": ..., "temperature": 0,
     "messages": [{"role": "user", "content": [
         {"type": "text", "text": PROMPT},
         {"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}]}],
     "response_format": {"type": "json_schema", "json_schema": {"name": "attribute_scores",
         "strict": true, "schema": {one number property per attribute, all required,
                                    additionalProperties false}}}}

The prompt (our choice; GEM does not publish its prompt) names every attribute and the 0-10 scale.
Behaviour (each tested against a stub server):

* retries: up to ``max_retries`` more attempts on connection errors, timeouts and HTTP 408, 409,
  429, 5xx; the wait honours ``retry-after-ms`` / ``Retry-After`` (seconds), otherwise
  ``min(0.5 * 2**attempt, max_backoff_s)`` seconds times a jitter in [0.75, 1]; after the last
  attempt a :class:`ChatOracleError` names the endpoint, the status and the fix;
* other HTTP errors (400, 401, 403, 404, ...) fail at once with the server's message;
* the answer is ``choices[0].message.content``; a refusal, ``finish_reason == 'length'``, text that
  is not a JSON object (code fences and prose around one object are tolerated), missing attributes
  or values that are not numbers in [0, 10] do not stop the run: the affected scores are marked
  invalid and each problem is reported (``problems``, also in the scores file's meta);
* an on-disk cache keyed by sha256(PNG bytes + model + prompt + schema) holds every parsed answer,
  so a rerun (or a run after a crash) never pays twice for an image;
* ``concurrency`` requests in flight at once (a thread pool).
"""

from __future__ import annotations

import base64
import concurrent.futures
import dataclasses
import hashlib
import http.client
import json
import os
import random
import re
import socket
import struct
import time
import urllib.error
import urllib.request
import zlib

import numpy as np

from jaxdisent.oracles.base import SCALE_MAX, Scores

RETRY_STATUS = (408, 409, 429)
PROMPT_VERSION = "v1"


class ChatOracleError(RuntimeError):
  """The endpoint could not produce answers (unreachable, auth, exhausted retries)."""


def encode_png(image_HxWxC) -> bytes:
  """A float image in [0, 1] (H, W, 1 or 3) as PNG bytes (8-bit grey or RGB), stdlib only."""
  image = np.asarray(image_HxWxC)
  if image.ndim != 3 or image.shape[-1] not in (1, 3):
    raise ValueError(f"image must be (H, W, 1) or (H, W, 3), got {image.shape}")
  pixels = np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)
  height, width, channels = pixels.shape
  raw = b"".join(b"\x00" + pixels[r].tobytes() for r in range(height))

  def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

  header = struct.pack(">IIBBBBB", width, height, 8, 0 if channels == 1 else 2, 0, 0, 0)
  return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6))
          + chunk(b"IEND", b""))


def build_prompt(attributes) -> str:
  lines = "\n".join(f"- {name}" for name in attributes)
  return (f"Rate each attribute of the image on a scale from 0 (absent / lowest) to "
          f"{int(SCALE_MAX)} (clearly present / highest). Attributes:\n{lines}\n"
          "Answer with a JSON object mapping every attribute name to a number from 0 to "
          f"{int(SCALE_MAX)}, and nothing else.")


def response_schema(attributes) -> dict:
  return {"type": "object",
          "properties": {a: {"type": "number", "minimum": 0, "maximum": SCALE_MAX}
                         for a in attributes},
          "required": list(attributes), "additionalProperties": False}


def parse_answer(content, attributes):
  """(scores list, valid list, problems list) from the model's reply text; never raises."""
  n = len(attributes)
  if not isinstance(content, str) or not content.strip():
    return [float("nan")] * n, [False] * n, ["empty answer"]
  text = content.strip()
  fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
  if fenced:
    text = fenced.group(1).strip()
  try:
    data = json.loads(text)
  except json.JSONDecodeError:
    start, end = text.find("{"), text.rfind("}")
    try:
      data = json.loads(text[start:end + 1]) if 0 <= start < end else None
    except json.JSONDecodeError:
      data = None
  if not isinstance(data, dict):
    return [float("nan")] * n, [False] * n, [f"malformed answer (not a JSON object): {content[:80]!r}"]
  scores, valid, problems = [], [], []
  for name in attributes:
    value = data.get(name)
    if value is None:
      problems.append(f"missing attribute {name!r}")
    elif isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
      problems.append(f"attribute {name!r}: not a number ({value!r})")
      value = None
    elif not 0.0 <= float(value) <= SCALE_MAX:
      problems.append(f"attribute {name!r}: {value} outside [0, {SCALE_MAX:g}]")
      value = None
    scores.append(float("nan") if value is None else float(value))
    valid.append(value is not None)
  extra = sorted(set(data) - set(attributes))
  if extra:
    problems.append(f"ignored unknown attribute(s) {extra}")
  return scores, valid, problems


@dataclasses.dataclass
class ChatSettings:
  base_url: str
  model: str
  api_key_env: str = "OPENAI_API_KEY"
  timeout_s: float = 60.0
  max_retries: int = 2
  concurrency: int = 4
  cache_dir: str = ""
  max_backoff_s: float = 8.0
  use_json_schema: bool = True

  @classmethod
  def from_config(cls, oracle_config):
    return cls(base_url=oracle_config.get("base_url", ""), model=oracle_config.get("model", ""),
               api_key_env=oracle_config.get("api_key_env", "OPENAI_API_KEY"),
               timeout_s=float(oracle_config.get("timeout_s", 60.0)),
               max_retries=int(oracle_config.get("max_retries", 2)),
               concurrency=int(oracle_config.get("concurrency", 4)),
               cache_dir=oracle_config.get("cache_dir", "") or "",
               use_json_schema=bool(oracle_config.get("use_json_schema", True)))


class ChatOracle:
  """Scores images through an OpenAI-compatible endpoint; see the module docstring."""

  kind = "chat"

  def __init__(self, settings: ChatSettings, attributes, *, sleep=time.sleep):
    if not settings.base_url.startswith(("http://", "https://")):
      raise ValueError(f"oracle.base_url must start with http:// or https://, got "
                       f"{settings.base_url!r} (e.g. http://127.0.0.1:8000/v1 for vLLM)")
    if not settings.model:
      raise ValueError("oracle.model is empty; name the served model (e.g. gpt-4o, or the model "
                       "your vLLM / Ollama / llama.cpp server serves)")
    if settings.concurrency < 1 or settings.max_retries < 0 or settings.timeout_s <= 0:
      raise ValueError("oracle.concurrency must be >= 1, max_retries >= 0 and timeout_s > 0")
    self.settings = settings
    self.attributes = list(attributes)
    self.prompt = build_prompt(self.attributes)
    self.schema = response_schema(self.attributes)
    self.url = settings.base_url.rstrip("/") + "/chat/completions"
    self._sleep = sleep
    self.requests_made = 0
    self.prompt_hash = hashlib.sha256(
        json.dumps([PROMPT_VERSION, self.prompt, self.schema], sort_keys=True).encode()
    ).hexdigest()[:16]

  # ---- one request -------------------------------------------------------------------------

  def _body(self, png: bytes) -> dict:
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    body = {"model": self.settings.model, "temperature": 0,
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": self.prompt},
                {"type": "image_url", "image_url": {"url": url}}]}]}
    if self.settings.use_json_schema:
      body["response_format"] = {"type": "json_schema", "json_schema": {
          "name": "attribute_scores", "strict": True, "schema": self.schema}}
    return body

  def _headers(self) -> dict:
    headers = {"Content-Type": "application/json"}
    key = os.environ.get(self.settings.api_key_env, "") if self.settings.api_key_env else ""
    if key:
      headers["Authorization"] = f"Bearer {key}"
    return headers

  def _wait(self, attempt: int, headers) -> float:
    if headers is not None:
      ms = headers.get("retry-after-ms")
      seconds = headers.get("Retry-After")
      try:
        if ms is not None:
          return max(float(ms) / 1000.0, 0.0)
        if seconds is not None:
          return max(float(seconds), 0.0)
      except ValueError:
        pass  # an HTTP-date Retry-After: fall back to exponential backoff
    return min(0.5 * 2 ** attempt, self.settings.max_backoff_s) * random.uniform(0.75, 1.0)

  def post(self, body: dict) -> dict:
    """POST with retries; returns the decoded JSON response or raises ChatOracleError."""
    data = json.dumps(body).encode()
    last = ""
    for attempt in range(self.settings.max_retries + 1):
      request = urllib.request.Request(self.url, data=data, headers=self._headers(), method="POST")
      headers = None
      try:
        self.requests_made += 1
        with urllib.request.urlopen(request, timeout=self.settings.timeout_s) as response:
          payload = response.read()
        try:
          return json.loads(payload)
        except json.JSONDecodeError as error:
          raise ChatOracleError(f"{self.url} returned a response that is not JSON "
                                f"({payload[:120]!r}); is base_url an OpenAI-compatible "
                                "endpoint (it usually ends in /v1)?") from error
      except urllib.error.HTTPError as error:
        detail = error.read()[:300].decode(errors="replace")
        if error.code not in RETRY_STATUS and error.code < 500:
          hint = (f" (set the API key in ${self.settings.api_key_env})"
                  if error.code in (401, 403) else "")
          raise ChatOracleError(f"{self.url} refused the request: HTTP {error.code} {detail}"
                                f"{hint}") from error
        last = f"HTTP {error.code} {detail}"
        headers = error.headers
      except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError,
              http.client.HTTPException) as error:
        reason = getattr(error, "reason", error)
        last = ("timed out after "
                f"{self.settings.timeout_s:g}s" if isinstance(reason, (socket.timeout, TimeoutError))
                else f"connection failed: {reason}")
      if attempt < self.settings.max_retries:
        self._sleep(self._wait(attempt, headers))
    raise ChatOracleError(
        f"chat endpoint {self.url} failed after {self.settings.max_retries + 1} attempt(s): "
        f"{last}. Check that the server is running and oracle.base_url is right; answers already "
        "received are cached, so re-running resumes")

  # ---- one image, with the cache -----------------------------------------------------------

  def cache_key(self, png: bytes) -> str:
    return hashlib.sha256(png + self.settings.model.encode() + self.prompt_hash.encode()).hexdigest()

  def _cache_path(self, key):
    return os.path.join(self.settings.cache_dir, key[:2], key + ".json") if self.settings.cache_dir \
        else None

  def score_png(self, png: bytes):
    """(scores, valid, problems) for one PNG image."""
    key = self.cache_key(png)
    path = self._cache_path(key)
    if path and os.path.exists(path):
      with open(path) as f:
        cached = json.load(f)
      return cached["scores"], cached["valid"], cached["problems"]
    response = self.post(self._body(png))
    try:
      choice = response["choices"][0]
      message = choice.get("message") or {}
      content, refusal = message.get("content"), message.get("refusal")
      finish = choice.get("finish_reason")
    except (KeyError, IndexError, TypeError, AttributeError):
      content, refusal, finish = None, None, None
      scores, valid, problems = parse_answer(None, self.attributes)
      problems = [f"response without choices[0].message: {json.dumps(response)[:120]}"]
    else:
      if refusal:
        scores, valid, problems = parse_answer(None, self.attributes)
        problems = [f"refused: {str(refusal)[:120]}"]
      else:
        scores, valid, problems = parse_answer(content, self.attributes)
        if finish == "length":
          problems.append("answer cut off (finish_reason='length')")
    scores = [None if not v else s for s, v in zip(scores, valid)]  # JSON has no NaN
    if path:
      os.makedirs(os.path.dirname(path), exist_ok=True)
      tmp = f"{path}.{os.getpid()}.tmp"
      with open(tmp, "w") as f:
        json.dump({"scores": scores, "valid": valid, "problems": problems}, f)
      os.replace(tmp, path)
    return scores, valid, problems

  def score_images(self, images_NxHxWxC, pool_index=None, progress=None) -> Scores:
    """Scores of N images (concurrently); problems per image are in ``meta['problems']``."""
    images = np.asarray(images_NxHxWxC)
    pngs = [encode_png(image) for image in images]
    results = [None] * len(pngs)
    with concurrent.futures.ThreadPoolExecutor(self.settings.concurrency) as pool:
      futures = {pool.submit(self.score_png, png): i for i, png in enumerate(pngs)}
      try:
        for future in concurrent.futures.as_completed(futures):
          results[futures[future]] = future.result()
          if progress is not None:
            progress(1)
      except BaseException:
        for future in futures:
          future.cancel()
        raise
    scores = np.array([[np.nan if s is None else s for s in r[0]] for r in results], np.float32)
    valid = np.array([r[1] for r in results], bool).reshape(len(results), len(self.attributes))
    problems = {int(i if pool_index is None else pool_index[i]): r[2]
                for i, r in enumerate(results) if r[2]}
    meta = {"oracle": "chat", "model": self.settings.model, "base_url": self.settings.base_url,
            "prompt_hash": self.prompt_hash, "problems": problems}
    return Scores(scores.reshape(len(results), len(self.attributes)), valid, self.attributes,
                  pool_index, meta)
