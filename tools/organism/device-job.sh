#!/usr/bin/env bash
# The model organism's whole training run on the GPU machine, in one `run` call:
#   1. WORKERS node processes make training chunks with the committed tokenizer (generate-data.js),
#      in the background, while
#   2. train.py trains on them in order (it waits for a chunk that is not written yet), then saves
#      the HF checkpoint, plots the loss and runs HF transformers' greedy generation on the eval set;
#   3. make_golden.py records transformers' logits of the new checkpoint (test/organism fixture);
#   4. everything comes back under $OUT (checkpoint tarred and split below the 16 MiB file limit).
# Needs, carried: .gpu (its Node binary, tools/device/prepare.sh) and .organism
# (tools/organism/prepare.sh: compiled generators with their two packages, and the eval set).
# Settings (environment): STEPS, REUSE, REUSE_LAG, WORKERS, CHUNKS, TIME_BUDGET, EVAL_DEADLINE, EVAL_LIMIT, RESUME
# (a checkpoint folder inside the repo copy; one holding model.safetensors.planes.xz instead of
# model.safetensors, made by pack_checkpoint.py, is unpacked into the scratch folder), FIRST_CHUNK (a resumed run's first fresh chunk: the
# generators start there and train.py reads from there), EXTRA (more train.py flags), GEN_FLAGS
# (curriculum flags of generate-data.ts), ORGANISM_SCRATCH (working folder, default /tmp),
# EVAL_BEFORE (seconds after the job's start by which a held-out evaluation of RESUME, before any
# training, must end: predictions-before.jsonl; the generators already run meanwhile), TOKENIZER (the
# folder whose tokenizer.json / tokenizer_config.json the data and the checkpoint use; default
# models/organism), EVAL_SETS (the held-out files, space-separated; default the shipped model's
# .organism/eval-synth.jsonl.gz and eval-qa.jsonl.gz: sets sized in another tokenizer's tokens live
# beside them under another prefix, see prepare.sh --eval-prefix).
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
out=${OUT:-$root/out}
mkdir -p "$out"
exec > >(tee "$out/job.log") 2>&1
[ -x .gpu/device/with-node ] || { echo "missing .gpu/device: run tools/device/prepare.sh and carry .gpu"; exit 2; }
[ -d .organism/build ] || { echo "missing .organism/build: run tools/organism/prepare.sh and carry .organism"; exit 2; }
export PYTHONUNBUFFERED=1

STEPS=${STEPS:-150}
REUSE=${REUSE:-1}
REUSE_LAG=${REUSE_LAG:-37}
WORKERS=${WORKERS:-14}
CHUNKS=${CHUNKS:-$(( STEPS / REUSE + WORKERS * 2 ))}
TIME_BUDGET=${TIME_BUDGET:-0}
EVAL_DEADLINE=${EVAL_DEADLINE:-570}  # seconds after the job's start by which the eval must end
EVAL_LIMIT=${EVAL_LIMIT:-0}
FIRST_CHUNK=${FIRST_CHUNK:-0}
TOKENIZER=${TOKENIZER:-models/organism}
EVAL_SETS=${EVAL_SETS:-.organism/eval-synth.jsonl.gz .organism/eval-qa.jsonl.gz}
[ -f "$TOKENIZER/tokenizer.json" ] || { echo "TOKENIZER=$TOKENIZER has no tokenizer.json"; exit 2; }
scratch=${ORGANISM_SCRATCH:-/tmp}  # working folders (data, run, logs); a dry run elsewhere sets its own
data=$scratch/organism-data
run=$scratch/organism-run
mkdir -p "$data" "$run" "$scratch"/organism-logs

echo "=== $(date -u +%H:%M:%S) $(nvidia-smi --query-gpu=name --format=csv,noheader); $(nproc) cores; python $(python3 -c 'import torch, transformers, tokenizers; print("torch", torch.__version__, "transformers", transformers.__version__, "tokenizers", tokenizers.__version__)')"
echo "steps $STEPS reuse $REUSE lag $REUSE_LAG workers $WORKERS chunks $CHUNKS from $FIRST_CHUNK time budget $TIME_BUDGET s"

# Held-out outputs of HF transformers for checkpoint folder $1, cut off before second $2 of the job
# (default EVAL_DEADLINE), into $out/$3 (default predictions.jsonl); synthetic tasks by length first,
# QA last: a cut-off run loses the longest contexts.
held_out_eval() {
  local eval_files=($EVAL_SETS)
  local f
  for f in "${eval_files[@]}"; do [ -f "$f" ] || { echo "missing held-out set $f (tools/organism/prepare.sh)"; return 2; }; done
  cat "${eval_files[@]}" > "$scratch"/organism-eval.jsonl.gz
  local left=$(( ${2:-$EVAL_DEADLINE} - SECONDS ))
  [ $left -gt 20 ] && timeout "$left" python3 tools/organism/train.py --tokenizer-dir "$TOKENIZER" --data "$data" --out "$run" \
    --steps 0 --eval-only --resume "$1" --eval-set "$scratch"/organism-eval.jsonl.gz --eval-limit "$EVAL_LIMIT" \
    --predictions "$out/${3:-predictions.jsonl}"
  echo "eval exit $? after ${SECONDS}s"
}

if [ -n "${EVAL_ONLY:-}" ]; then
  # make_golden.py reads a folder of checkpoint folders: link the one asked for as organism/.
  mkdir -p "$scratch"/organism-eval-only && ln -sfn "$root/$EVAL_ONLY" "$scratch"/organism-eval-only/organism
  [ "${GOLDEN:-1}" = 0 ] || { python3 tools/oracle/make_golden.py "$scratch"/organism-eval-only "$scratch"/organism-golden --only organism && cp "$scratch"/organism-golden/organism.json "$out/organism-golden.json"; }
  held_out_eval "$EVAL_ONLY"
  ls -la "$out"
  echo "=== $(date -u +%H:%M:%S) done"
  exit 0
fi

# with-node unpacks Node on first use; do that once here, not racing in every worker.
.gpu/device/with-node node --version || exit 2
pids=()
for ((w = 0; w < WORKERS; w++)); do
  .gpu/device/with-node node .organism/build/tools/organism/generate-data.js --tokenizer "$TOKENIZER" --out "$data" \
    --chunks "$CHUNKS" --first-chunk "$FIRST_CHUNK" --worker "$w" --workers "$WORKERS" ${GEN_FLAGS:-} 2> "$scratch/organism-logs/gen-$w.log" &
  pids+=($!)
done

# A checkpoint too large to carry comes packed (pack_checkpoint.py: byte planes, LZMA): unpack it first.
if [ -n "${RESUME:-}" ] && [ ! -f "$RESUME/model.safetensors" ] && [ -f "$RESUME/model.safetensors.planes.xz" ]; then
  python3 tools/organism/pack_checkpoint.py unpack "$RESUME" "$scratch/organism-resume" || exit 2
  RESUME=$scratch/organism-resume
fi
resume_flag=()
[ -n "${RESUME:-}" ] && resume_flag=(--resume "$RESUME")
if [ -n "${EVAL_BEFORE:-}" ]; then
  [ -n "${RESUME:-}" ] || { echo "EVAL_BEFORE needs RESUME (the checkpoint to evaluate)"; exit 2; }
  held_out_eval "$RESUME" "$EVAL_BEFORE" predictions-before.jsonl
fi
python3 tools/organism/train.py --tokenizer-dir "$TOKENIZER" --data "$data" --out "$run" --steps "$STEPS" \
  --reuse "$REUSE" --reuse-lag "$REUSE_LAG" --time-budget "$TIME_BUDGET" --wait-limit 90 --first-chunk "$FIRST_CHUNK" \
  "${resume_flag[@]}" ${EXTRA:-}
status=$?
for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
echo "=== $(date -u +%H:%M:%S) training exit $status; chunks written: $(ls "$data" | grep -c 'jsonl$')"
tail -n 2 "$scratch"/organism-logs/gen-0.log
cp "$run/train-log.jsonl" "$scratch"/organism-logs/ 2>/dev/null
[ -f "$run/loss.png" ] && cp "$run/loss.png" "$out/"

if [ -f "$run/organism/model.safetensors" ]; then
  tar -C "$run" -cf "$scratch"/organism-ckpt.tar organism
  split -b 15m -d "$scratch"/organism-ckpt.tar "$out/organism-ckpt.tar.part"
  python3 tools/oracle/make_golden.py "$run" "$scratch"/organism-golden --only organism && cp "$scratch"/organism-golden/organism.json "$out/organism-golden.json"
  tar -C "$scratch" -czf "$out/logs.tar.gz" organism-logs
  held_out_eval "$run/organism"
fi
tar -C "$scratch" -czf "$out/logs.tar.gz" organism-logs
ls -la "$out"
echo "=== $(date -u +%H:%M:%S) done"
exit $status
