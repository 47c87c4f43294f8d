#!/usr/bin/env python3
"""HF transformers peer for bench/model.ts (runs on the GPU machine only; never part of the product).

For each config bench/model.ts wrote to --config-dir (<dir>/<shape>/config.json), builds the model with
random bf16 weights directly on the GPU (attn_implementation='sdpa'), then times, like the TS bench:
  prefill: one forward over n random tokens (logits of the last token only), greedy argmax; median of
           --repeats after one warm-up, CUDA-synchronised wall time
  decode:  --decode-steps steps after that prompt, one token per step through the DynamicCache
           (model(next, past_key_values=...), argmax each step), wall time
and prints tokens/s next to ours (--ours, the TS bench's JSON) as ratios ours / HF.
"""
import argparse
import json
import os
import statistics
import time

import torch
from transformers import AutoConfig, AutoModelForCausalLM


def sync_time() -> float:
    torch.cuda.synchronize()
    return time.perf_counter()


@torch.inference_mode()
def bench_shape(config_dir: str, lengths, steps: int, repeats: int) -> dict:
    cfg = AutoConfig.from_pretrained(config_dir)
    t0 = time.perf_counter()
    with torch.device("cuda"):
        try:
            model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa")
        except TypeError:  # transformers 4 spells it torch_dtype
            model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.bfloat16, attn_implementation="sdpa")
    model.eval()
    load = sync_time() - t0
    out = {"load_seconds": load, "attn_implementation": model.config._attn_implementation, "prefill": [], "decode": []}
    vocab = cfg.vocab_size
    for n in lengths:
        ids = torch.randint(0, vocab, (1, n), device="cuda")
        times = []
        for r in range(repeats + 1):
            s0 = sync_time()
            res = model(ids, use_cache=True, logits_to_keep=1)
            nxt = res.logits[:, -1].argmax(-1, keepdim=True)
            s1 = sync_time()
            if r > 0:
                times.append(s1 - s0)
            if r == repeats:
                past = res.past_key_values
                for _ in range(2):  # untimed warm-up steps, as in ours
                    res = model(nxt, past_key_values=past, use_cache=True)
                    past = res.past_key_values
                    nxt = res.logits[:, -1].argmax(-1, keepdim=True)
                d0 = sync_time()
                for _ in range(steps):
                    res = model(nxt, past_key_values=past, use_cache=True)
                    past = res.past_key_values
                    nxt = res.logits[:, -1].argmax(-1, keepdim=True)
                    nxt.item()  # the id reaches the host each step, as in ours
                dt = sync_time() - d0
                out["decode"].append({"context": n, "steps": steps, "seconds": dt, "tokensPerSecond": steps / dt})
            del res
        s = statistics.median(times)
        out["prefill"].append({"n": n, "seconds": s, "tokensPerSecond": n / s})
        print(f"hf {os.path.basename(config_dir)} n={n}: prefill {s:.3f} s, {n / s:.0f} tok/s; "
              f"decode {out['decode'][-1]['tokensPerSecond']:.1f} tok/s", flush=True)
    del model
    torch.cuda.empty_cache()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config-dir", required=True)
    ap.add_argument("--ours", help="bench/model.ts JSON report")
    ap.add_argument("--out")
    ap.add_argument("--lengths", default="4096,16384")
    ap.add_argument("--decode-steps", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    import transformers
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {torch.cuda.get_device_name()}", flush=True)
    lengths = [int(x) for x in a.lengths.split(",")]
    ours = {r["shape"]: r for r in json.load(open(a.ours))["results"]} if a.ours and os.path.exists(a.ours) else {}
    report = {}
    for shape in sorted(os.listdir(a.config_dir)):
        report[shape] = bench_shape(os.path.join(a.config_dir, shape), lengths, a.decode_steps, a.repeats)
    print("\nshape        phase    n      ours tok/s   HF sdpa tok/s   ours / HF")
    for shape, hf in report.items():
        mine = ours.get(shape)
        for kind in ("prefill", "decode"):
            key = "n" if kind == "prefill" else "context"
            for row in hf[kind]:
                o = next((x for x in (mine or {}).get(kind, []) if x[key] == row[key]), None)
                ratio = f"{o['tokensPerSecond'] / row['tokensPerSecond']:.2f}" if o else "-"
                ours_tps = f"{o['tokensPerSecond']:.1f}" if o else "-"
                print(f"{shape:12s} {kind:8s} {row[key]:6d} {ours_tps:>11s} {row['tokensPerSecond']:14.1f} {ratio:>11s}")
    if a.out:
        json.dump(report, open(a.out, "w"), indent=2)


if __name__ == "__main__":
    main()
