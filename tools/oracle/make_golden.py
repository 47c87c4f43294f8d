#!/usr/bin/env python3
"""Golden outputs of the tiny test checkpoints, computed by Hugging Face transformers.

Usage:
    python3 tools/oracle/make_golden.py CHECKPOINTS_DIR OUT_DIR

CHECKPOINTS_DIR holds one sub-folder per checkpoint variant, as written by
tools/oracle/write-fixture-checkpoints.ts. For each one this loads the model with
AutoModelForCausalLM (float32, eager attention, on the CPU), runs the fixed token ids INPUT_IDS
and writes OUT_DIR/<variant>.json:

    format, format_version       "sparse-frontier-golden", 1
    arch, variant                engine architecture name, folder name
    transformers_version, torch_version, python_version
    input_ids                    INPUT_IDS (24 ids)
    logits                       [24][vocab] float32 logits of every position, 7 significant digits
    greedy_ids                   8 greedy (argmax) tokens after input_ids, no stop on EOS
                                 (argmax of a full forward pass per step, no KV cache)
    greedy_prefix_ids            the first 12 ids of INPUT_IDS
    greedy_ids_from_prefix       8 greedy tokens after greedy_prefix_ids, computed the same way
    generate_ids                 model.generate(do_sample=False, max_new_tokens=8) after input_ids
                                 (new tokens only; KV cache; may stop early at the checkpoint's EOS)
    generate_ids_from_prefix     the same after greedy_prefix_ids
    generate_matches_greedy      generate_* is a prefix of the matching greedy_* (cache path agrees)
    weights_sha256               sha256 of the safetensors files concatenated in sorted name order
                                 (for one file: that file's sha256)
    weights_sha256_per_file      {file name: sha256}
    tokenizer                    what AutoTokenizer makes of the checkpoint's tokenizer files:
                                 ids of TOKENIZER_TEXT with and without special tokens, the rendered
                                 chat template of one user message and its ids (or {"error": ...})
    load_warnings                anything unexpected while loading (empty when all is well)

Needs torch and transformers >= 4.56 (written for transformers 5: `dtype=` argument,
`rope_parameters` configs). No network access is needed.
"""
import argparse
import hashlib
import json
import platform
import sys
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

FORMAT = "sparse-frontier-golden"
FORMAT_VERSION = 1

# 24 fixed ids below the tiny vocabulary size (300): BOS (296), then bytes and merged tokens, with a
# <|user|> (298) and an <|assistant|> (299) in the middle so special embeddings are exercised.
INPUT_IDS = [296, 298, 84, 258, 32, 107, 101, 121, 264, 58, 32, 52, 50, 46, 297, 299, 72, 101, 108, 108, 111, 33, 10, 271]
GREEDY_PREFIX_LENGTH = 12
NEW_TOKENS = 8
TOKENIZER_TEXT = "the key is: 42-abc. Done!\nnext line"
CHAT_MESSAGE = "hi there"

# config.json model_type -> the engine's architecture name
ARCH_OF_MODEL_TYPE = {"llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "mistral": "mistral", "gemma3_text": "gemma3"}


def sig7(x: float) -> float:
    """Round to 7 significant digits (float32 carries about 7.2)."""
    return float(f"{x:.7g}")


def sha256_of(paths):
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def weight_files(ckpt: Path):
    files = sorted(p for p in ckpt.iterdir() if p.name.endswith(".safetensors"))
    if not files:
        raise SystemExit(f"{ckpt}: no .safetensors files")
    return files


def load_model(ckpt: Path, warnings: list):
    model, info = AutoModelForCausalLM.from_pretrained(
        str(ckpt), dtype=torch.float32, attn_implementation="eager", output_loading_info=True
    )
    model.eval()
    for key in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        # A dict in transformers 4 and 5; read attributes too in case it becomes an object.
        value = info.get(key) if isinstance(info, dict) else getattr(info, key, None)
        if value:
            # A tied lm_head is legitimately absent from the file.
            listed = [str(v) for v in value]
            if key == "missing_keys" and all("lm_head" in v for v in listed) and model.config.tie_word_embeddings:
                continue
            raise SystemExit(f"{ckpt}: transformers reported {key}: {listed}; refusing to write a golden file")
    # Independent check that every stored tensor is the parameter of that name, value for value.
    from safetensors.torch import load_file

    state = model.state_dict()
    for f in weight_files(ckpt):
        for name, tensor in load_file(str(f)).items():
            if name not in state:
                warnings.append(f"tensor {name} of {f.name} has no parameter of that name in the loaded model")
                continue
            if not torch.equal(state[name].float(), tensor.float()):
                raise SystemExit(f"{ckpt}: parameter {name} differs from the value stored in {f.name}")
    attn = getattr(model.config, "_attn_implementation", "eager")
    if attn != "eager":
        warnings.append(f"attention implementation is {attn}, not eager")
    return model


@torch.inference_mode()
def greedy_full_forward(model, prompt, steps):
    """Argmax decoding by re-running the whole sequence each step (no cache, no stop token)."""
    seq = list(prompt)
    for _ in range(steps):
        logits = model(input_ids=torch.tensor([seq]), use_cache=False).logits[0, -1]
        seq.append(int(torch.argmax(logits)))
    return seq[len(prompt):]


@torch.inference_mode()
def generate_new_tokens(model, prompt, steps):
    ids = torch.tensor([prompt])
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=steps)
    return [int(t) for t in out[0, len(prompt):].tolist()]


def tokenizer_facts(ckpt: Path):
    try:
        tok = AutoTokenizer.from_pretrained(str(ckpt))
        chat = tok.apply_chat_template([{"role": "user", "content": CHAT_MESSAGE}], tokenize=False, add_generation_prompt=True)
        return {
            "class": type(tok).__name__,
            "text": TOKENIZER_TEXT,
            "ids": tok(TOKENIZER_TEXT, add_special_tokens=False)["input_ids"],
            "ids_with_special_tokens": tok(TOKENIZER_TEXT)["input_ids"],
            "decoded": tok.decode(tok(TOKENIZER_TEXT, add_special_tokens=False)["input_ids"]),
            "chat_message": CHAT_MESSAGE,
            "chat_rendered": chat,
            "chat_ids": tok(chat, add_special_tokens=False)["input_ids"],
        }
    except Exception as e:  # recorded, not fatal: the logits are the main product
        return {"error": f"{type(e).__name__}: {e}"}


def make_fixture(ckpt: Path):
    config = json.loads((ckpt / "config.json").read_text())
    model_type = config.get("model_type")
    if model_type not in ARCH_OF_MODEL_TYPE:
        raise SystemExit(f"{ckpt}: unexpected model_type {model_type!r}")
    warnings = []
    model = load_model(ckpt, warnings)
    vocab = model.config.vocab_size
    if max(INPUT_IDS) >= vocab:
        raise SystemExit(f"{ckpt}: INPUT_IDS exceed the vocabulary size {vocab}")

    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([INPUT_IDS]), use_cache=False).logits[0].float()
    if tuple(logits.shape) != (len(INPUT_IDS), vocab):
        raise SystemExit(f"{ckpt}: logits shape {tuple(logits.shape)}, expected {(len(INPUT_IDS), vocab)}")
    if not torch.isfinite(logits).all():
        raise SystemExit(f"{ckpt}: non-finite logits")

    prefix = INPUT_IDS[:GREEDY_PREFIX_LENGTH]
    greedy = greedy_full_forward(model, INPUT_IDS, NEW_TOKENS)
    greedy_prefix = greedy_full_forward(model, prefix, NEW_TOKENS)
    generated = generate_new_tokens(model, INPUT_IDS, NEW_TOKENS)
    generated_prefix = generate_new_tokens(model, prefix, NEW_TOKENS)
    matches = greedy[: len(generated)] == generated and greedy_prefix[: len(generated_prefix)] == generated_prefix
    if not matches:
        warnings.append("model.generate (with KV cache) disagrees with full-forward greedy decoding")

    files = weight_files(ckpt)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": ARCH_OF_MODEL_TYPE[model_type],
        "variant": ckpt.name,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "input_ids": INPUT_IDS,
        "logits": [[sig7(v) for v in row] for row in logits.tolist()],
        "greedy_ids": greedy,
        "greedy_prefix_ids": prefix,
        "greedy_ids_from_prefix": greedy_prefix,
        "generate_ids": generated,
        "generate_ids_from_prefix": generated_prefix,
        "generate_matches_greedy": matches,
        "weights_sha256": sha256_of(files),
        "weights_sha256_per_file": {f.name: sha256_of([f]) for f in files},
        "tokenizer": tokenizer_facts(ckpt),
        "load_warnings": warnings,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", type=Path, help="folder of checkpoint variants (one sub-folder each)")
    parser.add_argument("out", type=Path, help="folder for the <variant>.json golden files")
    parser.add_argument("--only", nargs="*", default=None, help="variant names to run (default: all)")
    args = parser.parse_args()

    torch.manual_seed(0)
    torch.set_grad_enabled(False)
    variants = sorted(p for p in args.checkpoints.iterdir() if (p / "config.json").is_file())
    if args.only:
        variants = [p for p in variants if p.name in set(args.only)]
    if not variants:
        raise SystemExit(f"no checkpoint folders (with config.json) under {args.checkpoints}")
    args.out.mkdir(parents=True, exist_ok=True)

    print(f"transformers {transformers.__version__}, torch {torch.__version__}, python {platform.python_version()}")
    failed = []
    for ckpt in variants:
        try:
            fixture = make_fixture(ckpt)
        except SystemExit as e:
            print(f"FAILED {ckpt.name}: {e}", file=sys.stderr)
            failed.append(ckpt.name)
            continue
        path = args.out / f"{ckpt.name}.json"
        path.write_text(json.dumps(fixture, separators=(",", ":")) + "\n")
        tok = "tokenizer ok" if "error" not in fixture["tokenizer"] else f"tokenizer error: {fixture['tokenizer']['error']}"
        notes = "; ".join(fixture["load_warnings"]) or "no warnings"
        print(f"{ckpt.name:20s} greedy {fixture['greedy_ids']}  generate {fixture['generate_ids']}  {tok}; {notes} -> {path}")
    if failed:
        print(f"{len(failed)} variant(s) failed: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
