#!/usr/bin/env python3
"""PyTorch SDPA peer for bench/attention.ts (runs on the GPU machine only; never part of the product).

1. Correctness: reads the inputs and our output that the TS benchmark wrote to --check-dir (one
   folder per prefill variant, or the files directly in it) and compares each of our outputs with SDPA
   (float32 math on the same bf16 inputs, and the flash backend in bf16).
2. Speed: times causal SDPA prefill (flash backend, cuDNN backend) at the same shapes (32 q heads,
   8 kv heads, d = 128, bf16) with CUDA events, median of repeats, and prints each of our variants'
   TFLOP/s from --ours (the TS benchmark's JSON report) side by side with both, with the ratios.
"""
import argparse
import json
import os
import statistics
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

H, HKV, D = 32, 8, 128


def causal_flops(n: int) -> float:
    pairs = n * (n + 1) / 2
    return 4 * pairs * H * D


def bf16_file(path: str, shape) -> torch.Tensor:
    raw = torch.from_file(path, dtype=torch.int16, size=int(torch.tensor(shape).prod()))
    return raw.view(torch.bfloat16).view(*shape)


def sdpa(q, k, v, backend):
    """q: [1, H, n, D]; k, v: [1, HKV, n, D]. GQA through enable_gqa, else by repeating KV heads."""
    with sdpa_kernel([backend]):
        try:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        except RuntimeError:
            g = q.shape[1] // k.shape[1]
            return F.scaled_dot_product_attention(
                q, k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1), is_causal=True)


def check_all(check_dir: str) -> list:
    """Checks the files in check_dir, or in each of its sub-folders (one per variant)."""
    if os.path.exists(os.path.join(check_dir, "meta.json")):
        return [check(check_dir)]
    dirs = sorted(d for d in os.listdir(check_dir) if os.path.exists(os.path.join(check_dir, d, "meta.json")))
    results = [check(os.path.join(check_dir, d)) for d in dirs]
    torch.cuda.empty_cache()
    return results


def check(check_dir: str) -> dict:
    meta = json.load(open(os.path.join(check_dir, "meta.json")))
    n = meta["n"]
    q = bf16_file(os.path.join(check_dir, "q.bf16"), (n, H, D)).cuda()
    k = bf16_file(os.path.join(check_dir, "k.bf16"), (HKV, n, D)).cuda()
    v = bf16_file(os.path.join(check_dir, "v.bf16"), (HKV, n, D)).cuda()
    ours = torch.from_file(os.path.join(check_dir, "out.f32"), dtype=torch.float32, size=n * H * D).view(n, H, D).cuda()
    qb = q.transpose(0, 1).unsqueeze(0)  # [1, H, n, D]
    kb, vb = k.unsqueeze(0), v.unsqueeze(0)
    ref = sdpa(qb.float(), kb.float(), vb.float(), SDPBackend.MATH)[0].transpose(0, 1)  # [n, H, D]
    flash = sdpa(qb, kb, vb, SDPBackend.FLASH_ATTENTION)[0].transpose(0, 1).float()

    def rel(a, b):
        return (torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b)).item()

    variant = meta.get("variant", "")
    out = {"n": n, "variant": variant, "ours_vs_fp32_sdpa": rel(ours, ref), "sdpa_flash_vs_fp32_sdpa": rel(flash, ref),
           "ours_nan": int(torch.isnan(ours).sum().item())}
    print(f"check n={n} {variant}: ours vs fp32 SDPA rel err {out['ours_vs_fp32_sdpa']:.2e}; "
          f"SDPA flash (bf16) vs fp32 SDPA {out['sdpa_flash_vs_fp32_sdpa']:.2e}; NaN in ours: {out['ours_nan']}")
    return out


def time_ms(fn, warmup=2, repeats=10) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e))
    return statistics.median(times)


def bench(lengths, repeats) -> list:
    rows = []
    for n in lengths:
        g = torch.Generator(device="cuda").manual_seed(n)
        q = (torch.rand(1, H, n, D, device="cuda", generator=g) * 4 - 2).bfloat16()
        k = (torch.rand(1, HKV, n, D, device="cuda", generator=g) * 4 - 2).bfloat16()
        v = (torch.rand(1, HKV, n, D, device="cuda", generator=g) * 2 - 1).bfloat16()
        for name, backend in (("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)):
            try:
                ms = time_ms(lambda: sdpa(q, k, v, backend), repeats=repeats)
                rows.append({"n": n, "backend": name, "ms": ms, "tflops": causal_flops(n) / (ms * 1e-3) / 1e12})
                print(f"sdpa {name} n={n}: {ms:.3f} ms, {rows[-1]['tflops']:.1f} TFLOP/s", flush=True)
            except RuntimeError as err:
                rows.append({"n": n, "backend": name, "error": str(err).splitlines()[0]})
                print(f"sdpa {name} n={n}: unavailable ({rows[-1]['error']})", flush=True)
        del q, k, v
        torch.cuda.empty_cache()
    return rows


def side_by_side(ours: dict, peers: list) -> None:
    print("\nprefill, causal, H=32 Hkv=8 d=128 bf16 (TFLOP/s; ratio = ours / SDPA; * = the launcher's default)")
    fmt = lambda x: f"{x:9.1f}" if x else f"{'-':>9}"
    ratio = lambda a, b: f"{a / b:8.2f}" if a and b else f"{'-':>8}"
    print(f"{'n':>7} {'variant':>13} {'ms':>9} {'ours':>9} {'flash':>9} {'cudnn':>9} {'/flash':>8} {'/cudnn':>8}")
    for n in sorted({r["n"] for r in ours["prefill"]}):
        peer = {r["backend"]: r.get("tflops") for r in peers if r["n"] == n}
        fl, cu = peer.get("flash"), peer.get("cudnn")
        for r in (r for r in ours["prefill"] if r["n"] == n):
            label = r["variant"] + ("*" if r.get("isDefault") else "")
            print(f"{n:>7} {label:>13} {r['ms']:9.3f} {fmt(r['tflops'])} {fmt(fl)} {fmt(cu)} {ratio(r['tflops'], fl)} {ratio(r['tflops'], cu)}")
    print("\ndecode (one token, H=32 Hkv=8 d=128): GB/s read vs device copy (read+write)")
    for r in ours["decode"]:
        print(f"  n={r['n']:>7} {r.get('variant', ''):>10}: {r['ms'] * 1e3:8.1f} us (eager {r.get('eagerMs', float('nan')) * 1e3:.1f}) {r['gbps']:7.0f} GB/s; copy {r['copyGbps']:7.0f} GB/s; "
              f"{100 * r['ratio']:5.1f}% of copy; floor {r['floorMs'] * 1e3:.1f} us")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check-dir")
    ap.add_argument("--ours", help="bench/attention.ts JSON report")
    ap.add_argument("--lengths", default="4096,16384,32768,65536")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--out")
    a = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}", flush=True)
    result = {"torch": torch.__version__, "device": torch.cuda.get_device_name()}
    if a.check_dir:
        result["check"] = check_all(a.check_dir)
    result["sdpa"] = bench([int(x) for x in a.lengths.split(",")], a.repeats)
    if a.out:
        json.dump(result, open(a.out, "w"), indent=2)
    if a.ours and os.path.exists(a.ours):
        side_by_side(json.load(open(a.ours)), result["sdpa"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
