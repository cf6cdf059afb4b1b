#!/usr/bin/env bash
# The Python packages that benchmarks/gpu_check.sh and benchmarks/gpu_long_runs.sh need beyond a
# CUDA image that already holds jax, torch, einops, tqdm and the dependencies of flax and orbax, as
# wheels in .whl/ (git-ignored), for a machine that cannot reach a package index. flax,
# orbax-checkpoint and optax travel too, in the series this project tests, so that an image's
# newer ones cannot change a check's numbers or API. flax is 0.12.12, not the 0.12.8 tested on
# CPU: the lent H200's image has jax 0.11.2, and 0.12.8's flax.nnx (which ott-jax imports) fails
# there ("jax.experimental.hijax has no attribute HiPrimitive", measured); 0.12.12 needs
# jax >= 0.11.1. orbax-checkpoint 0.12.8 and optax 0.2.8 ran there (the learning curve's saves
# and resumes):
#
#   bash benchmarks/gpu_wheels.sh [PYTHON_VERSION]     # default 3.12, the lent H200 image's Python
#
# On that machine, before either script:
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
#   export PYTHONPATH=/tmp/site:$PWD
# All seven are pure-Python wheels (about 3 MB together).
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:-3.12}"
mkdir -p .whl
for package in ott-jax==0.6.0 jaxopt==0.8.5 ml-collections==1.1.0 dictionary-learning==0.1.0 \
    flax==0.12.12 orbax-checkpoint==0.12.8 optax==0.2.8; do
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version "$version" \
      --implementation cp --platform manylinux2014_x86_64 -d .whl "$package"
done
ls -l .whl
