#!/usr/bin/env python3
"""Where does a checkpoint keep a VT statement's LHS name, and where does its reply look? (CPU diagnosis)

    python3 tools/organism/vt_gather_probe.py ROWS.json --model models/organism [--out report.json]

ROWS.json is tools/organism/vt-copy-probe.ts's output (prompt + worked reply ids, reply name spans).
Three measurements, each printed as JSON:

1. tokens: how the tokenizer splits the prompt's VT names (tokens per name, names holding a merged
   piece, names whose first token another name of the context shares).
2. decode: per layer, how well a linear read-out (multinomial logistic regression, trained on 2/3 of
   the instances, scored on the rest) recovers the statement's LHS letter k (k = 1..5) from the hidden
   state at `Ġ=` and at the statement's last token (RHS name or number). A hop's reply can find the
   statement only through its RHS, which comes after the LHS; under causal attention only positions
   from `Ġ=` on can hold "my LHS is ...", so this says which LHS letters are there to be read.
3. attention: teacher forced on the worked reply, for each reply position that predicts a chain name's
   token k, the attention mass of every head on (a) the right statement's LHS tokens, (b) its `Ġ=` and
   RHS tokens, (c) tokens of other names sharing the target's first token, (d) other occurrences of the
   target name; split by whether the argmax was right.
"""
import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vt_statements import TokenKinds, find_statements  # noqa: E402


def token_stats(rows, kinds, vocab):
    per_name, merged, shared_first, names_seen = {}, 0, 0, 0
    for r in rows:
        sts = find_statements(r["ids"], kinds, limit=r["spans"][0][0])
        firsts = {}
        for s in sts:
            firsts.setdefault(r["ids"][s["lhs"][0]], set()).add(tuple(r["ids"][s["lhs"][0]:s["lhs"][1]]))
        for s in sts:
            a, b = s["lhs"]
            per_name[b - a] = per_name.get(b - a, 0) + 1
            merged += any(len(vocab[i].lstrip("Ġ")) > 1 for i in r["ids"][a:b])
            shared_first += len(firsts[r["ids"][a]]) > 1
            names_seen += 1
    return {"names": names_seen, "tokens_per_name": dict(sorted(per_name.items())),
            "share_with_a_merged_piece": round(merged / names_seen, 3),
            "share_whose_first_token_starts_another_name": round(shared_first / names_seen, 3)}


def letter_targets(text):
    return [ord(c) - 65 for c in text]


def fit_readout(x_train, y_train, x_test, y_test, classes=26, steps=300):
    """Multinomial logistic regression (L2 1e-3, full-batch Adam), test accuracy."""
    mean, std = x_train.mean(0), x_train.std(0) + 1e-5
    xt, xs = (x_train - mean) / std, (x_test - mean) / std
    w = torch.zeros(xt.shape[1], classes, requires_grad=True)
    b = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xt @ w + b, y_train) + 1e-3 * (w * w).sum()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float(((xs @ w + b).argmax(-1) == y_test).float().mean())


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("rows")
    p.add_argument("--model", required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None)
    p.add_argument("--limit", type=int, default=0, help="only the first N rows (0: all)")
    args = p.parse_args()
    from tokenizers import Tokenizer
    from transformers import LlamaForCausalLM

    torch.set_num_threads(args.threads)
    tk = Tokenizer.from_file(str(Path(args.model) / "tokenizer.json"))
    vocab = [tk.id_to_token(i) for i in range(tk.get_vocab_size())]
    kinds = TokenKinds(vocab)
    model = LlamaForCausalLM.from_pretrained(args.model, dtype=torch.float32, attn_implementation="eager").eval()
    rows = json.load(open(args.rows))
    if args.limit:
        rows = rows[:args.limit]
    report = {"tokens": token_stats(rows, kinds, vocab)}
    print(json.dumps(report["tokens"]), flush=True)

    layers = model.config.num_hidden_layers
    feats = {"eq": [[] for _ in range(layers + 1)], "end": [[] for _ in range(layers + 1)]}
    targets, instance_of = [], []
    # attention mass sums: [name position k (0..4)][correct?][region] -> per (layer, head)
    regions = ["lhs", "eq_rhs", "collider", "same_name_elsewhere"]
    att = {}
    with torch.inference_mode():
        for ri, r in enumerate(rows):
            ids = r["ids"]
            out = model(input_ids=torch.tensor([ids]), output_hidden_states=True, output_attentions=True)
            hs = [h[0] for h in out.hidden_states]
            pred = out.logits[0].argmax(-1)
            sts = find_statements(ids, kinds, limit=r["spans"][0][0])
            name_of = lambda s: tuple(ids[s["lhs"][0]:s["lhs"][1]])  # noqa: E731
            for s in sts:
                text = tk.decode(ids[s["lhs"][0]:s["lhs"][1]]).strip()
                if len(text) != 5:
                    continue
                for layer in range(layers + 1):
                    feats["eq"][layer].append(hs[layer][s["eq"]])
                    feats["end"][layer].append(hs[layer][s["rhs"][1] - 1])
                targets.append(letter_targets(text))
                instance_of.append(ri)
            by_name = {}
            for s in sts:
                by_name.setdefault(name_of(s), []).append(s)
            rhs_occ = {}
            for s in sts:
                if s["rhs_kind"] == "var":
                    rhs_occ.setdefault(tuple(ids[s["rhs"][0]:s["rhs"][1]]), []).append(s["rhs"])
            for a, b in r["spans"]:
                name = tuple(ids[a:b])
                own = by_name.get(name)
                if not own:
                    continue
                st = own[0]
                lhs = set(range(*st["lhs"]))
                eq_rhs = set(range(st["eq"], st["rhs"][1]))
                collider = set()
                for other, ss in by_name.items():
                    if other != name and other[0] == name[0]:
                        for s2 in ss:
                            collider |= set(range(*s2["lhs"]))
                        for sp in rhs_occ.get(other, []):
                            collider |= set(range(*sp))
                elsewhere = set()
                for sp in rhs_occ.get(name, []):
                    elsewhere |= set(range(*sp))
                sets = [sorted(lhs), sorted(eq_rhs), sorted(collider), sorted(elsewhere)]
                for k in range(b - a):
                    q = a + k - 1
                    ok = int(pred[q]) == ids[a + k]
                    cell = att.setdefault((min(k, 4), ok), {"n": 0, "mass": torch.zeros(len(regions), layers, model.config.num_attention_heads)})
                    cell["n"] += 1
                    for g, positions in enumerate(sets):
                        if positions:
                            for layer in range(layers):
                                cell["mass"][g, layer] += out.attentions[layer][0, :, q, positions].sum(-1)
            print(f"row {ri + 1}/{len(rows)}", file=sys.stderr, flush=True)

    y = torch.tensor(targets)
    inst = torch.tensor(instance_of)
    train = inst % 3 != 0
    decode = {}
    for where in ("eq", "end"):
        for layer in range(layers + 1):
            x = torch.stack(feats[where][layer])
            decode[f"{where} layer {layer}"] = [round(fit_readout(x[train], y[train, k], x[~train], y[~train, k]), 3) for k in range(5)]
            print(where, layer, decode[f"{where} layer {layer}"], flush=True)
    report["decode_lhs_letter_1_to_5"] = decode
    attention = {}
    for (k, ok), cell in sorted(att.items()):
        mean = cell["mass"] / cell["n"]
        attention[f"token {k + 1} {'right' if ok else 'wrong'} (n={cell['n']})"] = {
            region: [[round(float(v), 3) for v in mean[g, layer]] for layer in range(layers)] for g, region in enumerate(regions)}
    report["attention"] = attention
    print(json.dumps(attention), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
