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

``response_format`` is left out with ``use_json_schema=False`` (servers that refuse it: some Ollama
and llama.cpp builds); the prompt alone asks for the JSON object and the parser below reads it.
The prompt (our choice; GEM does not publish its prompt) names every attribute and the 0-10 scale.
Behaviour (each tested against a stub server):

* retries: up to ``max_retries`` more attempts on connection errors, timeouts, HTTP 408, 409, 429,
  5xx and an HTTP 200 whose body is ``{"error": ...}`` (e.g. "model is loading"); the wait honours
  ``retry-after-ms`` / ``Retry-After`` (seconds or an HTTP date), otherwise
  ``min(0.5 * 2**attempt, max_backoff_s)`` seconds times a jitter in [0.75, 1]. Waits of 1 s or
  more, and every wait the server asks for, are printed. A server that asks for more than
  ``max_wait_s`` is not waited for: a :class:`ChatOracleError` says so at once. After the last
  attempt a :class:`ChatOracleError` names the endpoint, the status and the fix;
* other HTTP errors (400, 401, 403, 404, ...) fail at once with the server's message;
* the answer is the text of ``choices[0].message.content`` (a string, a list of parts whose text
  parts are joined, or an already parsed object). Reasoning (``<think>...</think>``) is dropped, then the parser takes the
  LAST complete JSON object that holds the attribute keys (prose, braces and code fences around it
  are ignored); numbers and numeric strings ("7") in [0, 10] are scores;
* per-image problems (a refusal, ``finish_reason == 'length'`` (a cut-off answer: all its scores
  invalid), no JSON object, missing attributes, values that are not numbers or are outside
  [0, 10], no ``choices``) do not stop the run: the affected scores are marked invalid and each
  problem is reported (``problems``, also in the scores file's meta). ``check_answer_rate`` (used
  by launch/oracle.py) stops a run whose share of valid scores is below ``min_answer_rate`` and
  names the three most common problems;
* an on-disk cache under ``cache_dir`` keyed by sha256(base_url + model + prompt hash + sha256(PNG))
  holds only complete answers (every attribute valid, not refused, not cut off), so a rerun (or a
  run after a crash) never pays twice for an image, and a rerun against another endpoint or model
  asks again. Incomplete answers are kept apart (``failures/``) for inspection and are asked again
  on the next run (``retry_failed=True``, the default); ``retry_failed=False`` reuses them;
* ``concurrency`` requests in flight at once (a thread pool).
"""

from __future__ import annotations

import base64
import collections
import concurrent.futures
import dataclasses
import email.utils
import hashlib
import http.client
import json
import os
import random
import re
import socket
import struct
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib

import numpy as np

from jaxdisent.oracles.base import SCALE_MAX, Scores

RETRY_STATUS = (408, 409, 429)
PROMPT_VERSION = "v1"
CACHE_VERSION = "v2"  # v2: keyed by base_url too; only complete answers under answers/
# Problems that leave every attribute's score usable (the answer is still complete).
BENIGN_PROBLEMS = ("unknown attributes ignored",)
MAX_ANSWER_CHARS = 20_000  # the tail of a reply searched for the JSON object


class ChatOracleError(RuntimeError):
  """The endpoint could not produce answers (unreachable, auth, exhausted retries, too few answers)."""


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


# ---- reading an answer ---------------------------------------------------------------------------

_THOUGHTS = re.compile(r"<(think|thinking|reasoning)>.*?</\1\s*>", re.S | re.I)
_OPEN_THOUGHT = re.compile(r"<(think|thinking|reasoning)>", re.I)
_CLOSE_THOUGHT = re.compile(r"</(think|thinking|reasoning)\s*>", re.I)


def answer_text(content):
  """The reply's text: a string as is, a list of parts -> its text parts joined; else None."""
  if isinstance(content, str):
    return content
  if isinstance(content, dict):  # a server that returns the structured answer already parsed
    return json.dumps(content)
  if isinstance(content, list):
    texts = []
    for part in content:
      if isinstance(part, str):
        texts.append(part)
      elif (isinstance(part, dict) and isinstance(part.get("text"), str)
            and str(part.get("type", "text")).lower() not in ("reasoning", "thinking")):
        texts.append(part["text"])
    return "\n".join(texts)
  return None


def strip_thoughts(text: str) -> str:
  """Drop reasoning: closed ``<think>...</think>`` blocks, an unclosed one to the end, and (chat
  templates that open the block themselves) everything before a lone closing tag."""
  text = _THOUGHTS.sub(" ", text)
  closing = list(_CLOSE_THOUGHT.finditer(text))
  if closing:
    text = text[closing[-1].end():]
  opening = _OPEN_THOUGHT.search(text)
  if opening:
    text = text[:opening.start()]
  return text


def json_objects(text: str):
  """Every complete JSON object in `text` as (start, dict), nested ones included, in text order.

  Only the last ``MAX_ANSWER_CHARS`` characters are searched (the answer ends the reply; this
  bounds the time on a degenerate reply of braces).
  """
  decoder = json.JSONDecoder()
  text = text[-MAX_ANSWER_CHARS:]
  found = []
  for match in re.finditer(r'\{(?=\s*["}])', text):  # an object starts with {"key" or {}
    try:
      value, _ = decoder.raw_decode(text, match.start())
    except (ValueError, RecursionError):  # not JSON, or nested deeper than Python's stack
      continue
    if isinstance(value, dict):
      found.append((match.start(), value))
  return found


def _lookup(data: dict, name: str):
  if name in data:
    return True, data[name]
  folded = {str(k).strip().lower(): k for k in data}
  key = folded.get(name.strip().lower())
  return (True, data[key]) if key is not None else (False, None)


def _as_score(value):
  """A finite float from a number or a numeric string ("7", " 7.5 "); None otherwise."""
  if isinstance(value, bool):
    return None
  if not isinstance(value, (int, float, str)):
    return None
  try:
    number = float(value.strip() if isinstance(value, str) else value)
  except (ValueError, OverflowError):  # not numeric, or an integer too large for a float
    return None
  return number if np.isfinite(number) else None


def _choose(objects, attributes):
  """The last object holding every attribute key; else the one holding most of them (last wins)."""
  best, best_count = None, 0
  for _, data in objects:
    count = sum(_lookup(data, a)[0] for a in attributes)
    if count == len(attributes):
      best, best_count = data, count
    elif 0 < count >= best_count and best_count < len(attributes):
      best, best_count = data, count
  return best


def problem_kind(problem: str) -> str:
  """The stable part of a problem message (the text before its first ': ')."""
  return problem.split(": ", 1)[0]


def parse_answer(content, attributes):
  """(scores list, valid list, problems list) from the model's reply; never raises.

  Problems are ``"kind: detail"`` strings (``problem_kind`` reads the kind).
  """
  n = len(attributes)
  text = answer_text(content)
  if text is None or not text.strip():
    return [float("nan")] * n, [False] * n, ["empty answer"]
  data = _choose(json_objects(strip_thoughts(text)), attributes)
  if data is None:
    return ([float("nan")] * n, [False] * n,
            [f"malformed answer (no JSON object with the attribute keys): {text.strip()[:80]!r}"])
  scores, valid, problems = [], [], []
  for name in attributes:
    present, raw = _lookup(data, name)
    value = _as_score(raw) if present else None
    if not present:
      problems.append(f"missing attribute: {name!r}")
    elif value is None:
      problems.append(f"not a number: {name!r} = {raw!r}"[:120])
    elif not 0.0 <= value <= SCALE_MAX:
      problems.append(f"outside 0-{SCALE_MAX:g}: {name!r} = {raw!r}")
      value = None
    scores.append(float("nan") if value is None else value)
    valid.append(value is not None)
  known = {a.strip().lower() for a in attributes}
  extra = sorted(str(k) for k in data if str(k).strip().lower() not in known)
  if extra:
    problems.append(f"{BENIGN_PROBLEMS[0]}: {extra}"[:160])
  return scores, valid, problems


def is_complete(valid, problems) -> bool:
  """An answer worth caching: every attribute valid and no problem but benign ones."""
  return all(valid) and all(problem_kind(p) in BENIGN_PROBLEMS for p in problems)


def check_answer_rate(scores: Scores, floor: float) -> None:
  """ChatOracleError if the share of valid scores is below `floor`, naming the 3 commonest problems."""
  rate = scores.answer_rate
  if rate >= floor:
    return
  counts, examples = collections.Counter(), {}
  for problems in scores.meta.get("problems", {}).values():
    for problem in problems:
      kind, _, detail = problem.partition(": ")
      examples.setdefault(kind, detail)
    counts.update({problem_kind(p) for p in problems})
  top = "; ".join(f"{kind} ({count} image(s)" + (f", e.g. {examples[kind][:120]}" if examples[kind]
                                                 else "") + ")"
                  for kind, count in counts.most_common(3)) or "none reported"
  raise ChatOracleError(
      f"answer rate {rate:.3f} ({int(scores.valid.sum())} of {scores.valid.size} scores valid) is "
      f"below oracle.min_answer_rate={floor:g}; most common problems: {top}. Fix the server or "
      "model (for Ollama / llama.cpp try --config.oracle.use_json_schema=false) and re-run: "
      "complete answers are cached and the failed images are asked again; or lower "
      "--config.oracle.min_answer_rate")


# ---- settings ------------------------------------------------------------------------------------

def _as_bool(name, value) -> bool:
  if isinstance(value, (bool, np.bool_)):
    return bool(value)
  if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
    return value.strip().lower() in ("true", "1")
  raise ValueError(f"oracle.{name}={value!r} must be true or false")


@dataclasses.dataclass
class ChatSettings:
  """The chat client's settings; each field is the config key ``oracle.<field>`` (same default)."""

  base_url: str
  model: str
  api_key_env: str = "OPENAI_API_KEY"
  timeout_s: float = 60.0
  max_retries: int = 2
  concurrency: int = 4
  cache_dir: str = ""
  max_backoff_s: float = 8.0
  max_wait_s: float = 120.0     # longest server-requested wait (Retry-After) we sit through
  use_json_schema: bool = True
  retry_failed: bool = True     # ask again for images whose last answer was incomplete
  min_answer_rate: float = 0.5  # launch/oracle.py fails below this share of valid scores

  @classmethod
  def from_config(cls, oracle_config):
    """Read every field from ``oracle_config`` (a missing key takes the field's default)."""
    values = {}
    for field in dataclasses.fields(cls):
      default = field.default if field.default is not dataclasses.MISSING else ""
      value = oracle_config.get(field.name, default)
      if field.type in ("float", float):
        try:
          value = float(value)
        except (TypeError, ValueError):
          raise ValueError(f"oracle.{field.name}={value!r} must be a number") from None
      elif field.type in ("int", int):
        try:
          whole = not isinstance(value, bool) and float(value).is_integer()
        except (TypeError, ValueError, OverflowError):
          whole = False
        if not whole:
          raise ValueError(f"oracle.{field.name}={value!r} must be an integer")
        value = int(float(value))
      elif field.type in ("bool", bool):
        value = _as_bool(field.name, value)
      else:
        value = "" if value is None else str(value)
      values[field.name] = value
    return cls(**values)

  def check(self) -> None:
    if not self.base_url.startswith(("http://", "https://")):
      raise ValueError(f"oracle.base_url must start with http:// or https://, got "
                       f"{self.base_url!r} (e.g. http://127.0.0.1:8000/v1 for vLLM)")
    if not self.model:
      raise ValueError("oracle.model is empty; name the served model (e.g. gpt-4o, or the model "
                       "your vLLM / Ollama / llama.cpp server serves)")
    for name, ok, rule in (
        ("concurrency", self.concurrency >= 1, ">= 1"),
        ("max_retries", self.max_retries >= 0, ">= 0"),
        ("timeout_s", self.timeout_s > 0, "> 0 (seconds)"),
        ("max_backoff_s", self.max_backoff_s >= 0, ">= 0 (seconds)"),
        ("max_wait_s", self.max_wait_s >= 0, ">= 0 (seconds)"),
        ("min_answer_rate", 0.0 <= self.min_answer_rate <= 1.0, "in [0, 1] (0 accepts any run)")):
      if not ok:  # NaN fails every comparison, so it is refused too
        raise ValueError(f"oracle.{name}={getattr(self, name)!r} must be {rule}")


# ---- the client ----------------------------------------------------------------------------------

class ChatOracle:
  """Scores images through an OpenAI-compatible endpoint; see the module docstring."""

  kind = "chat"

  def __init__(self, settings: ChatSettings, attributes, *, sleep=time.sleep, log=None):
    settings.check()
    attributes = [str(a) for a in attributes]
    repeated = sorted({a for a in attributes if attributes.count(a) > 1})
    if not attributes or repeated:
      raise ValueError(f"the chat oracle needs distinct attribute names, got {attributes}; list "
                       "each attribute once")
    self.settings = settings
    self.attributes = attributes
    self.prompt = build_prompt(self.attributes)
    self.schema = response_schema(self.attributes)
    self.base_url = settings.base_url.rstrip("/")
    self.url = self.base_url + "/chat/completions"
    self._sleep = sleep
    self._log = log if log is not None else (lambda text: print(text, file=sys.stderr, flush=True))
    self._count_lock = threading.Lock()
    self.counts = collections.Counter()  # requests, cached, new_answers, failures, reused_failures
    self.prompt_hash = hashlib.sha256(
        json.dumps([PROMPT_VERSION, self.prompt, self.schema], sort_keys=True).encode()
    ).hexdigest()[:16]

  @property
  def requests_made(self) -> int:
    return self.counts["requests"]

  def _count(self, name):
    with self._count_lock:
      self.counts[name] += 1

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

  @staticmethod
  def requested_wait(headers):
    """(seconds, header text) the server asks us to wait, from retry-after-ms / Retry-After."""
    if headers is None:
      return None, ""
    ms, seconds = headers.get("retry-after-ms"), headers.get("Retry-After")
    try:
      if ms is not None:
        return max(float(ms) / 1000.0, 0.0), f"retry-after-ms: {ms}"
    except ValueError:
      pass
    if seconds is None:
      return None, ""
    try:
      return max(float(seconds), 0.0), f"Retry-After: {seconds}"
    except ValueError:
      pass
    try:
      when = email.utils.parsedate_to_datetime(seconds)
    except (TypeError, ValueError, IndexError):
      return None, ""  # unreadable: exponential backoff
    return max(when.timestamp() - time.time(), 0.0), f"Retry-After: {seconds}"

  def _wait(self, attempt: int, headers, what: str) -> float:
    """Seconds to wait before the next attempt; ChatOracleError past ``max_wait_s``."""
    requested, source = self.requested_wait(headers)
    total = self.settings.max_retries + 1
    if requested is not None:
      if requested > self.settings.max_wait_s:
        raise ChatOracleError(
            f"{self.url} answered {what} and asks to wait {requested:g} s ({source}) before "
            f"retrying, more than oracle.max_wait_s={self.settings.max_wait_s:g}; re-run later "
            "(answers already received are cached) or raise --config.oracle.max_wait_s")
      wait = requested
    else:
      wait = min(0.5 * 2 ** attempt, self.settings.max_backoff_s) * random.uniform(0.75, 1.0)
      source = "backoff"
    if requested is not None or wait >= 1.0:
      self._log(f"[jaxdisent] oracle: {what} from {self.url}; waiting {wait:.1f} s ({source}) "
                f"before attempt {attempt + 2}/{total}")
    return wait

  def post(self, body: dict) -> dict:
    """POST with retries; returns the decoded JSON response or raises ChatOracleError."""
    data = json.dumps(body).encode()
    last = what = ""
    for attempt in range(self.settings.max_retries + 1):
      request = urllib.request.Request(self.url, data=data, headers=self._headers(), method="POST")
      headers = None
      try:
        self._count("requests")
        with urllib.request.urlopen(request, timeout=self.settings.timeout_s) as response:
          payload, headers, status = response.read(), response.headers, response.status
        try:
          decoded = json.loads(payload)
        except json.JSONDecodeError as error:
          raise ChatOracleError(f"{self.url} returned a response that is not JSON "
                                f"({payload[:120]!r}); is base_url an OpenAI-compatible "
                                "endpoint (it usually ends in /v1)?") from error
        if not (isinstance(decoded, dict) and decoded.get("error") and not decoded.get("choices")):
          return decoded
        # HTTP 200 with {"error": ...} (e.g. Ollama / LiteLLM while a model loads): like a 5xx
        error_body = decoded["error"]
        message = (error_body.get("message", error_body) if isinstance(error_body, dict)
                   else error_body)
        what = f"HTTP {status} with an error body"
        last = f"{what}: {str(message)[:200]}"
      except urllib.error.HTTPError as error:
        detail = error.read()[:300].decode(errors="replace")
        if error.code not in RETRY_STATUS and error.code < 500:
          hint = ""
          if error.code in (401, 403):
            hint = f" (set the API key in ${self.settings.api_key_env})"
          elif error.code == 404:
            hint = (" (check oracle.base_url, which usually ends in /v1, and that the server "
                    f"serves oracle.model={self.settings.model!r})")
          elif self.settings.use_json_schema and re.search(r"response_format|json_schema", detail,
                                                           re.I):
            hint = (" (this server refuses structured output: add "
                    "--config.oracle.use_json_schema=false)")
          raise ChatOracleError(f"{self.url} refused the request: HTTP {error.code} {detail}"
                                f"{hint}") from error
        what = f"HTTP {error.code}"
        last = f"{what} {detail}"
        headers = error.headers
      except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError,
              http.client.HTTPException) as error:
        reason = getattr(error, "reason", error)
        last = what = ("timed out after "
                       f"{self.settings.timeout_s:g}s"
                       if isinstance(reason, (socket.timeout, TimeoutError))
                       else f"connection failed: {reason}")
      if attempt < self.settings.max_retries:
        self._sleep(self._wait(attempt, headers, what))
    raise ChatOracleError(
        f"chat endpoint {self.url} failed after {self.settings.max_retries + 1} attempt(s): "
        f"{last}. Check that the server is running and oracle.base_url is right (a model still "
        "loading: raise --config.oracle.max_retries); answers already received are cached, so "
        "re-running resumes")

  # ---- one image, with the cache -----------------------------------------------------------

  def cache_key(self, png: bytes) -> str:
    """sha256 of (cache version, base_url, model, prompt hash, sha256 of the PNG)."""
    record = [CACHE_VERSION, self.base_url, self.settings.model, self.prompt_hash,
              hashlib.sha256(png).hexdigest()]
    return hashlib.sha256(json.dumps(record).encode()).hexdigest()

  def _cache_path(self, kind: str, key: str):
    if not self.settings.cache_dir:
      return None
    return os.path.join(self.settings.cache_dir, kind, key[:2], key + ".json")

  def _read(self, path, complete: bool):
    """A cached (scores, valid, problems), or None when absent or not a well-formed entry."""
    if not path or not os.path.exists(path):
      return None
    try:
      with open(path) as f:
        entry = json.load(f)
      scores, valid, problems = entry["scores"], entry["valid"], entry["problems"]
      n = len(self.attributes)
      if (len(scores) != n or len(valid) != n or not isinstance(problems, list)
          or is_complete(valid, problems) != complete):
        return None
      scores = [float("nan") if s is None else float(s) for s in scores]
      return scores, [bool(v) for v in valid], [str(p) for p in problems]
    except (OSError, ValueError, KeyError, TypeError):
      return None  # unreadable (e.g. edited by hand): ask again and overwrite it

  def _write(self, path, scores, valid, problems, png):
    if not path:
      return
    entry = {"scores": [s if v else None for s, v in zip(scores, valid)],  # JSON has no NaN
             "valid": valid, "problems": problems, "base_url": self.base_url,
             "model": self.settings.model, "prompt_hash": self.prompt_hash,
             "image_sha256": hashlib.sha256(png).hexdigest(), "time": time.time()}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(tmp, "w") as f:
      json.dump(entry, f)
    os.replace(tmp, path)

  def read_response(self, response):
    """(scores, valid, problems) from a decoded chat-completions response."""
    try:
      choice = response["choices"][0]
      message = choice.get("message") or {}
      content, refusal = message.get("content"), message.get("refusal")
      finish = choice.get("finish_reason")
    except (KeyError, IndexError, TypeError, AttributeError):
      scores, valid, _ = parse_answer(None, self.attributes)
      return scores, valid, [f"no choices[0].message: {json.dumps(response)[:120]}"]
    if refusal:
      scores, valid, _ = parse_answer(None, self.attributes)
      return scores, valid, [f"refused: {str(refusal)[:120]}"]
    if finish == "length":  # the answer may stop mid-object: none of it is trusted
      scores, valid, _ = parse_answer(None, self.attributes)
      return scores, valid, ["cut off: finish_reason='length' (the server's output token limit; "
                             "reasoning models need a higher one)"]
    return parse_answer(content, self.attributes)

  def score_png(self, png: bytes):
    """(scores, valid, problems) for one PNG image."""
    key = self.cache_key(png)
    answer_path, failure_path = self._cache_path("answers", key), self._cache_path("failures", key)
    cached = self._read(answer_path, complete=True)
    if cached is not None:
      self._count("cached")
      return cached
    if not self.settings.retry_failed:
      failed = self._read(failure_path, complete=False)
      if failed is not None:
        self._count("reused_failures")
        return failed
    scores, valid, problems = self.read_response(self.post(self._body(png)))
    if is_complete(valid, problems):
      self._count("new_answers")
      self._write(answer_path, scores, valid, problems, png)
      if failure_path and os.path.exists(failure_path):
        os.remove(failure_path)
    else:
      self._count("failures")
      self._write(failure_path, scores, valid, problems, png)
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
    shape = (len(results), len(self.attributes))
    scores = np.array([r[0] for r in results], np.float32).reshape(shape)
    valid = np.array([r[1] for r in results], bool).reshape(shape)
    problems = {int(i if pool_index is None else pool_index[i]): r[2]
                for i, r in enumerate(results) if r[2]}
    meta = {"oracle": "chat", "model": self.settings.model, "base_url": self.base_url,
            "prompt_hash": self.prompt_hash, "use_json_schema": self.settings.use_json_schema,
            "problems": problems}
    return Scores(scores, valid, self.attributes, pool_index, meta)
