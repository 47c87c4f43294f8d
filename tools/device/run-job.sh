#!/usr/bin/env bash
# Runs named jobs on the GPU machine, in order, inside the repo copy that `run` made there.
# Needs the carried .gpu/ (tools/device/prepare.sh) and dist/. Logs and JSON go to $OUT (or ./out).
#   test-cuda         node --test over dist/test/cuda (driver + kernel correctness vs the CPU reference)
#   bench-attention   bench/attention.ts, then the PyTorch SDPA peer with ratios side by side
#   bench-model       bench/model.ts (8B / 7B shapes, random weights), then the HF transformers sdpa peer
#   bench-sparse      bench/sparse.ts: every GPU sparse method vs dense at n 16K-128K, s 0.5-0.95 (SPARSE_BENCH_ARGS)
#   bench-sparse-activations  bench/sparse-activations.ts: the GPU prefill methods on the organism's captured
#                     q/k/v (task prompts 4K-16K) beside random q/k/v (SPARSE_ACTIVATIONS_ARGS)
#   kernel-oracle     bench/kernel-oracle.ts (each model kernel on random bf16, outputs poisoned), then
#                     tools/peers/kernel_oracle.py (PyTorch / transformers fp32 recomputation, PASS/FAIL)
#   experiment        `run EXPERIMENT --backend cuda` (EXPERIMENT: a preset or file, default organism) into
#                     EXPERIMENT_DIR (default runs/NAME, resumed if carried), copied to $OUT/runs/NAME;
#                     EXPERIMENT_ARGS (e.g. --examples 5); Ctrl-C (SIGINT) at EXPERIMENT_DEADLINE s
#                     (default 480) stops it after the example in flight, keeping every result. No report
#                     there (the carried bundle has no plotting packages): `sparse-frontier report DIR` here
#   info              nvidia-smi, nvcc and torch versions
# Usage: tools/device/run-job.sh JOB [JOB ...]
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
out=${OUT:-$root/out}
mkdir -p "$out"
[ -x .gpu/device/with-node ] || { echo "missing .gpu/device: run tools/device/prepare.sh here and carry .gpu"; exit 2; }
[ -d dist ] || { echo "missing dist/: carry dist"; exit 2; }
# The dev node_modules never travels; a carried bundle stands in for it (NODE_BUNDLE, default the
# slim .gpu/node_modules; a full runtime bundle such as .gpu-final/node_modules also serves the runner).
[ -e node_modules ] || ln -s "${NODE_BUNDLE:-.gpu/node_modules}" node_modules
export SPARSE_FRONTIER_CUDA_CACHE=${SPARSE_FRONTIER_CUDA_CACHE:-/tmp/sparse-frontier-cuda-cache}
export PYTHONUNBUFFERED=1
# A hung kernel ignores SIGTERM (seen in a decode bench at 128K), so each job is killed outright after
# JOB_TIMEOUT seconds (default 540: the rest of a 600 s call returns the logs).
node_run() { timeout -s KILL "${JOB_TIMEOUT:-540}" .gpu/device/with-node node "$@"; }

status=0
for job in "$@"; do
  echo "=== job $job ($(date -u +%H:%M:%S))"
  case "$job" in
    info)
      nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm,driver_version --format=csv 2>&1 | tee "$out/info.txt"
      (nvcc --version | tail -1; python3 -c 'import torch; print("torch", torch.__version__)') 2>&1 | tee -a "$out/info.txt"
      ;;
    test-cuda)
      node_run --test --test-reporter=spec dist/test/cuda/ 2>&1 | tee "$out/test-cuda.log"
      [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
      ;;
    bench-attention)
      node_run dist/bench/attention.js --out "$out/attention.json" --check-dir /tmp/sf-attention-check ${BENCH_ARGS:-} 2>&1 \
        | tee "$out/bench-attention.log"
      [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
      python3 tools/peers/sdpa_attention.py --check-dir /tmp/sf-attention-check --ours "$out/attention.json" \
        --out "$out/sdpa.json" ${PEER_ARGS:-} 2>&1 | tee "$out/sdpa.log"
      [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
      ;;
    bench-model)
      node_run dist/bench/model.js --out "$out/model.json" --config-dir /tmp/sf-model-configs ${MODEL_BENCH_ARGS:-} 2>&1 \
        | tee "$out/bench-model.log"
      [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
      python3 tools/peers/hf_model.py --config-dir /tmp/sf-model-configs --ours "$out/model.json" \
        --out "$out/hf-model.json" ${HF_PEER_ARGS:-} 2>&1 | tee "$out/hf-model.log"
      [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
      ;;
    bench-sparse)
      node_run dist/bench/sparse.js --out "$out/sparse.json" ${SPARSE_BENCH_ARGS:-} 2>&1 | tee "$out/bench-sparse.log"
      [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
      ;;
    bench-sparse-activations)
      node_run dist/bench/sparse-activations.js --out "$out/sparse-activations.json" ${SPARSE_ACTIVATIONS_ARGS:-} 2>&1 \
        | tee "$out/bench-sparse-activations.log"
      [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
      ;;
    kernel-oracle)
      rm -rf /tmp/sf-kernel-oracle
      node_run dist/bench/kernel-oracle.js --out /tmp/sf-kernel-oracle 2>&1 | tee "$out/kernel-oracle-dump.log"
      [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
      python3 tools/peers/kernel_oracle.py --dir /tmp/sf-kernel-oracle --out "$out/kernel-oracle.json" 2>&1 \
        | tee "$out/kernel-oracle.log"
      [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
      ;;
    experiment)
      name=${EXPERIMENT:-organism}
      dir=${EXPERIMENT_DIR:-runs/$(basename "$name" | sed 's/\.[^.]*$//')}
      timeout -s INT -k 60 "${EXPERIMENT_DEADLINE:-480}" .gpu/device/with-node node dist/src/cli/main.js run "$name" \
        --backend cuda --out "$dir" --no-report --progress-interval 20 ${EXPERIMENT_ARGS:-} 2>&1 | tee "$out/experiment.log"
      [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
      [ ! -d "$dir" ] || { mkdir -p "$out/runs" && cp -r "$dir" "$out/runs/"; }
      ;;
    *)
      echo "unknown job $job"; status=2 ;;
  esac
done
exit $status
