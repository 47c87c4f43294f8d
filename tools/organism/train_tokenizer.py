#!/usr/bin/env python3
"""Train the model organism's byte-level BPE tokenizer and write its tokenizer files.

Usage:
    python3 tools/organism/train_tokenizer.py SAMPLE_DIR MODEL_DIR [--vocab-size 4096]

SAMPLE_DIR holds chunk-*.jsonl files written by `generate-data --text` (lines with "prompt" and
"reply"). Writes MODEL_DIR/tokenizer.json and MODEL_DIR/tokenizer_config.json (chat template,
special tokens). Deterministic for a given sample and tokenizers version (the files are read in
sorted order; BPE training breaks ties deterministically).
"""
import argparse
import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

BOS = "<|bos|>"
END = "<|end|>"  # end of a turn: the EOS the model stops on
PAD = "<|pad|>"
SPECIAL_TOKENS = [BOS, END, PAD, "<|system|>", "<|user|>", "<|assistant|>"]

# One user turn, generation prompt "<|assistant|>\n"; assistant turns end with <|end|> as well.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)


def sample_texts(sample_dir: Path):
    files = sorted(sample_dir.glob("chunk-*.jsonl"))
    if not files:
        raise SystemExit(f"{sample_dir}: no chunk-*.jsonl files (run generate-data --text first)")
    for f in files:
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                yield row["prompt"]
                yield row["reply"]


def train(sample_dir: Path, vocab_size: int) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(sample_texts(sample_dir), trainer=trainer)
    return tok


def tokenizer_config(model_max_length: int) -> dict:
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS,
        "eos_token": END,
        "pad_token": PAD,
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": model_max_length,
        "chat_template": CHAT_TEMPLATE,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sample_dir", type=Path)
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--model-max-length", type=int, default=32768)
    args = parser.parse_args()
    tok = train(args.sample_dir, args.vocab_size)
    args.model_dir.mkdir(parents=True, exist_ok=True)
    tok.save(str(args.model_dir / "tokenizer.json"))
    config = tokenizer_config(args.model_max_length)
    (args.model_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    ids = {t: tok.token_to_id(t) for t in SPECIAL_TOKENS}
    print(f"tokenizer: vocab {tok.get_vocab_size()}, special ids {ids} -> {args.model_dir}")


if __name__ == "__main__":
    main()
