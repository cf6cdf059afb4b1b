"""Run N cooperating processes of a jaxdisent entry point on this machine (jax.distributed).

  python -m launch.multiprocess --num_processes=2 --devices_per_process=2 -- \
      --config=configs/beta_vae_dsprites.py --workdir=runs/beta_vae_2proc [--config.KEY=VALUE ...]

Everything after ``--`` goes to ``python -m launch.train`` (``--module=...`` picks another entry
point), plus ``--config.train.distributed=true``. Each process gets the coordinator address of
process 0 (127.0.0.1 and a free port), the process count and its id through the environment
variables that jaxdisent/train/distributed.py reads, and, on CPU, ``--devices_per_process`` forced
host devices; the processes' CPU collectives go through gloo. With ``--platform=gpu`` each process
gets its own ``--devices_per_process`` GPUs through CUDA_VISIBLE_DEVICES instead.

This is how to try a multi-host run on one box; on a cluster, start one process per host (or per
GPU) yourself: see launch/slurm_train.sbatch and the README. If one process fails, the others
are stopped (they would otherwise wait for it in a collective until JAX's heartbeat timeout);
SIGTERM / Ctrl-C is forwarded to all processes, which then save a checkpoint at one agreed step.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from launch.common import run_main

USAGE = ("usage: python -m launch.multiprocess --num_processes=N [--devices_per_process=D] "
         "[--platform=cpu|gpu] [--port=P] [--timeout=SECONDS] [--module=launch.train] -- ARGS...")


def free_port() -> int:
  """A TCP port that was free a moment ago (the coordinator binds it right after)."""
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
    sock.bind(("127.0.0.1", 0))
    return sock.getsockname()[1]


def process_env(process_id: int, num_processes: int, port: int, devices_per_process: int,
                platform: str = "cpu", base_env=None) -> dict:
  """The environment of process `process_id` (see jaxdisent/train/distributed.py)."""
  env = dict(os.environ if base_env is None else base_env)
  env["JAX_COORDINATOR_ADDRESS"] = f"127.0.0.1:{port}"
  env["JAXDISENT_NUM_PROCESSES"] = str(num_processes)
  env["JAXDISENT_PROCESS_ID"] = str(process_id)
  if platform == "cpu":
    env["JAX_PLATFORMS"] = "cpu"
    flags = [f for f in env.get("XLA_FLAGS", "").split()
             if not f.startswith("--xla_force_host_platform_device_count")]
    env["XLA_FLAGS"] = " ".join(flags + [
        f"--xla_force_host_platform_device_count={devices_per_process}"])
  elif platform == "gpu":
    first = process_id * devices_per_process
    env["CUDA_VISIBLE_DEVICES"] = ",".join(str(first + i) for i in range(devices_per_process))
  else:
    raise ValueError(f"--platform must be cpu or gpu, got {platform!r}")
  return env


def _stop(processes, grace: float = 10.0) -> None:
  for process in processes:
    if process.poll() is None:
      process.send_signal(signal.SIGTERM)
  deadline = time.time() + grace
  for process in processes:
    try:
      process.wait(timeout=max(0.1, deadline - time.time()))
    except subprocess.TimeoutExpired:
      process.kill()
      process.wait()


def run(args, num_processes: int, devices_per_process: int = 1, *, module: str = "launch.train",
        platform: str = "cpu", port: int | None = None, timeout: float | None = None,
        cwd: str | None = None, stdout=None, stderr=None, base_env=None) -> list[int]:
  """Start the processes, wait for all, return their exit codes (process 0 first).

  A process that fails makes the others stop (SIGTERM, then SIGKILL after 10 s); past `timeout`
  seconds all are killed and the codes are negative (-SIGKILL). Never hangs longer than that.
  """
  if num_processes < 1:
    raise ValueError(f"--num_processes must be >= 1, got {num_processes}")
  port = free_port() if port is None else port
  args = list(args)
  if module == "launch.train" and not any(a.startswith("--config.train.distributed=") for a in args):
    args.append("--config.train.distributed=true")
  processes = []
  previous = {}

  def forward(signum, frame):
    del frame
    for process in processes:
      if process.poll() is None:
        process.send_signal(signum)

  if _in_main_thread():  # signal handlers can only be set there
    for signum in (signal.SIGTERM, signal.SIGINT):
      previous[signum] = signal.signal(signum, forward)
  try:
    for process_id in range(num_processes):
      env = process_env(process_id, num_processes, port, devices_per_process, platform, base_env)
      processes.append(subprocess.Popen([sys.executable, "-m", module, *args], env=env, cwd=cwd,
                                        stdout=stdout, stderr=stderr))
    deadline = None if timeout is None else time.time() + timeout
    while any(p.poll() is None for p in processes):
      if any(p.poll() not in (None, 0) for p in processes):
        _stop(processes)
        break
      if deadline is not None and time.time() > deadline:
        for process in processes:
          if process.poll() is None:
            process.kill()
        break
      time.sleep(0.05)
    return [p.wait() for p in processes]
  finally:
    for process in processes:
      if process.poll() is None:
        process.kill()
        process.wait()
    for signum, handler in previous.items():
      signal.signal(signum, handler)


def _in_main_thread() -> bool:
  import threading  # pylint: disable=g-import-not-at-top
  return threading.current_thread() is threading.main_thread()


def main(argv) -> int:
  if "--" not in argv:
    print(USAGE, file=sys.stderr)
    return 2
  split = argv.index("--")
  options = {"num_processes": None, "devices_per_process": "1", "platform": "cpu", "port": None,
             "timeout": None, "module": "launch.train"}
  for arg in argv[:split]:
    name, _, value = arg.lstrip("-").partition("=")
    if name not in options or not value:
      print(f"unknown or empty option {arg!r}\n{USAGE}", file=sys.stderr)
      return 2
    options[name] = value
  if options["num_processes"] is None:
    print(f"--num_processes=N is required\n{USAGE}", file=sys.stderr)
    return 2
  codes = run(argv[split + 1:], int(options["num_processes"]), int(options["devices_per_process"]),
              module=options["module"], platform=options["platform"],
              port=None if options["port"] is None else int(options["port"]),
              timeout=None if options["timeout"] is None else float(options["timeout"]))
  if any(codes):
    print(f"[jaxdisent] process exit codes: {codes}", file=sys.stderr)
  return next((c for c in codes if c), 0) if all(c >= 0 for c in codes) else 1


if __name__ == "__main__":
  sys.exit(run_main(main, doc=__doc__))
