"""The chat oracle against a scripted OpenAI-compatible stub server on 127.0.0.1."""

import http.server
import json
import socket
import threading
import time
import zlib

import numpy as np
import pytest

from jaxdisent.oracles.chat import (ChatOracle, ChatOracleError, ChatSettings, encode_png,
                                    parse_answer)

ATTRS = ["shape", "scale", "posX"]


class Stub:
  """Serves scripted replies in order; the last one repeats. Records every request body."""

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
        if kind == "ok":
          content = action[1] if isinstance(action[1], str) else json.dumps(action[1])
          reply = {"choices": [{"message": {"role": "assistant", "content": content},
                                "finish_reason": "stop"}]}
          self._send(200, json.dumps(reply).encode())
        elif kind == "status":
          self._send(action[1], b'{"error": {"message": "scripted"}}', action[2] if len(action) > 2
                     else {})

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
    self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
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


def oracle(url, tmp_path=None, **kw):
  settings = dict(base_url=url, model="stub-model", timeout_s=2.0, max_retries=2, concurrency=2,
                  cache_dir=str(tmp_path / "cache") if tmp_path else "", api_key_env="GEM_TEST_KEY")
  settings.update(kw)
  return ChatOracle(ChatSettings(**settings), ATTRS)


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
  # a rerun is answered from the cache: no new request
  again = oracle(server.url, tmp_path).score_images(images(3))
  np.testing.assert_array_equal(again.scores, scores.scores)
  assert len(server.requests) == 3


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
  assert any("missing attribute 'posX'" in p for p in problems[1])
  assert any("not a number" in p for p in problems[2]) and any("outside" in p for p in problems[2])
  assert any("color" in p for p in problems[2])


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
  chat2 = oracle(server2.url)
  chat2._sleep = waits.append
  chat2.score_png(encode_png(images(1)[0]))
  assert waits[-1] == 2.0


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


def test_png_encoder_roundtrip():
  image = np.random.default_rng(1).uniform(size=(5, 7, 3))
  png = encode_png(image)
  assert png[:8] == b"\x89PNG\r\n\x1a\n"
  idat = png[png.index(b"IDAT") + 4:png.index(b"IEND") - 8]
  raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(5, 1 + 7 * 3)
  np.testing.assert_array_equal(raw[:, 1:].reshape(5, 7, 3), np.round(image * 255).astype(np.uint8))


def test_parse_answer_never_raises():
  assert parse_answer(None, ATTRS)[1] == [False] * 3
  assert parse_answer("[1, 2, 3]", ATTRS)[1] == [False] * 3
  s, v, p = parse_answer('Sure! {"shape": 0, "scale": 10, "posX": 3.5} hope that helps', ATTRS)
  assert v == [True] * 3 and s == [0.0, 10.0, 3.5] and p == []
