#!/usr/bin/env bash
# Prepares what the organism's device run carries (run here, on the development machine):
#   .organism/build/            the data generators compiled to JavaScript (tools/organism/*.ts)
#   .organism/eval-{synth,qa}.jsonl.gz  held-out evaluation examples (seed 43 + i) in the tokens of
#                               --tokenizer DIR (default models/organism), or PREFIX-{synth,qa}.jsonl.gz
#                               with --eval-prefix PREFIX (e.g. .organism/eval-v2 for tokenizer-v2)
#   .organism/build/node_modules  @huggingface/tokenizers and @huggingface/jinja for them
#   .gpu/device                 Node.js (tools/device/prepare.sh; only its Node binary is used)
# Usage: tools/organism/prepare.sh [--skip-eval] [--skip-gpu] [--tokenizer DIR] [--eval-prefix PREFIX]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
grep -qx '/.organism/' .git/info/exclude 2>/dev/null || echo '/.organism/' >> .git/info/exclude
rm -rf .organism/build
npx tsc -p tools/organism/tsconfig.json
# The generators' two runtime packages (no dependencies of their own) sit beside the build, where
# Node's resolver finds them from .organism/build/**: the run needs no shared node_modules.
mkdir -p .organism/build/node_modules/@huggingface
cp -r node_modules/@huggingface/tokenizers node_modules/@huggingface/jinja .organism/build/node_modules/@huggingface/
skip_eval=0; skip_gpu=0; tokenizer=models/organism; eval_prefix=.organism/eval
while [ $# -gt 0 ]; do
  case "$1" in
    --skip-eval) skip_eval=1 ;;
    --skip-gpu) skip_gpu=1 ;;
    --tokenizer) tokenizer=${2:?--tokenizer needs a folder}; shift ;;
    --eval-prefix) eval_prefix=${2:?--eval-prefix needs a path prefix}; shift ;;
    *) echo "unknown flag $1"; exit 2 ;;
  esac
  shift
done
[ -f "$tokenizer/tokenizer.json" ] || { echo "--tokenizer $tokenizer has no tokenizer.json"; exit 2; }
if [ $skip_eval = 0 ]; then
  node .organism/build/tools/organism/make-eval-set.js --model "$tokenizer" --out "$eval_prefix-synth.jsonl.gz" \
    --lengths 1024,2048,4096,8192,16384 --count 20 --count-at 16384=10
  node .organism/build/tools/organism/make-eval-set.js --model "$tokenizer" --out "$eval_prefix-qa.jsonl.gz" \
    --lengths 8192,16384 --count 10 --tasks qa_squad,qa_quality,qa_toefl
fi
[ $skip_gpu = 1 ] || [ -x .gpu/device/with-node ] || tools/device/prepare.sh
du -sh .organism .gpu
echo 'ready: run tools/organism/device-job.sh with carry [".gpu", ".organism"] (settings: see the script header)'
