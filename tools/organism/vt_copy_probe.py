#!/usr/bin/env python3
"""Teacher-forced VT name copy of a checkpoint, on the CPU (inputs from tools/organism/vt-copy-probe.ts).

    python3 tools/organism/vt_copy_probe.py ROWS.json --model models/organism

Per kind of instance (names as generated, or confusable): how often the first token of the chain's
first name is the argmax (the number lookup), how often each chain position's whole name is (every
token of it, given the right tokens before: for positions 2-5 the previous name is right), and how
often the whole chain is. Run 7b, 48 instances at 2K (seeds 30,000,000 + i): first token 45 and 46 of
48; whole names 22, 30, 30, 34, 26 (as generated) and 19, 13, 19, 19, 10 (confusable); whole chain 3
and 0.
"""
import argparse
import json

import torch


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("rows", help="JSON array written by vt-copy-probe.ts")
    p.add_argument("--model", required=True, help="HF checkpoint folder")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (the development machine is shared)")
    args = p.parse_args()
    from transformers import LlamaForCausalLM

    torch.set_num_threads(args.threads)
    model = LlamaForCausalLM.from_pretrained(args.model, dtype=torch.float32, attn_implementation="sdpa").eval()
    rows = json.load(open(args.rows))
    counts = {}
    with torch.inference_mode():
        for r in rows:
            ids = torch.tensor([r["ids"]])
            pred = model(input_ids=ids).logits[0].argmax(-1)  # pred[t] predicts ids[t + 1]
            whole = [all(int(pred[t - 1]) == r["ids"][t] for t in range(a, b)) for a, b in r["spans"]]
            first = r["spans"][0][0]
            c = counts.setdefault(r["kind"], {"instances": 0, "first_token": 0, "whole_name_by_position": [0] * len(whole), "whole_chain": 0})
            c["instances"] += 1
            c["first_token"] += int(pred[first - 1]) == r["ids"][first]
            c["whole_chain"] += all(whole)
            for k, ok in enumerate(whole):
                c["whole_name_by_position"][k] += ok
    print(json.dumps(counts, indent=1))


if __name__ == "__main__":
    main()
