#!/usr/bin/env python3
"""Kernel oracle, PyTorch half (GPU machine; never part of the product).

Reads the case directories that bench/kernel-oracle.ts wrote (DIR/<case>/meta.json + raw tensors, format
in bench/kernel-oracle-cases.ts) and recomputes every case with PyTorch on the same bf16 inputs, using
transformers' own modules where they exist:
  rmsnorm, rmsnorm_heads   LlamaRMSNorm (weight offset 0) / Gemma3RMSNorm ((1 + w), offset 1)
  rope_rotate_half, rope_heads   LlamaRotaryEmbedding built from the case's rope_parameters (default,
                           linear, llama3 scaling: transformers' rope init functions) + apply_rotary_pos_emb;
                           our inverse frequencies (src/engine/rope.ts) are also compared with its inv_freq
  swiglu, gated_act_rows   ACT2FN['silu'] / ACT2FN['gelu_pytorch_tanh'] of the gate times up
  add, bias_add_rows       a + b, y + bias
  embed_rows               nn.Embedding / Gemma3TextScaledWordEmbedding
  softcap_f32              Gemma's final-logit soft-capping: tanh(x / cap) * cap
  argmax_rows              torch.argmax
  kv_append                index copy into the cache
  decode_attention         F.scaled_dot_product_attention (enable_gqa, else transformers' repeat_kv) over
                           the rows a decode step attends (the last `slidingWindow` rows with a window)

For each case it prints one line: the relative L2 error of our output against the float32 computation
(ours), of PyTorch's own bf16 computation against the same float32 one (the yardstick), the tolerance
and PASS / FAIL. Tolerance for bf16 outputs: max(2 x yardstick, 2^-8) (one bf16 rounding of the output
is ~2^-9 relative); for float32 outputs (softcap): 1e-5. Our output must hold no NaN (outputs were
poisoned with NaN before the launch), columns a strided kernel must not touch must be bit-identical to
the input, and embedding, argmax and KV append must match exactly. Exits 1 if any case fails.

Usage: python3 tools/peers/kernel_oracle.py --dir DIR [--out FILE.json] [--device cuda|cpu]
"""
import argparse
import json
import math
import os
import sys

import torch
import torch.nn.functional as F
import transformers
from transformers import LlamaConfig
from transformers.activations import ACT2FN
from transformers.models.gemma3.modeling_gemma3 import Gemma3RMSNorm, Gemma3TextScaledWordEmbedding
from transformers.models.llama.modeling_llama import LlamaRMSNorm, LlamaRotaryEmbedding, apply_rotary_pos_emb, repeat_kv

FORMAT, VERSION = "sparse-frontier-kernel-oracle", 1
BF16_FLOOR = 2.0 ** -8
F32_TOLERANCE = 1e-5
INV_FREQ_TOLERANCE = 1e-6
TORCH_DTYPE = {"bf16": torch.int16, "f32": torch.float32, "i32": torch.int32}


def load(case_dir: str, spec: dict, device: str) -> torch.Tensor:
    with open(os.path.join(case_dir, spec["file"]), "rb") as f:
        raw = bytearray(f.read())
    t = torch.frombuffer(raw, dtype=TORCH_DTYPE[spec["dtype"]])
    expected = math.prod(spec["shape"])
    if t.numel() != expected:
        raise ValueError(f"{spec['file']}: {t.numel()} values, meta.json declares {spec['shape']}")
    if spec["dtype"] == "bf16":
        t = t.view(torch.bfloat16)
    return t.view(*spec["shape"]).to(device)


def rel(ours: torch.Tensor, ref: torch.Tensor) -> float:
    a, b = ours.double(), ref.double()
    return (torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b)).item()


def bits_equal(a: torch.Tensor, b: torch.Tensor) -> int:
    """Number of elements whose bits differ (NaN-safe)."""
    view = torch.int16 if a.dtype == torch.bfloat16 else torch.int32
    return int((a.contiguous().view(view) != b.contiguous().view(view)).sum().item())


def norm_module(dim: int, eps: float, offset: float, weight: torch.Tensor, dtype) -> torch.nn.Module:
    if offset == 0:
        m = LlamaRMSNorm(dim, eps=eps)
    elif offset == 1:
        m = Gemma3RMSNorm(dim, eps=eps)
    else:
        raise ValueError(f"weight offset {offset}: no transformers RMSNorm has it")
    with torch.no_grad():
        m.weight.copy_(weight.float())
    return m.to(device=weight.device, dtype=dtype)


def rotary(case: dict, rope_parameters: dict, device: str) -> LlamaRotaryEmbedding:
    cfg = LlamaConfig(hidden_size=case["heads"] * case["headDim"], num_attention_heads=case["heads"], num_key_value_heads=case["heads"],
                      head_dim=case["headDim"], max_position_embeddings=case["maxPosition"], rope_parameters=dict(rope_parameters))
    return LlamaRotaryEmbedding(config=cfg).to(device)


def apply_rope(x: torch.Tensor, positions: torch.Tensor, rot: LlamaRotaryEmbedding) -> torch.Tensor:
    """x: [T, heads, D] in the computation dtype; positions: [T]. HF layout: q [1, heads, T, D], cos/sin [1, T, D]."""
    q = x.permute(1, 0, 2).unsqueeze(0)
    cos, sin = rot(q, positions.long().unsqueeze(0))
    q_embed, _ = apply_rotary_pos_emb(q, q, cos, sin)
    return q_embed[0].permute(1, 0, 2)


def sdpa_decode(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, math_only: bool) -> torch.Tensor:
    """q: [H, D]; k, v: [Hkv, n, D] (the attended rows). Returns [H, D]."""
    qb, kb, vb = q.unsqueeze(0).unsqueeze(2), k.unsqueeze(0), v.unsqueeze(0)

    def run():
        try:
            return F.scaled_dot_product_attention(qb, kb, vb, scale=scale, enable_gqa=True)
        except (RuntimeError, TypeError):
            g = q.shape[0] // k.shape[0]
            return F.scaled_dot_product_attention(qb, repeat_kv(kb, g), repeat_kv(vb, g), scale=scale)

    if math_only:
        from torch.nn.attention import SDPBackend, sdpa_kernel
        with sdpa_kernel([SDPBackend.MATH]):
            return run()[0, :, 0]
    return run()[0, :, 0]


def check_case(case_dir: str, device: str) -> dict:
    meta = json.load(open(os.path.join(case_dir, "meta.json")))
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ValueError(f"{case_dir}: not {FORMAT} v{VERSION}")
    c = meta["case"]
    t = {name: load(case_dir, spec, device) for name, spec in meta["tensors"].items()}
    kernel = c["kernel"]
    r = {"case": c["name"], "kernel": kernel, "notes": []}
    ours, ref, bf16 = None, None, None
    exact = False
    f32_output = False

    with torch.no_grad():
        if kernel == "rmsnorm":
            ours = t["out"]
            ref = norm_module(c["cols"], c["eps"], c["weightOffset"], t["weight"], torch.float32)(t["x"].float())
            bf16 = norm_module(c["cols"], c["eps"], c["weightOffset"], t["weight"], torch.bfloat16)(t["x"])
        elif kernel in ("rmsnorm_heads", "rope_heads", "rope_rotate_half"):
            if kernel == "rope_rotate_half":
                region = slice(None)
                x_in, out = t["x"], t["out"]
            else:
                lo = c["columnOffset"]
                region = slice(lo, lo + c["heads"] * c["headDim"])
                x_in = t["x"][:, region].reshape(c["tokens"], c["heads"], c["headDim"])
                out = t["out"][:, region].reshape(c["tokens"], c["heads"], c["headDim"])
                # Columns outside the heads must come back bit-identical.
                mask = torch.ones(t["x"].shape[1], dtype=torch.bool, device=device)
                mask[region] = False
                untouched = bits_equal(t["out"][:, mask], t["x"][:, mask])
                r["untouched_columns_changed"] = untouched
                if untouched:
                    r["notes"].append(f"{untouched} values outside the heads changed")
            ours = out
            if kernel == "rmsnorm_heads":
                ref = norm_module(c["headDim"], c["eps"], c["weightOffset"], t["weight"], torch.float32)(x_in.float())
                bf16 = norm_module(c["headDim"], c["eps"], c["weightOffset"], t["weight"], torch.bfloat16)(x_in)
            else:
                rot = rotary(c, meta["rope_parameters"], device)
                inv_err = rel(t["inv_freq"].to(rot.inv_freq.device), rot.inv_freq.float())
                r["inv_freq_vs_transformers"] = inv_err
                r["notes"].append(f"inv_freq vs transformers {inv_err:.1e}")
                if inv_err > INV_FREQ_TOLERANCE:
                    r["notes"].append("inverse frequencies differ")
                ref = apply_rope(x_in.float(), t["positions"], rot)
                bf16 = apply_rope(x_in, t["positions"], rot)
        elif kernel == "swiglu":
            ours = t["out"]
            ref = ACT2FN["silu"](t["gate"].float()) * t["up"].float()
            bf16 = ACT2FN["silu"](t["gate"]) * t["up"]
        elif kernel == "gated_act_rows":
            ours = t["out"]
            act = ACT2FN["silu" if c["activation"] == "silu" else "gelu_pytorch_tanh"]
            gate, up = t["gate_up"][:, : c["inner"]], t["gate_up"][:, c["inner"]:]
            ref = act(gate.float()) * up.float()
            bf16 = act(gate) * up
        elif kernel == "add":
            ours, ref, bf16 = t["out"], t["a"].float() + t["b"].float(), t["a"] + t["b"]
        elif kernel == "bias_add_rows":
            ours, ref, bf16 = t["out"], t["y"].float() + t["bias"].float(), t["y"] + t["bias"]
        elif kernel == "embed_rows":
            ours = t["out"]
            V, C = t["table"].shape
            if c["scale"] == 1:
                emb = torch.nn.Embedding(V, C)
                label = "nn.Embedding"
            else:
                emb = Gemma3TextScaledWordEmbedding(V, C, padding_idx=0, embed_scale=math.sqrt(C))
                label = "Gemma3TextScaledWordEmbedding"
            with torch.no_grad():
                emb.weight.copy_(t["table"].float())
            ids = t["ids"].long()
            ref = emb.to(device=device, dtype=torch.float32)(ids)
            bf16 = emb.to(dtype=torch.bfloat16)(ids)
            exact = True
            r["mismatches"] = bits_equal(ours, bf16)
            r["notes"].append(f"exact vs {label} in bf16: {r['mismatches']} differ")
        elif kernel == "softcap_f32":
            ours = t["out"]
            cap = c["cap"]
            ref = torch.tanh(t["logits"] / cap) * cap
            bf16 = torch.tanh(t["logits"].bfloat16() / cap) * cap
            f32_output = True
        elif kernel == "argmax_rows":
            want = torch.argmax(t["logits"], dim=-1).int()
            r["mismatches"] = int((t["out"] != want).sum().item())
            r["ours"] = t["out"].tolist()
            r["torch"] = want.tolist()
            exact = True
        elif kernel == "kv_append":
            H, Hkv, D, T, s = c["heads"], c["kvHeads"], c["headDim"], c["tokens"], c["startRow"]
            qkv = t["qkv"].view(T, H + 2 * Hkv, D)
            mism = 0
            for name, part in (("k_cache", slice(H, H + Hkv)), ("v_cache", slice(H + Hkv, H + 2 * Hkv))):
                want = t[name + "_before"].clone()
                want[:, s:s + T] = qkv[:, part].permute(1, 0, 2)
                mism += bits_equal(t[name], want)
            r["mismatches"] = mism
            exact = True
        elif kernel == "decode_attention":
            ours = t["out"]
            lo = 0 if c["slidingWindow"] is None else max(0, c["kvLen"] - c["slidingWindow"])
            k, v = t["k"][:, lo:c["kvLen"]], t["v"][:, lo:c["kvLen"]]
            ref = sdpa_decode(t["q"].float(), k.float(), v.float(), c["scale"], math_only=True)
            bf16 = sdpa_decode(t["q"], k, v, c["scale"], math_only=False)
            if meta.get("run"):
                r["notes"].append(f"splits {meta['run'].get('splits')} ({meta['run'].get('tuning')})")
        else:
            raise ValueError(f"unknown kernel {kernel}")

    if ours is not None:
        r["nan"] = int(torch.isnan(ours.float()).sum().item())
        r["ours_vs_fp32"] = rel(ours, ref)
        r["torch_bf16_vs_fp32"] = rel(bf16, ref)
        r["tolerance"] = F32_TOLERANCE if f32_output else max(2 * r["torch_bf16_vs_fp32"], BF16_FLOOR)
    ok = True
    if exact:
        ok = r["mismatches"] == 0
    if ours is not None:
        ok = ok and r["nan"] == 0 and r["ours_vs_fp32"] <= r["tolerance"]
    ok = ok and r.get("untouched_columns_changed", 0) == 0 and r.get("inv_freq_vs_transformers", 0.0) <= INV_FREQ_TOLERANCE
    r["pass"] = ok
    return r


def line(r: dict) -> str:
    head = f"{r['kernel']:<17} {r['case']:<36}"
    if "ours_vs_fp32" in r:
        body = (f"ours {r['ours_vs_fp32']:.2e}  torch-bf16 {r['torch_bf16_vs_fp32']:.2e}  tol {r['tolerance']:.1e}  "
                f"NaN {r['nan']}")
    else:
        body = f"exact: {r['mismatches']} mismatches"
    notes = f"  [{'; '.join(r['notes'])}]" if r["notes"] else ""
    return f"{head} {body}{notes}  {'PASS' if r['pass'] else 'FAIL'}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", required=True, help="the case directories bench/kernel-oracle.ts wrote")
    ap.add_argument("--out", help="JSON summary")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    if not os.path.isdir(a.dir):
        print(f"kernel oracle: {a.dir} does not exist (did bench/kernel-oracle.ts run on a GPU?)")
        return 1
    cases = sorted(d for d in os.listdir(a.dir) if os.path.exists(os.path.join(a.dir, d, "meta.json")))
    if not cases:
        print(f"kernel oracle: no case directories in {a.dir}")
        return 1
    print(f"kernel oracle: torch {torch.__version__}, transformers {transformers.__version__}, device {a.device}"
          f"{' (' + torch.cuda.get_device_name() + ')' if a.device == 'cuda' else ''}")
    results = []
    for name in cases:
        try:
            r = check_case(os.path.join(a.dir, name), a.device)
        except Exception as e:  # one broken case must not hide the others
            r = {"case": name, "kernel": "?", "pass": False, "error": f"{type(e).__name__}: {e}"}
            print(f"{'?':<17} {name:<36} ERROR {r['error']}  FAIL")
            results.append(r)
            continue
        print(line(r))
        results.append(r)
    failed = [r["case"] for r in results if not r["pass"]]
    print(f"kernel oracle: {len(results) - len(failed)}/{len(results)} PASS" + (f"; FAIL: {', '.join(failed)}" if failed else ""))
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"torch": torch.__version__, "transformers": transformers.__version__, "device": a.device, "results": results}, f, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
