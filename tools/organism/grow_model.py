"""Grow a trained organism deeper and wider without changing what it computes.

Runs 9 and 10 trained new models from scratch and neither formed VT's number -> name lookup in two
calls, while the shipped narrow model has it (first letter right 94%) but copies the rest of a name
from a wrong variable: it lacks an induction circuit keyed on more than one letter. Growing keeps
every skill the shipped model has and adds attention capacity where that circuit can form:

- every layer gets more query and KV heads (same head_dim, same GQA group): the new heads' query,
  key and value rows are drawn at the model's initializer range, their columns of o_proj are zero;
- new layers are inserted at the given positions: attention and MLP input projections drawn, o_proj
  and down_proj zero, norms one.

A zero output projection makes each new part add exactly zero to the residual stream, so the grown
model's logits equal the source's (checked here on random tokens before saving); training then moves
the output projections off zero and the new parts start to contribute.

    python3 tools/organism/grow_model.py SRC_DIR DST_DIR --heads 8 --kv-heads 4 --insert-after 1,3

--insert-after lists source layer indices (0-based) after which one new layer goes; the result has
len(source layers) + len(list) layers. The checkpoint's training_state.json is carried over (step count
and all), with a "grown" record added; the tokenizer and generation files are copied.
"""
import argparse
import json
import shutil
from pathlib import Path

import torch

# The model card (README.md) stays behind: it describes the source checkpoint, not the grown one.
CARRIED_FILES = ("tokenizer.json", "tokenizer_config.json", "generation_config.json", "training_state.json")


def grow_heads(attn, n_heads_old, n_kv_old, n_heads, n_kv, head_dim, std, gen):
    """Append heads to one attention block in place of its projections; new o_proj columns zero."""
    hidden = attn.q_proj.weight.shape[1]

    def extended_rows(w, rows_new):
        extra = torch.randn(rows_new, hidden, generator=gen) * std
        return torch.cat([w.data, extra.to(w.dtype)], dim=0)

    q = extended_rows(attn.q_proj.weight, (n_heads - n_heads_old) * head_dim)
    k = extended_rows(attn.k_proj.weight, (n_kv - n_kv_old) * head_dim)
    v = extended_rows(attn.v_proj.weight, (n_kv - n_kv_old) * head_dim)
    o_old = attn.o_proj.weight.data
    o = torch.cat([o_old, torch.zeros(o_old.shape[0], (n_heads - n_heads_old) * head_dim, dtype=o_old.dtype)], dim=1)
    return q, k, v, o


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--heads", type=int, required=True, help="query heads per layer after growing")
    p.add_argument("--kv-heads", type=int, required=True, help="KV heads per layer after growing")
    p.add_argument("--insert-after", default="", help="comma-separated source layer indices; one new layer after each")
    p.add_argument("--seed", type=int, default=4321)
    args = p.parse_args()

    from transformers import LlamaConfig, LlamaForCausalLM

    src, dst = Path(args.src), Path(args.dst)
    if dst.exists():
        raise SystemExit(f"{dst} exists; choose a new folder")
    model = LlamaForCausalLM.from_pretrained(str(src), dtype=torch.float32)
    cfg = model.config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    h0, kv0, layers0 = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.num_hidden_layers
    inserts = sorted(int(x) for x in args.insert_after.split(",") if x.strip())
    if any(i < 0 or i >= layers0 for i in inserts):
        raise SystemExit(f"--insert-after {args.insert_after}: indices must lie in 0..{layers0 - 1}")
    if args.heads < h0 or args.kv_heads < kv0:
        raise SystemExit(f"growing only: heads {h0} -> {args.heads}, KV heads {kv0} -> {args.kv_heads}")
    if args.heads % args.kv_heads or args.heads // args.kv_heads != h0 // kv0:
        # q head h reads KV head h // group: keeping the group keeps every old head on its old KV head
        raise SystemExit(f"the GQA group must stay {h0 // kv0}: {args.heads} / {args.kv_heads} heads given")

    new_cfg_dict = cfg.to_dict()
    new_cfg_dict.update(num_attention_heads=args.heads, num_key_value_heads=args.kv_heads, head_dim=head_dim,
                        num_hidden_layers=layers0 + len(inserts))
    new_cfg = LlamaConfig(**{k: v for k, v in new_cfg_dict.items() if k not in ("architectures", "transformers_version")})
    torch.manual_seed(args.seed)
    grown = LlamaForCausalLM(new_cfg).to(torch.float32)
    gen = torch.Generator().manual_seed(args.seed)
    std = cfg.initializer_range

    # Source layer i lands at index order[i]; the new layers fill the rest.
    order, at = [], 0
    for i in range(layers0):
        order.append(at)
        at += 1 + (i in inserts)
    new_layers = sorted(set(range(new_cfg.num_hidden_layers)) - set(order))

    with torch.no_grad():
        grown.model.embed_tokens.weight.copy_(model.model.embed_tokens.weight)
        grown.model.norm.weight.copy_(model.model.norm.weight)
        if not cfg.tie_word_embeddings:
            grown.lm_head.weight.copy_(model.lm_head.weight)
        for i, j in enumerate(order):
            a, b = model.model.layers[i], grown.model.layers[j]
            q, k, v, o = grow_heads(a.self_attn, h0, kv0, args.heads, args.kv_heads, head_dim, std, gen)
            b.self_attn.q_proj.weight.copy_(q)
            b.self_attn.k_proj.weight.copy_(k)
            b.self_attn.v_proj.weight.copy_(v)
            b.self_attn.o_proj.weight.copy_(o)
            for name in ("gate_proj", "up_proj", "down_proj"):
                getattr(b.mlp, name).weight.copy_(getattr(a.mlp, name).weight)
            b.input_layernorm.weight.copy_(a.input_layernorm.weight)
            b.post_attention_layernorm.weight.copy_(a.post_attention_layernorm.weight)
        for j in new_layers:
            b = grown.model.layers[j]
            for lin in (b.self_attn.q_proj, b.self_attn.k_proj, b.self_attn.v_proj, b.mlp.gate_proj, b.mlp.up_proj):
                lin.weight.copy_(torch.randn(lin.weight.shape, generator=gen) * std)
            b.self_attn.o_proj.weight.zero_()
            b.mlp.down_proj.weight.zero_()
            b.input_layernorm.weight.fill_(1.0)
            b.post_attention_layernorm.weight.fill_(1.0)

    # The growth must not change the function: compare logits on random tokens (float32).
    model.eval()
    grown.eval()
    ids = torch.randint(3, cfg.vocab_size, (2, 96), generator=gen)
    with torch.no_grad():
        ref = model(input_ids=ids).logits
        got = grown(input_ids=ids).logits
    diff = (ref - got).abs().max().item()
    scale = ref.abs().max().item()
    if diff > 1e-4 * max(1.0, scale):
        raise SystemExit(f"grown model's logits differ from the source's by {diff:.3g} (max |logit| {scale:.3g})")

    dst.mkdir(parents=True)
    grown.to(torch.bfloat16)  # the shipped dtype: the source's weights are bfloat16 values, kept exactly
    grown.save_pretrained(str(dst), safe_serialization=True)
    for name in CARRIED_FILES:
        if (src / name).exists():
            shutil.copyfile(src / name, dst / name)
    state_path = dst / "training_state.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {"steps_done": 0}
    state["grown"] = {
        "from": str(src), "heads": [h0, args.heads], "kv_heads": [kv0, args.kv_heads],
        "layers": [layers0, new_cfg.num_hidden_layers], "source_layers_at": order, "new_layers_at": new_layers,
        "seed": args.seed, "max_logit_diff": diff,
    }
    state_path.write_text(json.dumps(state, indent=2) + "\n")
    n_params = sum(t.numel() for t in grown.parameters())
    print(f"grown {src} -> {dst}: layers {layers0} -> {new_cfg.num_hidden_layers} (new at {new_layers}), "
          f"heads {h0}/{kv0} -> {args.heads}/{args.kv_heads}, {n_params / 1e6:.2f}M parameters; "
          f"max logit difference {diff:.2e}")


if __name__ == "__main__":
    main()
