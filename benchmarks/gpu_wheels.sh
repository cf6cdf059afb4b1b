#!/usr/bin/env bash
# The Python packages that benchmarks/gpu_check.sh and benchmarks/gpu_long_runs.sh need beyond a
# CUDA image that already holds jax, flax, optax, orbax-checkpoint, torch, einops and tqdm, as
# wheels in .whl/ (git-ignored), for a machine that cannot reach a package index:
#
#   bash benchmarks/gpu_wheels.sh [PYTHON_VERSION]     # default 3.12, the lent H200 image's Python
#
# On that machine, before either script:
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
#   export PYTHONPATH=/tmp/site:$PWD
# All four are pure-Python wheels (about 0.5 MB together).
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:-3.12}"
mkdir -p .whl
for package in ott-jax==0.6.0 jaxopt==0.8.5 ml-collections==1.1.0 dictionary-learning==0.1.0; do
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version "$version" \
      --implementation cp --platform manylinux2014_x86_64 -d .whl "$package"
done
ls -l .whl
