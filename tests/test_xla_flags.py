"""jaxdisent/xla_flags.py: the XLA options set at import, and the user's choice winning over them.
Each case imports jaxdisent in a fresh process (XLA reads XLA_FLAGS once per process)."""

import os
import subprocess
import sys

import pytest

from conftest import ROOT

_PRINT = "import os, jaxdisent; print(os.environ.get('XLA_FLAGS', ''))"


def _flags_after_import(**env_changes):
  env = {k: v for k, v in os.environ.items()
         if k not in ("XLA_FLAGS", "JAXDISENT_XLA_DEFAULTS")}
  env.update(env_changes)
  env["PYTHONPATH"] = ROOT
  out = subprocess.run([sys.executable, "-c", _PRINT], env=env, capture_output=True, text=True,
                       check=True, cwd=ROOT)
  return out.stdout.split()


def test_gpu_determinism_is_on_by_default():
  assert "--xla_gpu_deterministic_ops=true" in _flags_after_import()


@pytest.mark.parametrize("user", ["--xla_gpu_deterministic_ops=false",
                                  "--xla_gpu_deterministic_ops=true"])
def test_the_users_own_choice_wins(user):
  flags = _flags_after_import(XLA_FLAGS=user)
  assert [f for f in flags if "xla_gpu_deterministic_ops" in f] == [user]


def test_jaxdisent_xla_defaults_leaves_xla_flags_untouched():
  assert _flags_after_import(JAXDISENT_XLA_DEFAULTS="1", XLA_FLAGS="--xla_dump_to=/dev/null") == [
      "--xla_dump_to=/dev/null"]


def test_importing_jaxdisent_after_jax_started_says_the_options_do_not_apply():
  env = {k: v for k, v in os.environ.items()
         if k not in ("XLA_FLAGS", "JAXDISENT_XLA_DEFAULTS")}
  env["PYTHONPATH"] = ROOT
  env["JAX_PLATFORMS"] = "cpu"
  out = subprocess.run([sys.executable, "-c", "import jax; jax.devices(); import jaxdisent"],
                       env=env, capture_output=True, text=True, check=True, cwd=ROOT)
  notes = [line for line in out.stderr.splitlines() if line.startswith("[jaxdisent] note:")]
  assert len(notes) == 1 and "--xla_gpu_deterministic_ops=true does not apply" in notes[0]
  quiet = subprocess.run([sys.executable, "-c", "import jaxdisent, jax; jax.devices()"],
                         env=env, capture_output=True, text=True, check=True, cwd=ROOT)
  assert "[jaxdisent] note:" not in quiet.stderr
