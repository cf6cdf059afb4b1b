"""The chat oracle against a scripted OpenAI-compatible stub server on 127.0.0.1.

Each quirk of real servers is a scripted action of the stub: good answers, prose / reasoning
around the JSON, content as a list of parts, HTTP 200 with an {"error": ...} body, refusals,
cut-off answers, 429 / 5xx with Retry-After, slow replies. Nothing here sleeps for real more than
1 s (waits go through an injected sleep).
"""

import email.utils
import fcntl
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import zlib

import numpy as np
import pytest

from jaxdisent.oracles.base import Scores
from jaxdisent.oracles.chat import (ChatOracle, ChatOracleError, ChatSettings, check_answer_rate,
                                    encode_png, parse_answer, strip_thoughts)

from conftest import ROOT

ATTRS = ["shape", "scale", "posX"]


def _attributes_in(body):
  """The attribute names the client's prompt lists (lines '- name')."""
  text = body["messages"][0]["content"][0]["text"]
  return [line[2:] for line in text.splitlines() if line.startswith("- ")]


class Stub:
  """Serves scripted replies in order; the last one repeats. Records every request body.

  Actions: ("ok", content[, finish_reason]) with content a str, a dict (sent as JSON text) or a
  list of content parts; ("auto",) answers every attribute the prompt names; ("refusal", text);
  ("error_body", message) is an HTTP 200 {"error": {"message": ...}}; ("status", code[, headers[,
  body bytes]]);
  ("sleep", seconds) then a good answer.
  """

  def __init__(self, script):
    self.script = list(script)
    self.requests = []
    self.lock = threading.Lock()
    stub = self

    class Handler(http.server.BaseHTTPRequestHandler):
      def log_message(self, *args):
        pass

      def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with stub.lock:
          stub.requests.append({"path": self.path, "body": body,
                                "auth": self.headers.get("Authorization")})
          action = stub.script.pop(0) if len(stub.script) > 1 else stub.script[0]
        kind = action[0]
        if kind == "sleep":
          time.sleep(action[1])
          action = ("ok", {"shape": 1, "scale": 2, "posX": 3})
          kind = "ok"
        if kind == "auto":
          names = _attributes_in(body)
          action = ("ok", {name: i % 11 for i, name in enumerate(names)})
          kind = "ok"
        if kind in ("ok", "refusal"):
          message = {"role": "assistant", "content": None}
          if kind == "refusal":
            message["refusal"] = action[1]
          else:
            content = action[1]
            message["content"] = content if isinstance(content, (str, list)) else json.dumps(content)
          finish = action[2] if len(action) > 2 else "stop"
          reply = {"choices": [{"message": message, "finish_reason": finish}]}
          self._send(200, json.dumps(reply).encode())
        elif kind == "error_body":
          self._send(200, json.dumps({"error": {"message": action[1]}}).encode())
        elif kind == "status":
          payload = action[3] if len(action) > 3 else b'{"error": {"message": "scripted"}}'
          self._send(action[1], payload, action[2] if len(action) > 2 else {})

      def _send(self, code, payload, headers=None):
        try:
          self.send_response(code)
          for key, value in (headers or {}).items():
            self.send_header(key, value)
          self.send_header("Content-Type", "application/json")
          self.send_header("Content-Length", str(len(payload)))
          self.end_headers()
          self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
          pass

    self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
    self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
    self.thread.start()

  def close(self):
    self.server.shutdown()
    self.server.server_close()


@pytest.fixture
def stub():
  servers = []

  def make(script):
    servers.append(Stub(script))
    return servers[-1]
  yield make
  for s in servers:
    s.close()


def oracle(url, tmp_path=None, log=None, **kw):
  settings = dict(base_url=url, model="stub-model", timeout_s=2.0, max_retries=2, concurrency=2,
                  cache_dir=str(tmp_path / "cache") if tmp_path else "", api_key_env="GEM_TEST_KEY")
  settings.update(kw)
  return ChatOracle(ChatSettings(**settings), ATTRS, sleep=lambda s: None,
                    log=log if log is not None else (lambda text: None))


def cache_files(tmp_path, kind):
  root = tmp_path / "cache" / kind
  return sorted(str(p) for p in root.rglob("*.json")) if root.exists() else []


def images(n=3):
  rng = np.random.default_rng(0)
  return rng.uniform(size=(n, 8, 8, 1)).astype(np.float32)


def test_good_answers_request_format_and_cache(stub, tmp_path, monkeypatch):
  monkeypatch.setenv("GEM_TEST_KEY", "secret")
  server = stub([("ok", {"shape": 1, "scale": 5.5, "posX": 10})])
  chat = oracle(server.url, tmp_path)
  scores = chat.score_images(images(3), pool_index=np.array([4, 5, 6]))
  np.testing.assert_array_equal(scores.scores, [[1, 5.5, 10]] * 3)
  assert scores.valid.all() and scores.meta["problems"] == {}
  request = server.requests[0]
  assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer secret"
  content = request["body"]["messages"][0]["content"]
  assert content[1]["image_url"]["url"].startswith("data:image/png;base64,")
  assert all(a in content[0]["text"] for a in ATTRS) and "0" in content[0]["text"]
  schema = request["body"]["response_format"]["json_schema"]
  assert schema["strict"] and schema["schema"]["required"] == ATTRS
  assert schema["schema"]["additionalProperties"] is False
  assert len(cache_files(tmp_path, "answers")) == 3 and cache_files(tmp_path, "failures") == []
  # a rerun is answered from the cache: no new request
  rerun = oracle(server.url, tmp_path)
  again = rerun.score_images(images(3))
  np.testing.assert_array_equal(again.scores, scores.scores)
  assert len(server.requests) == 3 and rerun.counts["cached"] == 3
  # the cache is keyed by base_url: another endpoint (same model name) is asked again, and the
  # scores' meta names the endpoint that answered
  other = stub([("ok", {"shape": 2, "scale": 2, "posX": 2})])
  moved = oracle(other.url, tmp_path).score_images(images(3))
  assert len(other.requests) == 3 and moved.meta["base_url"] == other.url
  np.testing.assert_array_equal(moved.scores, [[2, 2, 2]] * 3)
  # ... and by model
  renamed = oracle(server.url, tmp_path, model="another-model")
  renamed.score_images(images(1))
  assert renamed.requests_made == 1 and len(server.requests) == 4


def test_malformed_and_missing_answers_are_invalid_and_reported(stub, tmp_path):
  server = stub([("ok", "I think the shape is round"),
                 ("ok", '```json\n{"shape": 2, "scale": 3}\n```'),
                 ("ok", {"shape": "big", "scale": 11, "posX": 4, "color": 1})])
  chat = oracle(server.url, tmp_path, concurrency=1)
  scores = chat.score_images(images(3))
  assert not scores.valid[0].any()
  np.testing.assert_array_equal(scores.valid[1], [True, True, False])
  np.testing.assert_array_equal(scores.valid[2], [False, False, True])
  assert np.isnan(scores.scores[~scores.valid]).all()
  problems = scores.meta["problems"]
  assert "malformed" in problems[0][0]
  assert any("missing attribute: 'posX'" in p for p in problems[1])
  assert any("not a number" in p for p in problems[2]) and any("outside" in p for p in problems[2])
  assert any("color" in p for p in problems[2])
  # incomplete answers are never cached as answers: kept apart, and asked again by default
  assert cache_files(tmp_path, "answers") == [] and len(cache_files(tmp_path, "failures")) == 3
  server.script = [("ok", {"shape": 4, "scale": 5, "posX": 6})]  # the endpoint is fixed
  fixed = oracle(server.url, tmp_path, concurrency=1)
  again = fixed.score_images(images(3))
  assert fixed.requests_made == 3 and again.valid.all() and again.meta["problems"] == {}
  np.testing.assert_array_equal(again.scores, [[4, 5, 6]] * 3)
  assert len(cache_files(tmp_path, "answers")) == 3 and cache_files(tmp_path, "failures") == []
  third = oracle(server.url, tmp_path)
  third.score_images(images(3))
  assert third.requests_made == 0


def test_retry_failed_false_reuses_incomplete_answers(stub, tmp_path):
  server = stub([("ok", "no idea")])
  oracle(server.url, tmp_path).score_images(images(2))
  assert len(server.requests) == 2
  server.script = [("ok", {"shape": 4, "scale": 5, "posX": 6})]
  lazy = oracle(server.url, tmp_path, retry_failed=False)
  again = lazy.score_images(images(2))
  assert lazy.requests_made == 0 and lazy.counts["reused_failures"] == 2
  assert not again.valid.any() and "malformed" in again.meta["problems"][0][0]


def test_error_body_refusal_and_cut_off_are_failures_not_answers(stub, tmp_path):
  # an HTTP 200 with {"error": ...} ("model is loading") is retried like a 5xx ...
  server = stub([("error_body", "model is loading"), ("ok", {"shape": 1, "scale": 2, "posX": 3})])
  waits = []
  chat = oracle(server.url, tmp_path)
  chat._sleep = waits.append
  s, v, p = chat.score_png(encode_png(images(1)[0]))
  assert v == [True] * 3 and p == [] and len(server.requests) == 2 and len(waits) == 1
  # ... and never becomes an answer: after the last attempt the run stops and nothing is cached
  loading = stub([("error_body", "model is loading")])
  with pytest.raises(ChatOracleError, match=r"after 3 attempt\(s\): HTTP 200 with an error body: "
                                            "model is loading"):
    oracle(loading.url, tmp_path / "other").score_png(encode_png(images(1)[0]))
  assert len(loading.requests) == 3 and not (tmp_path / "other" / "cache").exists()
  # a refusal and a cut-off answer (even one whose JSON looks whole) give invalid scores
  quirky = stub([("refusal", "I can't help with that"),
                 ("ok", '{"shape": 1, "scale": 2, "posX": 3', "length"),
                 ("ok", '{"shape": 1, "scale": 2, "posX": 3}', "length")])
  scores = oracle(quirky.url, tmp_path / "q", concurrency=1).score_images(images(3))
  assert not scores.valid.any()
  problems = scores.meta["problems"]
  assert problems[0] == ["refused: I can't help with that"]
  assert problems[1][0].startswith("cut off") and problems[2][0].startswith("cut off")
  assert cache_files(tmp_path / "q", "answers") == []
  assert len(cache_files(tmp_path / "q", "failures")) == 3


def test_answers_read_the_way_local_models_write_them(stub, tmp_path):
  server = stub([
      ("ok", 'Format: {like this}. {"shape": 9} draft, final: {"shape": 1, "scale": 2, "posX": 3}'),
      ("ok", '<think>maybe {"shape": 9, "scale": 9, "posX": 9}?</think>\n{"shape": 4, "scale": 5, '
             '"posX": 6}'),
      ("ok", [{"type": "text", "text": '{"shape": "7", "scale": " 8.5 ",'},
              {"type": "text", "text": '"posX": 10}'}]),
      ("ok", [{"type": "reasoning", "text": '{"shape": 9, "scale": 9, "posX": 9}'},
              {"type": "text", "text": '```json\n{"Shape": 0, "scale": 1, "posX": 2}\n```'}]),
      ("ok", '{"shape": 3, "scale": 3, "posX": 3}</think>{"shape": 2, "scale": 1, "posX": 0}')])
  scores = oracle(server.url, tmp_path, concurrency=1).score_images(images(5))
  assert scores.valid.all(), scores.meta["problems"]
  np.testing.assert_array_equal(scores.scores, [[1, 2, 3], [4, 5, 6], [7, 8.5, 10], [0, 1, 2],
                                                [2, 1, 0]])
  assert len(cache_files(tmp_path, "answers")) == 5


def test_429_honours_retry_after_then_succeeds(stub):
  server = stub([("status", 429, {"retry-after-ms": "300"}), ("ok", {"shape": 1, "scale": 1,
                                                                     "posX": 1})])
  waits = []
  chat = oracle(server.url, max_retries=2)
  chat._sleep = waits.append
  s, v, _ = chat.score_png(encode_png(images(1)[0]))
  assert v == [True] * 3 and waits == [0.3] and len(server.requests) == 2
  server2 = stub([("status", 429, {"Retry-After": "2"}), ("ok", {"shape": 1, "scale": 1,
                                                                 "posX": 1})])
  lines = []
  chat2 = oracle(server2.url, log=lines.append)
  chat2._sleep = waits.append
  chat2.score_png(encode_png(images(1)[0]))
  assert waits[-1] == 2.0
  assert len(lines) == 1 and "HTTP 429" in lines[0] and "waiting 2.0 s (Retry-After: 2)" in lines[0]
  # an HTTP date in Retry-After is a time to wait until
  when = email.utils.formatdate(time.time() + 30, usegmt=True)
  server3 = stub([("status", 503, {"Retry-After": when}), ("ok", {"shape": 1, "scale": 1,
                                                                  "posX": 1})])
  chat3 = oracle(server3.url)
  chat3._sleep = waits.append
  chat3.score_png(encode_png(images(1)[0]))
  assert 25 <= waits[-1] <= 31


def test_retry_after_beyond_the_cap_fails_clearly_without_waiting(stub):
  server = stub([("status", 429, {"Retry-After": "3600"})])
  waits, lines = [], []
  chat = oracle(server.url, max_wait_s=5, log=lines.append)
  chat._sleep = waits.append
  with pytest.raises(ChatOracleError, match=r"HTTP 429 and asks to wait 3600 s \(Retry-After: "
                                            r"3600\).*max_wait_s=5.*raise --config.oracle.max_wait_s"):
    chat.score_png(encode_png(images(1)[0]))
  assert waits == [] and len(server.requests) == 1
  # a real (short) wait within the cap: the client really sleeps what the server asked
  server2 = stub([("status", 429, {"retry-after-ms": "200"}), ("ok", {"shape": 1, "scale": 1,
                                                                      "posX": 1})])
  chat2 = ChatOracle(ChatSettings(base_url=server2.url, model="m", max_wait_s=1.0), ATTRS,
                     log=lines.append)
  began = time.monotonic()
  assert chat2.score_png(encode_png(images(1)[0]))[1] == [True] * 3
  assert time.monotonic() - began >= 0.2 and "waiting 0.2 s" in lines[-1]


def test_500s_retry_with_backoff_then_fail_clearly(stub):
  server = stub([("status", 500)])
  waits = []
  chat = oracle(server.url, max_retries=2)
  chat._sleep = waits.append
  with pytest.raises(ChatOracleError, match=r"failed after 3 attempt\(s\): HTTP 500"):
    chat.score_png(encode_png(images(1)[0]))
  assert len(server.requests) == 3 and len(waits) == 2
  assert 0.375 <= waits[0] <= 0.5 and 0.75 <= waits[1] <= 1.0  # min(0.5 * 2^n, 8) * [0.75, 1]


def test_non_retryable_status_fails_at_once(stub):
  server = stub([("status", 401)])
  with pytest.raises(ChatOracleError, match="HTTP 401.*GEM_TEST_KEY"):
    oracle(server.url).score_png(encode_png(images(1)[0]))
  assert len(server.requests) == 1
  missing = stub([("status", 404)])
  with pytest.raises(ChatOracleError, match="HTTP 404.*ends in /v1.*'stub-model'"):
    oracle(missing.url).score_png(encode_png(images(1)[0]))
  strict = stub([("status", 400, {}, b'{"error": "response_format json_schema is not supported"}')])
  with pytest.raises(ChatOracleError, match="HTTP 400.*not supported.*use_json_schema=false"):
    oracle(strict.url).score_png(encode_png(images(1)[0]))
  assert len(missing.requests) == 1 and len(strict.requests) == 1


def test_timeout_is_retried_then_reported(stub):
  server = stub([("sleep", 1.5)])
  chat = oracle(server.url, timeout_s=0.3, max_retries=1)
  chat._sleep = lambda s: None
  with pytest.raises(ChatOracleError, match="timed out after 0.3s"):
    chat.score_png(encode_png(images(1)[0]))
  assert len(server.requests) == 2


def test_unreachable_endpoint(tmp_path):
  with socket.socket() as s:  # a port nobody listens on
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  chat = oracle(f"http://127.0.0.1:{port}/v1", max_retries=1)
  chat._sleep = lambda s: None
  with pytest.raises(ChatOracleError, match=f"127.0.0.1:{port}.*connection failed"):
    chat.score_images(images(1))


def test_bad_settings():
  with pytest.raises(ValueError, match="base_url"):
    ChatOracle(ChatSettings(base_url="localhost:8000", model="m"), ATTRS)
  with pytest.raises(ValueError, match="oracle.model"):
    ChatOracle(ChatSettings(base_url="http://x/v1", model=""), ATTRS)
  for key, value, rule in [("max_wait_s", -1.0, ">= 0"), ("min_answer_rate", 1.5, r"in \[0, 1\]"),
                           ("min_answer_rate", float("nan"), r"in \[0, 1\]"),
                           ("concurrency", 0, ">= 1"), ("timeout_s", 0.0, "> 0"),
                           ("max_backoff_s", -2.0, ">= 0"), ("max_retries", -1, ">= 0")]:
    with pytest.raises(ValueError, match=f"oracle.{key}={value!r} must be {rule}"):
      ChatOracle(ChatSettings(base_url="http://x/v1", model="m", **{key: value}), ATTRS)
  with pytest.raises(ValueError, match=r"distinct attribute names.*'shape', 'shape'"):
    ChatOracle(ChatSettings(base_url="http://x/v1", model="m"), ["shape", "shape"])
  with pytest.raises(ValueError, match="oracle.use_json_schema='maybe' must be true or false"):
    ChatSettings.from_config({"base_url": "http://x/v1", "model": "m", "use_json_schema": "maybe"})
  with pytest.raises(ValueError, match="oracle.max_retries=2.5 must be an integer"):
    ChatSettings.from_config({"base_url": "http://x/v1", "model": "m", "max_retries": 2.5})


def test_png_encoder_roundtrip():
  image = np.random.default_rng(1).uniform(size=(5, 7, 3))
  png = encode_png(image)
  assert png[:8] == b"\x89PNG\r\n\x1a\n"
  idat = png[png.index(b"IDAT") + 4:png.index(b"IEND") - 8]
  raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(5, 1 + 7 * 3)
  np.testing.assert_array_equal(raw[:, 1:].reshape(5, 7, 3), np.round(image * 255).astype(np.uint8))


def test_parse_answer_never_raises():
  assert parse_answer(None, ATTRS)[1] == [False] * 3
  assert parse_answer([], ATTRS)[2] == ["empty answer"]
  assert parse_answer({"shape": 1, "scale": 2, "posX": 3}, ATTRS)[0] == [1.0, 2.0, 3.0]
  assert parse_answer("[1, 2, 3]", ATTRS)[1] == [False] * 3
  assert parse_answer("{{{ not json", ATTRS)[1] == [False] * 3
  s, v, p = parse_answer('Sure! {"shape": 0, "scale": 10, "posX": 3.5} hope that helps', ATTRS)
  assert v == [True] * 3 and s == [0.0, 10.0, 3.5] and p == []
  # the LAST complete object with the attribute keys wins, nested ones included
  s, v, p = parse_answer('{"shape": 1, "scale": 1, "posX": 1} no wait: {"answer": {"shape": 2, '
                         '"scale": 2, "posX": 2}}', ATTRS)
  assert s == [2.0, 2.0, 2.0] and p == []
  # a partial object is read as far as it goes
  s, v, p = parse_answer('{"shape": "7", "scale": "big"}', ATTRS)
  assert v == [True, False, False] and s[0] == 7.0
  assert p == ["not a number: 'scale' = 'big'", "missing attribute: 'posX'"]
  # numeric strings: NaN / inf / booleans are not scores
  s, v, p = parse_answer('{"shape": "nan", "scale": true, "posX": "1e400"}', ATTRS)
  assert v == [False] * 3 and len(p) == 3
  s, v, p = parse_answer('{"shape": 1' + '0' * 400 + ', "scale": 1, "posX": 1}', ATTRS)
  assert v == [False, True, True] and p[0].startswith("not a number: 'shape'")
  assert parse_answer("[" * 100_000 + '{"shape": 1}', ATTRS)[1] == [True, False, False]
  assert parse_answer("{" * 100_000, ATTRS)[1] == [False] * 3


def test_strip_thoughts():
  assert strip_thoughts("<think>a {x}</think>b") == " b"
  assert strip_thoughts("thoughts opened by the template {x}</think> b") == " b"
  assert strip_thoughts("b <think>unfinished {x}") == "b "
  assert strip_thoughts("<THINKING>a</THINKING>b<reasoning>c</reasoning>d") == " b d"


def test_answer_rate_floor_names_the_three_commonest_problems():
  problems = {0: ["malformed answer (no JSON object with the attribute keys): 'x'"],
              1: ["malformed answer (no JSON object with the attribute keys): 'y'"],
              2: ["refused: no"], 3: ["refused: no"], 4: ["cut off: finish_reason='length'"],
              5: ["missing attribute: 'posX'"]}
  scores = Scores(np.zeros((8, 3)), np.arange(24).reshape(8, 3) >= 15, ATTRS,
                  meta={"problems": problems})  # 9 of 24 valid: rate 0.375
  check_answer_rate(scores, 0.375)  # at the floor: accepted
  with pytest.raises(ChatOracleError) as error:
    check_answer_rate(scores, 0.5)
  message = str(error.value)
  assert "answer rate 0.375 (9 of 24 scores valid) is below oracle.min_answer_rate=0.5" in message
  assert "malformed answer (no JSON object with the attribute keys) (2 image(s)" in message
  assert "refused (2 image(s)" in message
  assert message.count("image(s)") == 3 and "\n" not in message


def _recording(config):
  """A view of a ConfigDict that records every key read from it."""

  class Recorder:
    read = []

    def get(self, key, default=None):
      self.read.append(key)
      return config.get(key, default)

    def __getitem__(self, key):
      self.read.append(key)
      return config[key]

    def __getattr__(self, key):
      self.read.append(key)
      return getattr(config, key)
  return Recorder()


@pytest.mark.parametrize("name", ["gem_dsprites", "gem_pendulum"])
def test_every_key_the_client_reads_exists_in_the_gem_configs(name):
  from launch.common import apply_overrides
  from jaxdisent.train.config import load_config
  config = load_config(os.path.join(ROOT, "configs", f"{name}.py"))
  view = _recording(config.oracle)
  settings = ChatSettings.from_config(view)
  missing = [key for key in view.read if key not in config.oracle]
  assert view.read and not missing, f"{name}.py lacks oracle keys {missing}"
  assert settings == ChatSettings(**{k: config.oracle[k] for k in view.read})
  # the README's advice for Ollama / llama.cpp, and every other client key, can be overridden
  overridden = apply_overrides(config, [("oracle.use_json_schema", "false"),
                                        ("oracle.max_wait_s", "30"),
                                        ("oracle.min_answer_rate", "0.25"),
                                        ("oracle.retry_failed", "false")])
  settings = ChatSettings.from_config(overridden.oracle)
  assert settings.use_json_schema is False and settings.max_wait_s == 30.0
  assert settings.min_answer_rate == 0.25 and settings.retry_failed is False


def _launch(argv):
  from launch.common import run_main
  from launch.oracle import main
  return run_main(main, argv)


@pytest.mark.parametrize("name", ["gem_dsprites", "gem_pendulum"])
def test_launch_oracle_without_json_schema(name, stub, tmp_path, capsys):
  from jaxdisent.oracles.base import load_scores
  server = stub([("auto",)])
  out = str(tmp_path / "scores.npz")
  argv = [f"--config={ROOT}/configs/{name}.py", f"--out={out}", "--num_images=3",
          "--config.oracle.kind=chat", f"--config.oracle.base_url={server.url}",
          "--config.oracle.model=stub-model", "--config.oracle.use_json_schema=false"]
  if name == "gem_dsprites":
    argv.append("--config.data.pool_size=64")
  assert _launch(argv) == 0, capsys.readouterr().err
  assert len(server.requests) == 3
  assert all("response_format" not in r["body"] for r in server.requests)
  names = _attributes_in(server.requests[0]["body"])
  scores = load_scores(out, attributes=names)
  assert scores.valid.all() and scores.meta["base_url"] == server.url
  np.testing.assert_array_equal(scores.scores, [[i % 11 for i in range(len(names))]] * 3)
  assert scores.meta["use_json_schema"] is False and scores.meta["new_answers"] == 3
  assert _launch(argv) == 0 and len(server.requests) == 3  # the rerun reads the cache
  assert "3 answer(s) from the cache, 0 new" in capsys.readouterr().err


def test_launch_oracle_below_the_answer_floor_exits_2_and_writes_nothing(stub, tmp_path, capsys):
  server = stub([("ok", "a red square"), ("ok", "a red square"), ("ok", "a red square"),
                 ("refusal", "no"), ("refusal", "no"), ("ok", '{"shape": 1', "length")])
  out = tmp_path / "scores.npz"
  argv = [f"--config={ROOT}/configs/gem_dsprites.py", f"--out={out}", "--num_images=6",
          "--config.data.pool_size=64", "--config.oracle.kind=chat",
          f"--config.oracle.base_url={server.url}", "--config.oracle.model=m",
          "--config.oracle.concurrency=1"]
  assert _launch(argv) == 2
  error = capsys.readouterr().err.strip().splitlines()[-1]
  assert error.startswith("[jaxdisent] error: answer rate 0.000 (0 of 30 scores valid) is below "
                          "oracle.min_answer_rate=0.5; most common problems: malformed answer")
  assert "(3 image(s)" in error and "refused (2 image(s)" in error and "cut off (1 image(s)" in error
  assert not out.exists()
  # the floor is a config key: 0 accepts the run (the file then says which scores are invalid)
  assert _launch(argv + ["--config.oracle.min_answer_rate=0"]) == 0
  assert out.exists() and len(server.requests) == 12  # the failures were asked again


def test_launch_oracle_takes_the_lock_of_its_out_folder(stub, tmp_path, capsys):
  server = stub([("auto",)])
  folder = tmp_path / "run"
  folder.mkdir()
  holder = subprocess.Popen(
      [sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | "
       "os.O_CREAT); fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
       str(folder / ".lock")], stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "held"
    argv = [f"--config={ROOT}/configs/gem_dsprites.py", f"--out={folder / 'scores.npz'}",
            "--num_images=2", "--config.data.pool_size=64", "--config.oracle.kind=chat",
            f"--config.oracle.base_url={server.url}", "--config.oracle.model=m"]
    assert _launch(argv) == 2
    error = capsys.readouterr().err
    assert "is in use by" in error and "another folder for --out" in error
    assert server.requests == [] and not (folder / "scores.npz").exists()
  finally:
    holder.kill()
    holder.wait()
  assert _launch(argv) == 0 and (folder / "scores.npz").exists()
  # the lock is taken, and dropped, by this process
  with open(folder / ".lock") as f:
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
  assert _launch([f"--config={ROOT}/configs/gem_dsprites.py", f"--out={folder}",
                  "--config.data.pool_size=64"]) == 2
  assert "is a directory" in capsys.readouterr().err


def test_scores_refuse_duplicate_names_and_values_off_the_scale(tmp_path):
  with pytest.raises(ValueError, match=r"attribute name\(s\) \['shape'\] appear more than once"):
    Scores(np.ones((2, 3)), np.ones((2, 3), bool), ["shape", "scale", "shape"])
  for bad in (10.5, -0.5, 100.0):
    values = np.array([[1.0, bad]])
    with pytest.raises(ValueError, match=f"outside the 0-10 scale .*'scale' = {bad:g}.*rescale"):
      Scores(values, np.ones((1, 2), bool), ["shape", "scale"])
  # the bounds are on the scale; an invalid entry may hold anything (it becomes NaN)
  edge = Scores(np.array([[0.0, 10.0], [55.0, 3.0]]), np.array([[True, True], [False, True]]),
                ["shape", "scale"])
  assert edge.scores[0].tolist() == [0.0, 10.0] and np.isnan(edge.scores[1, 0])
  # a scores file with values off the scale is refused when read
  path = str(tmp_path / "bad.npz")
  np.savez(path, scores=np.array([[11.0]], np.float32), valid=np.ones((1, 1), bool),
           attributes=np.array(["shape"]), pool_index=np.arange(1), meta=np.array("{}"))
  from jaxdisent.oracles.base import load_scores
  with pytest.raises(ValueError, match="not a readable scores file.*outside the 0-10 scale"):
    load_scores(path)
  # the config's attribute list is checked before any request
  from jaxdisent.data.correlated_dsprites import CorrelatedDSprites
  from jaxdisent.oracles import attribute_subset
  with pytest.raises(ValueError, match=r"oracle.attributes='shape,scale,shape' names \['shape'\] "
                                       "more than once"):
    attribute_subset(CorrelatedDSprites(pool_size=64), {"attributes": "shape,scale,shape"})


def test_launch_oracle_bad_flags_are_one_line(tmp_path, capsys):
  base = [f"--config={ROOT}/configs/gem_dsprites.py", f"--out={tmp_path / 's.npz'}"]
  for extra, expected in [(["--num_images=abc"], "--num_images=abc: expected an integer"),
                          (["--num_images=0"], "--num_images=0: must be >= 1"),
                          (["--config.oracle.kind=gpt"], "unknown oracle.kind 'gpt'"),
                          (["--config.oracle.kind=statistical"], "the statistical oracle has no "
                                                                 "scores"),
                          (["--config.oracle.kind=chat", "--config.oracle.model=m",
                            "--config.oracle.max_wait_s=-1"], "oracle.max_wait_s=-1.0 must be >= 0"),
                          (["--config.oracle.kind=chat", "--config.oracle.model=m",
                            "--config.oracle.attributes=shape,shape"], "names ['shape'] more than "
                                                                       "once")]:
    assert _launch(base + extra + ["--config.data.pool_size=64"]) == 2, extra
    error = capsys.readouterr().err.strip().splitlines()
    assert error[-1].startswith("[jaxdisent] error: ") and expected in error[-1], (extra, error)
  assert not (tmp_path / "s.npz").exists() and not (tmp_path / "s.npz.cache").exists()
