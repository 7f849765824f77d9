#!/usr/bin/env bash
# GPU table (pending: no GPU in the session that wrote this). On a CUDA machine with jax[cuda] and
# a CUDA torch installed, from the repository root:
#     bash benchmarks/gpu.sh            # a few minutes
# JAX picks the GPU by default, torch uses CUDA (cuDNN) automatically, --gpu adds
# jax.experimental.rnn.lstm (cuDNN). Results: benchmarks/results/<stamp>-gpu.{json,md}.
set -euo pipefail
cd "$(dirname "$0")/.."
export KERAS_BACKEND=jax
python - <<'PY'
import jax, torch
print("jax devices:", jax.devices(), "| torch cuda:", torch.cuda.is_available())
PY
python -m benchmarks.run --quick --gpu --tag gpu "$@"
python -m benchmarks.curves --quick
