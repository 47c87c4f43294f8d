#!/usr/bin/env bash
# Device job of the Hopper block-sparse prefill (docs/perf.md, Block-sparse prefill, wgmma variant):
# its GPU tests (and host tests, and the block-sparse method and mma.sync kernel tests, which run the
# launcher's automatic choice), a SASS check of every compiled variant (HGMMA present, no local
# memory), then bench/block-sparse.ts at 16K and 64K with the automatic choice beside the wgmma variants
# (validation rows and, for wgmma, the work line the prediction rests on). Each step is killed outright
# past its limit (a hung kernel ignores SIGTERM), so the logs of the others still come back.
# On the device machine, from the repo root, carrying [".gpu/device", "<bundle>", "dist"]:
#   ln -sfn <bundle>/node_modules node_modules; tools/device/block-sparse-wgmma-job.sh
# where <bundle> is .gpu-final, or, when the tree is too large for the 64 MiB carry limit with it, a
# copy holding only koffi, @koromix/koffi-linux-x64 (without musl_x64) and zod: all this job imports.
# LENGTHS (default 16384,65536), VARIANTS (default auto,wgmma-n128-s2,wgmma-n64-s3,wgmma-c3-n64-s3,wgmma-c3-n64-s4),
# REPEATS (default 5). Expected: about 110 s on an H100 (tests ~35 s with compiles, bench ~75 s).
set -uo pipefail
out=${OUT:-out}
mkdir -p "$out"
export SPARSE_FRONTIER_CUDA_CACHE=${SPARSE_FRONTIER_CUDA_CACHE:-/tmp/sfc}
N=".gpu/device/with-node node"
LENGTHS=${LENGTHS:-16384,65536}
VARIANTS=${VARIANTS:-auto,wgmma-n128-s2,wgmma-n64-s3,wgmma-c3-n64-s3,wgmma-c3-n64-s4}
REPEATS=${REPEATS:-5}
timeout -s KILL ${TEST_TIMEOUT:-100} $N --test --test-reporter=spec dist/test/cuda/block-sparse-prefill-wgmma.test.js \
  dist/test/cuda/block-sparse-prefill-wgmma-host.test.js dist/test/cuda/block-sparse-method.test.js \
  dist/test/cuda/block-sparse-prefill.test.js > "$out/bs-wgmma-test.log" 2>&1
echo "tests: exit $?"
grep -E "✖|^ℹ (tests|pass|fail|skipped)|rel (err|diff)|skipping" "$out/bs-wgmma-test.log" | head -40
for f in "$SPARSE_FRONTIER_CUDA_CACHE"/block-sparse-prefill-wgmma*.cubin; do
  [ -e "$f" ] || { echo "no block-sparse wgmma cubin in $SPARSE_FRONTIER_CUDA_CACHE"; break; }
  echo "$(basename "$f"): HGMMA $(cuobjdump -sass "$f" | grep -c HGMMA), LDL/STL $(cuobjdump -sass "$f" | grep -cE 'LDL|STL')"
done
timeout -s KILL ${BENCH_TIMEOUT:-170} $N dist/bench/block-sparse.js --lengths "$LENGTHS" --repeats "$REPEATS" --variants "$VARIANTS" \
  --out "$out/block-sparse.json" > "$out/bs-wgmma-bench.log" 2>&1
echo "bench: exit $?"
grep -E "validated|work:|failed" "$out/bs-wgmma-bench.log" | head -40
sed -n '/^| n | data/,$p' "$out/bs-wgmma-bench.log"
