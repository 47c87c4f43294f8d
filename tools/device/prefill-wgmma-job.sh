#!/usr/bin/env bash
# Device job of the Hopper wgmma prefill (docs/perf.md, Prefill): descriptor probe, the kernel's GPU
# tests, a SASS check of every compiled variant (HGMMA present, no local memory), then bench attention
# (prefill only) with the mma.sync and wgmma variants side by side with SDPA flash and cuDNN. The
# experimental variants time in a second bench process, so a hang there costs none of the other numbers.
# On the device machine, from the repo root, with the carried node bundle (docs/perf.md, CUDA backend):
#   ln -sfn .gpu-final/node_modules node_modules; tools/device/prefill-wgmma-job.sh
# LENGTHS (default 4096,16384,32768,65536) and VARIANTS_A / VARIANTS_B (the two bench processes' labels;
# the second report's rows are appended to the first's). Takes about 2.5 minutes on an H100.
set -uo pipefail
out=${OUT:-out}
mkdir -p "$out"
export SPARSE_FRONTIER_CUDA_CACHE=${SPARSE_FRONTIER_CUDA_CACHE:-/tmp/sfc} PYTHONUNBUFFERED=1
N=".gpu/device/with-node node"
R="--test --test-reporter=spec"
LENGTHS=${LENGTHS:-4096,16384,32768,65536}
VARIANTS_A=${VARIANTS_A:-w4m2n64g,wgmma3-n128g-wa}
VARIANTS_B=${VARIANTS_B:-wgmma1-n128g,wgmma2-n128g,wgmma3-n128g}
timeout 10 $N $R dist/test/cuda/wgmma-probe.test.js > "$out/probe.log" 2>&1
grep -E "RIGHT|wrong|✖|^ℹ (pass|fail)" "$out/probe.log"
timeout 55 $N $R dist/test/cuda/flash-prefill-wgmma.test.js > "$out/wgmma-test.log" 2>&1
grep -E "✖|^ℹ (pass|fail)" "$out/wgmma-test.log"
for f in "$SPARSE_FRONTIER_CUDA_CACHE"/flash-prefill-wgmma-*.cubin; do
  echo "$(basename "$f"): HGMMA $(cuobjdump -sass "$f" | grep -c HGMMA), LDL/STL $(cuobjdump -sass "$f" | grep -cE 'LDL|STL')"
done
timeout ${BENCH_A_TIMEOUT:-40} $N dist/bench/attention.js --lengths "$LENGTHS" --decode-lengths none --variants "$VARIANTS_A" \
  --out "$out/attention.json" --check-dir /tmp/sf-check > "$out/bench.log" 2>&1
grep -E "^prefill|^ceiling" "$out/bench.log"
timeout ${BENCH_B_TIMEOUT:-40} $N dist/bench/attention.js --lengths "$LENGTHS" --decode-lengths none --variants "$VARIANTS_B" \
  --out /tmp/attention-b.json --check-dir /tmp/sf-check > "$out/bench-b.log" 2>&1
grep -E "^prefill" "$out/bench-b.log"
# One report for the peer: the second process's prefill rows appended to the first's.
python3 -c "
import json, sys
a = json.load(open(sys.argv[1]))
try:
    b = json.load(open(sys.argv[2]))
    a['prefill'] += b['prefill']; a['prefillFailures'] = a.get('prefillFailures', []) + b.get('prefillFailures', [])
except (OSError, ValueError) as e:
    print('second bench report missing:', e)
json.dump(a, open(sys.argv[1], 'w'), indent=2)
" "$out/attention.json" /tmp/attention-b.json
timeout 30 python3 tools/peers/sdpa_attention.py --check-dir /tmp/sf-check --ours "$out/attention.json" --lengths "$LENGTHS" \
  --out "$out/sdpa.json" > "$out/sdpa.log" 2>&1
grep -E "^check" "$out/sdpa.log"
sed -n '/^prefill, causal/,/^decode/p' "$out/sdpa.log"
