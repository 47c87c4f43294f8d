#!/usr/bin/env python3
"""Train the model organism's byte-level BPE tokenizer and write its tokenizer files.

Usage:
    python3 tools/organism/train_tokenizer.py SAMPLE_DIR MODEL_DIR [--vocab-size 4096] [--uppercase-pairs]

SAMPLE_DIR holds chunk-*.jsonl files written by `generate-data --text` (lines with "prompt" and
"reply"). Writes MODEL_DIR/tokenizer.json and MODEL_DIR/tokenizer_config.json (chat template,
special tokens). Deterministic for a given sample and tokenizers version (the files are read in
sorted order; BPE training breaks ties deterministically).

--uppercase-pairs (run 9, see docs/organism.md): every pair of uppercase ASCII letters is a token, with
and without a leading space (`QN`, `ĠQN`), and a run of uppercase letters is read in pairs from its left
end, so a VT name ` QNLKR` is always ` QN` `LK` `R`: 3 tokens whose first two name 4 of its 5 letters.
"""
import argparse
import json
import string
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

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


# How --uppercase-pairs works, and why this way.
#
# BPE applies its merges by rank anywhere in a pre-token, not from the left, so merges alone cannot
# make a 5-letter name split as pair, pair, letter: in `QNLKR` whichever of QN, NL, LK, KR ranks first
# merges first, and the split would differ from name to name (and the leading space, `ĠQ`, a very
# early merge, would take the first letter alone again). So the pairing is done by the pre-tokenizer:
# a Split on ` ?[A-Z]{2}` (isolated) cuts every uppercase run into pairs from its left end, the first
# with its leading space, before the usual byte-level split. A pair piece is at most 3 bytes, so the BPE
# only has to hold the 2 × 676 pair tokens for every name to be 3 tokens, the same wherever the name
# follows a space (statement, explanation, answer). Runs of uppercase letters never reach the BPE
# otherwise: between the pieces no two uppercase letters are adjacent.
#
# The tokens are real BPE merges, not added tokens: the BPE is trained on text pre-tokenised this way
# (so its merges, for prose, numbers and codes, are learnt on the same pieces it will see), and the
# pair tokens that the training sample is too small to learn (each pair occurs a few times in it) are
# appended as merges, in place of the trained list's last (rarest) merges, so the vocabulary keeps the
# size asked for. At 4,096 that displaces a third of the learnt merges and CWE's prompts grow by 21%
# (NIAH's by 4%); at 5,120, run 9's size, every task is within 4% of the shipped tokenizer. Added tokens would instead be cut out of the text before the BPE, wherever the letters occur:
# inside `VARIABLE_ONE` as anywhere else, and a pair of them would win over any longer learnt token.
# Augmenting the sample with random names would learn pairs only as far as their counts beat the
# rarest prose merges, and triples beside them, with no guarantee of either. The cost: every uppercase
# word is cut the same way (` VAR` is ` VA` `R`), measured in docs/organism.md (run 9).
UPPERCASE_PAIR_PATTERN = " ?[A-Z]{2}"
BYTE_LEVEL_SPACE = "Ġ"  # the byte-level alphabet's symbol for a space; A–Z map to themselves


def pre_tokenizer(uppercase_pairs: bool):
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if not uppercase_pairs:
        return byte_level
    pairs = pre_tokenizers.Split(Regex(UPPERCASE_PAIR_PATTERN), behavior="isolated")
    return pre_tokenizers.Sequence([pairs, byte_level])


def uppercase_pair_pieces() -> list[str]:
    """The 2 × 676 pair pieces in the byte-level alphabet: `AA` … `ZZ`, then `ĠAA` … `ĠZZ`."""
    pairs = [a + b for a in string.ascii_uppercase for b in string.ascii_uppercase]
    return pairs + [BYTE_LEVEL_SPACE + p for p in pairs]


def bpe_segment(piece: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """BPE as the tokenizers library applies it: merge the lowest-ranked adjacent pair (leftmost on a
    tie) until none is a merge. Used only on the ≤ 3-symbol pair pieces, so no cleverness needed."""
    symbols = list(piece)
    while len(symbols) > 1:
        candidates = [(ranks[(a, b)], i) for i, (a, b) in enumerate(zip(symbols, symbols[1:])) if (a, b) in ranks]
        if not candidates:
            break
        _, i = min(candidates)
        symbols[i : i + 2] = [symbols[i] + symbols[i + 1]]
    return symbols


def completion_merges(merges: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Merges to append to `merges` so that every pair piece becomes one token. The bare pairs come
    first, so a spaced pair needs at most one merge more (`Ġ` + `QN` or `ĠQ` + `N`, whichever the
    ranks reach first). Appended merges rank after every earlier one, so a piece already whole stays
    whole, and they fire only inside pair pieces (nowhere else are two uppercase letters adjacent)."""
    ranks = {pair: i for i, pair in enumerate(merges)}
    added: list[tuple[str, str]] = []
    for piece in uppercase_pair_pieces():
        parts = bpe_segment(piece, ranks)
        if len(parts) == 1:
            continue
        if len(parts) != 2:
            raise AssertionError(f"pair piece {piece!r} is {parts} after the bare pairs were completed")
        pair = (parts[0], parts[1])
        ranks[pair] = len(ranks)
        added.append(pair)
    return added


def with_uppercase_pairs(trained: Tokenizer, vocab_size: int) -> Tokenizer:
    """The trained BPE with its merge list cut to the longest prefix that, completed with the missing
    pair tokens, still fits `vocab_size`."""
    spec = json.loads(trained.to_str())["model"]
    vocab: dict[str, int] = spec["vocab"]
    merges = [tuple(m) for m in spec["merges"]]
    base = len(vocab) - len(merges)  # special tokens and the 256-symbol byte alphabet come first
    if any(vocab[a + b] != base + i for i, (a, b) in enumerate(merges)):
        raise AssertionError("trained vocabulary is not specials + alphabet + one token per merge, in order")

    def tokens_with(prefix: int) -> tuple[list[tuple[str, str]], int]:
        kept = merges[:prefix]
        completed = kept + completion_merges(kept)
        # A completion merge may rebuild a token the prefix already has by another path.
        return completed, base + len({a + b for a, b in completed})

    # Dropping one trained merge saves at most one token, so stepping down by the overshoot never
    # passes the longest prefix that fits.
    prefix = len(merges)
    final_merges, size = tokens_with(prefix)
    while size > vocab_size:
        prefix -= size - vocab_size
        final_merges, size = tokens_with(prefix)
    ids = {token: i for token, i in vocab.items() if i < base}
    for a, b in final_merges:
        ids.setdefault(a + b, len(ids))
    tok = Tokenizer(models.BPE(vocab=ids, merges=final_merges))
    print(f"uppercase pairs: kept {prefix} of {len(merges)} trained merges, appended "
          f"{len(final_merges) - prefix} pair merges, vocab {len(ids)}")
    return tok


def check_uppercase_pairs(tok: Tokenizer) -> None:
    """Every pair, with and without its space, encodes to one token (through the whole pipeline)."""
    for piece in uppercase_pair_pieces():
        text = piece.replace(BYTE_LEVEL_SPACE, " ")
        ids = tok.encode(text, add_special_tokens=False).ids
        if len(ids) != 1:
            raise AssertionError(f"{text!r} encodes to {len(ids)} tokens, expected 1")


def train(sample_dir: Path, vocab_size: int, uppercase_pairs: bool = False) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizer(uppercase_pairs)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(sample_texts(sample_dir), trainer=trainer)
    if uppercase_pairs:
        tok = with_uppercase_pairs(tok, vocab_size)
        tok.pre_tokenizer = pre_tokenizer(True)
        tok.add_special_tokens(SPECIAL_TOKENS)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    if uppercase_pairs:
        check_uppercase_pairs(tok)
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
    parser.add_argument(
        "--uppercase-pairs",
        action="store_true",
        help="every uppercase letter pair is a token; uppercase runs are read in pairs from the left",
    )
    args = parser.parse_args()
    tok = train(args.sample_dir, args.vocab_size, args.uppercase_pairs)
    args.model_dir.mkdir(parents=True, exist_ok=True)
    tok.save(str(args.model_dir / "tokenizer.json"))
    config = tokenizer_config(args.model_max_length)
    (args.model_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    ids = {t: tok.token_to_id(t) for t in SPECIAL_TOKENS}
    print(f"tokenizer: vocab {tok.get_vocab_size()}, special ids {ids} -> {args.model_dir}")


if __name__ == "__main__":
    main()
