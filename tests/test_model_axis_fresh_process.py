"""Runs tests/test_model_axis.py in a fresh interpreter (why: tests/conftest.py, MODEL_AXIS_INNER).

The inner run uses the same marker expression as this run (so ``-m "not slow"`` skips the module's
slow tests there too); its report is this test's failure message.
"""

import os
import subprocess
import sys

from conftest import MODEL_AXIS_INNER, ROOT


def test_model_axis_module_in_a_fresh_process(request):
  markers = request.config.getoption("markexpr") or ""
  command = [sys.executable, "-X", "faulthandler", "-m", "pytest", "-n0", "-q", "-p",
             "no:cacheprovider", "-rfE", os.path.join(ROOT, "tests", "test_model_axis.py")]
  if markers:
    command += ["-m", markers]
  done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=2400,
                        env={**os.environ, MODEL_AXIS_INNER: "1"})
  report = (done.stdout + done.stderr)[-8000:]
  assert done.returncode == 0, report
  assert " passed" in done.stdout and "failed" not in done.stdout, report
