"""Rewrite a float32 organism checkpoint with bfloat16 weights, in place.

    python3 tools/organism/store_bf16.py models/organism

Round to nearest even (torch's conversion, the same as the CUDA backend's upload), config.json's dtype
updated; tokenizer and generation files untouched. train.py saves bfloat16 itself since run 8; this
converts checkpoints saved before (run 8 was converted with it).
"""
import sys
from pathlib import Path

import torch
from transformers import LlamaForCausalLM


def main(path: str) -> None:
    ckpt = Path(path)
    model = LlamaForCausalLM.from_pretrained(str(ckpt), dtype=torch.float32)
    before = (ckpt / "model.safetensors").stat().st_size
    model.to(torch.bfloat16).save_pretrained(str(ckpt), safe_serialization=True)
    after = (ckpt / "model.safetensors").stat().st_size
    print(f"{ckpt}: model.safetensors {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB (bfloat16)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
