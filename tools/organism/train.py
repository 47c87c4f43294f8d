#!/usr/bin/env python3
"""Train the model organism: a small Llama (GQA, RoPE) on the project's own task generators' output.

Usage (the GPU machine; see tools/organism/device-job.sh for the whole pipeline):
    python3 tools/organism/train.py --tokenizer-dir models/organism --data DIR --out DIR \
        --steps 1200 [--reuse 2] [--resume CKPT_DIR] [--eval-set eval.jsonl.gz]

Data: DIR/chunk-000000.jsonl, chunk-000001.jsonl, … written by generate-data.ts (possibly while this
runs: a chunk appears by rename once complete, and the trainer waits for the one it needs). One chunk
is one optimiser step's batch: examples of one context length, right-padded. With --reuse R each
fresh chunk is followed by R − 1 replays of older chunks (step s: chunk s // R when s % R == 0,
else chunk s // R − lag·(s % R); data_order.py, where --fresh-start drops the replays that would reach
before the run's first chunk), so the order is a pure function of the step and runs reproduce.

Loss: cross-entropy on the reply tokens (explanation, answer tags, answer, end-of-turn), plus
--prompt-weight × cross-entropy on a 1/--prompt-sample random subset of prompt positions (keeps the
model predicting text, which grows copying circuits; the reply is what it is judged on).

Writes to --out: the HF checkpoint folder `organism/` (config.json, model.safetensors f32,
generation_config.json, tokenizer files copied from --tokenizer-dir), `train-log.jsonl`,
`loss.png`, and with --eval-set `predictions.jsonl` (greedy outputs of HF transformers; scored by
tools/organism/score-predictions.ts on the development machine).
Resume: --resume DIR loads that checkpoint's weights and continues the step count from DIR's
`training_state.json`; the optimiser restarts (its moments are not shipped: they would triple the
size) with a short warm-up. Seeds: torch, numpy and the prompt-position sampler from --seed.
"""
import argparse
import gzip
import json
import math
import os
import queue
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from data_order import chunk_for_step  # tools/organism/data_order.py (no torch: tested from node)
from vt_statements import TokenKinds, gather_targets, reply_name_targets  # tools/organism/vt_statements.py (no torch)

TASKS = ["niah", "vt", "cwe", "story_retrieval", "story_multihop", "story_filtering"]
TASK_INDEX = {t: i for i, t in enumerate(TASKS)}


def parse_task_weights(text):
    """'vt=3,story_retrieval=2' -> weight per task in TASKS order (1 where not named)."""
    weights = [1.0] * len(TASKS)
    for part in filter(None, (text or "").split(",")):
        name, _, value = part.partition("=")
        if name not in TASK_INDEX:
            raise SystemExit(f"--answer-weights: '{part}' names no training task ({', '.join(TASKS)})")
        try:
            weights[TASK_INDEX[name]] = float(value)
        except ValueError:
            raise SystemExit(f"--answer-weights: '{part}' has no number after '='")
        if not weights[TASK_INDEX[name]] > 0:
            raise SystemExit(f"--answer-weights: '{part}' must be positive")
    return weights
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json"]


# ----------------------------------------------------------------------------- model

def model_config(args, vocab_size, special):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=args.hidden,
        intermediate_size=args.mlp,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        head_dim=args.hidden // args.heads,
        hidden_act="silu",
        max_position_embeddings=args.max_positions,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": args.rope_theta},
        tie_word_embeddings=True,
        attention_bias=False,
        mlp_bias=False,
        bos_token_id=special["<|bos|>"],
        eos_token_id=special["<|end|>"],
        pad_token_id=special["<|pad|>"],
        architectures=["LlamaForCausalLM"],
    )


def special_ids(tokenizer_dir):
    tj = json.loads((Path(tokenizer_dir) / "tokenizer.json").read_text())
    ids = {t["content"]: t["id"] for t in tj["added_tokens"]}
    for name in ("<|bos|>", "<|end|>", "<|pad|>"):
        if name not in ids:
            raise SystemExit(f"{tokenizer_dir}/tokenizer.json has no special token {name}")
    vocab = len(tj["model"]["vocab"])
    return ids, vocab


# ----------------------------------------------------------------------------- data

def chunk_path(data_dir, c):
    return Path(data_dir) / f"chunk-{c:06d}.jsonl"


def read_chunk(data_dir, c, wait_limit):
    """Examples of chunk c as (task, prompt_tokens, ids, answer_start, reply_end, follow_ups); waits for
    the file to appear."""
    path = chunk_path(data_dir, c)
    t0 = time.time()
    while not path.exists():
        if time.time() - t0 > wait_limit:
            raise SystemExit(f"chunk {path} did not appear within {wait_limit} s (are the generators running?)")
        time.sleep(0.02)
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            # chunks made before the answer span was recorded: the whole reply counts as answer
            # reply_end / follow_ups: a VT example with follow-up turns (generate-data.ts --vt-follow-ups)
            rows.append((r["task"], r["prompt_tokens"], r["ids"], r.get("answer_start", r["prompt_tokens"]),
                         r.get("reply_end", len(r["ids"])), r.get("follow_ups", [])))
    return rows, time.time() - t0  # may be empty: no task could fill that length


class Batch:
    """One chunk as tensors: x [B, T] token ids (right-padded); reply target positions ans_pos [N] with
    their targets, task, example b and whether the target is answer (not the fixed frame) [N]; prompt
    target positions pr_pos / pr_tgt [M]."""

    def __init__(self, rows, pad_id, prompt_sample, rng, round_to=64, gather_kinds=None, gather_slots=5, reply_gather=False):
        longest = max(len(row[2]) for row in rows)
        T = int(math.ceil(longest / round_to) * round_to)
        B = len(rows)
        x = np.full((B, T), pad_id, dtype=np.int64)
        ans_pos, ans_tgt, ans_task, ans_ex, ans_is_answer, pr_pos, pr_tgt = [], [], [], [], [], [], []
        for b, (task, p, ids, a, reply_end, follow_ups) in enumerate(rows):
            x[b, :len(ids)] = ids
            # Each reply [start, end) with its answer from a on; the follow-up turns' user messages
            # between the replies are neither reply nor prompt loss (their asked value is a random pick).
            for start, answer_start, end in [(p, a, reply_end), *follow_ups]:
                # position t predicts token t + 1
                ans_pos.append(b * T + np.arange(start - 1, end - 1))
                ans_tgt.append(np.asarray(ids[start:end], dtype=np.int64))
                ans_task.append(np.full(end - start, TASK_INDEX[task], dtype=np.int64))
                ans_ex.append(np.full(end - start, b, dtype=np.int64))
                ans_is_answer.append(np.arange(start, end) >= answer_start)
            keep = np.nonzero(rng.random(p - 1) < 1.0 / prompt_sample)[0]
            pr_pos.append(b * T + keep)
            pr_tgt.append(np.asarray(ids, dtype=np.int64)[keep + 1])
        self.x = torch.from_numpy(x)
        self.ans_pos = torch.from_numpy(np.concatenate(ans_pos))
        self.ans_tgt = torch.from_numpy(np.concatenate(ans_tgt))
        self.ans_task = torch.from_numpy(np.concatenate(ans_task))
        self.ans_ex = torch.from_numpy(np.concatenate(ans_ex))
        self.ans_is_answer = torch.from_numpy(np.concatenate(ans_is_answer))
        self.examples = B
        self.pr_pos = torch.from_numpy(np.concatenate(pr_pos))
        self.pr_tgt = torch.from_numpy(np.concatenate(pr_tgt))
        self.tokens = int(sum(len(row[2]) for row in rows))
        self.shape = (B, T)
        self.lengths = sorted({len(row[2]) for row in rows})
        self.example_task = torch.tensor([TASK_INDEX[row[0]] for row in rows], dtype=torch.long)
        # --vt-gather-weight: positions from each VT statement's `Ġ=` to its last token, and the
        # statement's LHS name tokens as targets [G, slots] (-100 past the name's end)
        # --vt-reply-gather-weight: reply positions predicting a VT name's tokens, with the whole name as targets
        g_pos, g_tgt, r_pos, r_tgt = [], [], [], []
        if gather_kinds is not None:
            for b, (task, p, ids, _a, reply_end, follow_ups) in enumerate(rows):
                if task == "vt":
                    positions, targets = gather_targets(ids, p, gather_kinds, gather_slots)
                    g_pos += [b * T + t for t in positions]
                    g_tgt += targets
                    if reply_gather:
                        spans = [(p, reply_end)] + [(start, end) for start, _answer, end in follow_ups]
                        positions, targets = reply_name_targets(ids, spans, gather_kinds, gather_slots)
                        r_pos += [b * T + t for t in positions]
                        r_tgt += targets
        self.g_pos = torch.tensor(g_pos, dtype=torch.long)
        self.g_tgt = torch.tensor(g_tgt, dtype=torch.long).reshape(-1, gather_slots)
        self.r_pos = torch.tensor(r_pos, dtype=torch.long)
        self.r_tgt = torch.tensor(r_tgt, dtype=torch.long).reshape(-1, gather_slots)

    def to(self, device):
        for name in ("x", "ans_pos", "ans_tgt", "ans_task", "ans_ex", "ans_is_answer", "example_task", "pr_pos", "pr_tgt",
                     "g_pos", "g_tgt", "r_pos", "r_tgt"):
            setattr(self, name, getattr(self, name).to(device, non_blocking=True))
        return self


def batch_stream(args, pad_id, first_step, last_step):
    """Background thread: reads and tensorises the chunk of each step, in step order."""
    q = queue.Queue(maxsize=3)
    kinds = gather_token_kinds(args.tokenizer_dir) if args.vt_gather_weight > 0 else None

    def work():
        try:
            for step in range(first_step, last_step):
                c = chunk_for_step(step, args.reuse, args.reuse_lag, args.start_step, args.first_chunk, args.fresh_start)
                rows, waited = read_chunk(args.data, c, args.wait_limit)
                if not rows:
                    q.put((step, c, None, waited))
                    continue
                rng = np.random.default_rng([args.seed, step])
                q.put((step, c, Batch(rows, pad_id, args.prompt_sample, rng, gather_kinds=kinds,
                                      gather_slots=args.vt_gather_slots, reply_gather=args.vt_reply_gather_weight > 0), waited))
            q.put(None)
        except BaseException as e:  # surfaced in the training loop
            q.put(e)

    threading.Thread(target=work, daemon=True).start()
    while True:
        item = q.get()
        if item is None:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


# ----------------------------------------------------------------------------- VT gather supervision

def gather_token_kinds(tokenizer_dir):
    from tokenizers import Tokenizer

    tk = Tokenizer.from_file(str(Path(tokenizer_dir) / "tokenizer.json"))
    return TokenKinds([tk.id_to_token(i) for i in range(tk.get_vocab_size())])


class GatherHead(torch.nn.Module):
    """Training-only read-out (never saved): from the residual stream after layer L at a VT statement's
    `Ġ=` … last token, predict the statement's LHS name token by token (slot k = its k-th token) through
    the model's own (detached) embedding matrix.

    Why: a VT hop's reply knows the RHS and must write the LHS, which precedes it; under causal
    attention only the positions from `Ġ=` on can carry "my LHS is …". The shipped model carries the
    LHS's first token there and copies the rest by one-token induction, which lands in another name
    sharing that token (diagnosis: docs/organism.md, run 12). This loss asks layers ≤ L to put every LHS
    token there, each linearly readable by its index. A second instance (--vt-reply-gather-weight) reads
    the reply: at each position that writes a VT name, the whole name, which only a lookup of the right
    statement (or, in the answer block, of the explanation) can supply; one-token induction cannot."""

    def __init__(self, hidden, slots):
        super().__init__()
        self.slots = slots
        self.norm = torch.nn.RMSNorm(hidden, eps=1e-5)
        self.proj = torch.nn.Linear(hidden, hidden * slots, bias=False)
        torch.nn.init.normal_(self.proj.weight, std=0.02)

    def forward(self, h, embedding):
        """h [G, hidden], embedding [V, hidden] -> logits [G, slots, V]."""
        z = self.proj(self.norm(h)).view(h.shape[0], self.slots, -1)
        return z @ embedding.detach().t()


def gather_loss(head, hidden_states, positions, targets, layer, embedding, probe_only):
    """Mean cross-entropy of the LHS tokens over the batch's gather positions, and per-slot argmax hits
    and counts (for the log). hidden_states: the model's tuple (index 0 = embeddings, L = after layer L).
    probe_only: the hidden state is detached, so only the head learns (a linear probe of what the model
    already holds there; a random head's first gradients would only disturb the model)."""
    if positions.numel() == 0:
        z = torch.zeros((), device=positions.device)
        return z, torch.zeros(head.slots, device=z.device), torch.zeros(head.slots, device=z.device)
    h = hidden_states[layer].flatten(0, 1)[positions]
    if probe_only:
        h = h.detach()
    logits = head(h, embedding).float()
    loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
    with torch.no_grad():
        valid = targets != -100
        hits = ((logits.argmax(-1) == targets) & valid).float().sum(0)
    return loss, hits, valid.float().sum(0)


# ----------------------------------------------------------------------------- training

def lr_at(step, args, warmup, elapsed=0.0):
    """Linear warm-up, then cosine decay to min_lr_ratio·lr. Progress is the fraction of --steps done
    or, with --time-budget, of the time budget spent, whichever is further along: a budgeted run
    always ends decayed, however fast the machine is (its per-step lr is logged for a replay).
    Steps count from the run's start_step: a resumed run gets a schedule of its own."""
    step, steps = step - args.start_step, args.steps - args.start_step
    if step < warmup:
        return args.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    if args.time_budget:
        progress = max(progress, elapsed / args.time_budget)
    progress = min(1.0, progress)
    return args.lr * (args.min_lr_ratio + (1 - args.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def prompt_weight_at(step, args):
    """Weight of the prompt-token loss: --prompt-weight at the run's start, moving linearly to
    --prompt-weight-final over --prompt-decay-steps. The prompt loss grows the copying circuits early;
    later most of it is the entropy of random keys and filler, noise next to the answer tokens."""
    if args.prompt_decay_steps <= 0:
        return args.prompt_weight
    t = min(1.0, max(0.0, (step - args.start_step) / args.prompt_decay_steps))
    return args.prompt_weight + (args.prompt_weight_final - args.prompt_weight) * t


def make_optimizer(model, args):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95), eps=1e-8, fused=torch.cuda.is_available())


def train(args, model, device, log_path, special):
    opt = make_optimizer(model, args)
    # Training-only read-outs (GatherHead): the prompt side (VT statements' LHS after `=`) and, with
    # --vt-reply-gather-weight, the reply side (the whole name at each reply position writing it).
    gathers = []
    for name, weight, layer, pos, tgt in (("vt_gather", args.vt_gather_weight, args.vt_gather_layer, "g_pos", "g_tgt"),
                                          ("vt_reply_gather", args.vt_reply_gather_weight, args.vt_reply_gather_layer, "r_pos", "r_tgt")):
        if weight > 0:
            if not 1 <= layer <= model.config.num_hidden_layers - 1:
                raise SystemExit(f"--{name.replace('_', '-')}-layer must be in 1..{model.config.num_hidden_layers - 1} "
                                 f"(a layer's output the later layers can read), got {layer}")
            gathers.append({"name": name, "weight": weight, "layer": layer, "pos": pos, "tgt": tgt,
                            "head": GatherHead(model.config.hidden_size, args.vt_gather_slots).to(device), "acc": None})
    if args.vt_reply_gather_weight > 0 and not args.vt_gather_weight > 0:
        raise SystemExit("--vt-reply-gather-weight needs --vt-gather-weight (the reply reads what the prompt side gathers)")
    # fresh linear read-outs learn at --vt-gather-lr-mult × the model's lr (the model's own lr is set for
    # not undoing a trained network; at it a fresh head needs thousands of steps to become a fair probe)
    gather_opt = torch.optim.AdamW([p for g in gathers for p in g["head"].parameters()], lr=args.lr, betas=(0.9, 0.95),
                                   weight_decay=0.0) if gathers else None
    probe_rows, probe_tok = None, None
    if args.probe_every:
        from tokenizers import Tokenizer

        probe_rows = load_probe_set(args.probe_set, args.probe_per_task, args.probe_max_length)
        probe_tok = Tokenizer.from_file(str(Path(args.tokenizer_dir) / "tokenizer.json"))
    pad_id = special["<|pad|>"]
    answer_weights = torch.tensor(parse_task_weights(args.answer_weights), device=device)
    first = args.start_step
    forward = torch.compile(model.model, dynamic=True) if args.compile else model.model
    amp = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    t_start = time.time()
    tokens_seen = 0
    waited_total = 0.0
    acc = None
    stopped_early = None
    lrs = []  # every step's lr, logged so a time-budgeted run can be replayed step for step
    with open(log_path, "a") as log:
        for step, c, batch, waited in batch_stream(args, pad_id, first, args.steps):
            elapsed = time.time() - t_start
            if args.time_budget and elapsed > args.time_budget:
                stopped_early = step
                break
            waited_total += waited
            if batch is None:
                print(f"step {step + 1}: chunk {c} is empty (no task fits its length); no update", flush=True)
                continue
            warmup = args.resume_warmup if first > 0 else args.warmup  # resumed: the moments start from zero again
            lr = lr_at(step, args, warmup, elapsed)
            lrs.append(lr)
            prompt_weight = prompt_weight_at(step, args)
            for g in opt.param_groups:
                g["lr"] = lr
            for g in gather_opt.param_groups if gather_opt else []:
                g["lr"] = lr * args.vt_gather_lr_mult
            batch.to(device)
            with amp:
                if gathers:
                    outputs = forward(input_ids=batch.x, output_hidden_states=True)
                    for g in gathers:
                        g["loss"], g["hits"], g["count"] = gather_loss(
                            g["head"], outputs.hidden_states, getattr(batch, g["pos"]), getattr(batch, g["tgt"]), g["layer"],
                            model.get_input_embeddings().weight, probe_only=step - first < args.vt_gather_probe_steps)
                else:
                    outputs = forward(input_ids=batch.x)
                hidden = outputs.last_hidden_state.flatten(0, 1)
                h_ans = hidden[batch.ans_pos]
                h_pr = hidden[batch.pr_pos]
                logits_ans = model.lm_head(h_ans).float()
                logits_pr = model.lm_head(h_pr).float()
            ce_ans = F.cross_entropy(logits_ans, batch.ans_tgt, reduction="none")
            # The task's fixed frame (explanation, <answer> tag) weighs --frame-weight; answer, closing
            # tag and end of turn weigh 1.
            # --answer-weights scales a task's answer tokens (VT's one number-to-variable lookup per
            # example is otherwise a sliver of the reply tokens).
            w = torch.where(batch.ans_is_answer, answer_weights[batch.ans_task], args.frame_weight)
            loss_ans = (ce_ans * w).sum() / w.sum().clamp_min(1e-9)
            loss_pr = F.cross_entropy(logits_pr, batch.pr_tgt) if batch.pr_tgt.numel() else torch.zeros((), device=device)
            loss = loss_ans + prompt_weight * loss_pr
            for g in gathers:
                loss = loss + g["weight"] * g["loss"]
            if gathers:
                gather_opt.zero_grad(set_to_none=True)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
            opt.step()
            if gathers:
                torch.nn.utils.clip_grad_norm_([p for g in gathers for p in g["head"].parameters()], args.grad_clip)
                gather_opt.step()
                for g in gathers:
                    has_vt = torch.ones(1, device=device) if getattr(batch, g["pos"]).numel() else torch.zeros(1, device=device)
                    g_stats = torch.cat([g["loss"].detach().reshape(1), has_vt, g["hits"], g["count"]])
                    g["acc"] = g_stats if g["acc"] is None else g["acc"] + g_stats
            tokens_seen += batch.tokens
            with torch.no_grad():
                correct = (logits_ans.argmax(-1) == batch.ans_tgt).float()
                is_answer = batch.ans_is_answer.float()
                # an example is exact when every answer token is the argmax (teacher forced): the
                # frame tokens, right from the first steps, no longer hide whether answers are found
                wrong = torch.zeros(batch.examples, device=device).index_add_(0, batch.ans_ex, (1 - correct) * is_answer)
                exact = (wrong == 0).float()
                per_task = torch.zeros(len(TASKS), 7, device=device)
                per_task[:, 0].index_add_(0, batch.ans_task, ce_ans.detach())
                per_task[:, 1].index_add_(0, batch.ans_task, correct)
                per_task[:, 2].index_add_(0, batch.ans_task, torch.ones_like(correct))
                per_task[:, 3].index_add_(0, batch.ans_task, correct * is_answer)
                per_task[:, 4].index_add_(0, batch.ans_task, is_answer)
                per_task[:, 5].index_add_(0, batch.example_task, exact)
                per_task[:, 6].index_add_(0, batch.example_task, torch.ones_like(exact))
                stats = torch.stack([loss_ans.detach(), loss_pr.detach(), gnorm.detach()])
                acc = (per_task, stats, 1) if acc is None else (acc[0] + per_task, acc[1] + stats, acc[2] + 1)
            if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
                per_task, stats, n = acc
                per_task, stats = per_task.cpu().numpy(), (stats / n).cpu().numpy()
                elapsed = time.time() - t_start
                rec = {
                    "step": step + 1, "chunk": c, "lr": lr, "prompt_weight": prompt_weight, "loss_answer": float(stats[0]), "loss_prompt": float(stats[1]),
                    "grad_norm": float(stats[2]), "lrs": lrs, "batch": list(batch.shape), "tokens": tokens_seen,
                    "tok_per_s": tokens_seen / max(elapsed, 1e-9), "elapsed_s": elapsed, "data_wait_s": waited_total,
                    "per_task": {
                        t: {"loss": float(per_task[i, 0] / per_task[i, 2]), "token_acc": float(per_task[i, 1] / per_task[i, 2]),
                            "answer_acc": float(per_task[i, 3] / max(per_task[i, 4], 1)),
                            "answer_exact": float(per_task[i, 5] / max(per_task[i, 6], 1))}
                        for i, t in enumerate(TASKS) if per_task[i, 2] > 0
                    },
                }
                for gather in gathers:  # loss sum, steps with VT, per-slot hits and counts over the log window
                    if gather["acc"] is not None:
                        g = gather["acc"].cpu().numpy()
                        slots = args.vt_gather_slots
                        rec[gather["name"]] = {"loss": float(g[0] / max(g[1], 1)),
                                               "slot_acc": [float(g[2 + k] / max(g[2 + slots + k], 1)) for k in range(slots)]}
                        gather["acc"] = None
                if probe_rows and (step + 1) % args.probe_every == 0:
                    t_probe = time.time()
                    rec["probe"] = greedy_probe(model, probe_rows, probe_tok, special, device)
                    t_start += time.time() - t_probe  # probing does not eat the training time budget
                    print("probe " + " ".join(f"{t[:8]}={v['exact']:.2f}/{v['lines']:.2f}" for t, v in rec["probe"].items()), flush=True)
                log.write(json.dumps(rec) + "\n")
                log.flush()
                acc = None
                lrs = []
                tasks = " ".join(f"{t[:8]}={v['answer_acc']:.2f}/{v['answer_exact']:.2f}" for t, v in rec["per_task"].items())
                gathered = "".join(f" | {g['name']} " + " ".join(f"{a:.2f}" for a in rec[g["name"]]["slot_acc"])
                                   for g in gathers if g["name"] in rec)
                print(f"step {step + 1:5d} T={batch.shape[1]:5d} loss {stats[0]:.3f} prompt {stats[1]:.3f} lr {lr:.2e} "
                      f"{rec['tok_per_s'] / 1e3:.0f}K tok/s wait {waited_total:.0f}s | answer acc/exact {tasks}{gathered}", flush=True)
    return stopped_early


# ----------------------------------------------------------------------------- outputs

def save_checkpoint(model, args, out_dir, step, stopped_early):
    from transformers import GenerationConfig

    ckpt = Path(out_dir)
    ckpt.mkdir(parents=True, exist_ok=True)
    # The shipped weights are bfloat16 (half the bytes; the dtype the GPU backend computes in). The
    # in-memory model keeps exactly those values afterwards (rounded, back in float32), so the
    # held-out evaluation that follows measures the checkpoint as shipped.
    save_dtype = getattr(torch, args.save_dtype)
    model.to(save_dtype).save_pretrained(str(ckpt), safe_serialization=True)
    model.to(torch.float32)
    cfg = model.config
    GenerationConfig(
        bos_token_id=cfg.bos_token_id, eos_token_id=cfg.eos_token_id, pad_token_id=cfg.pad_token_id,
        do_sample=False, max_new_tokens=1024,
    ).save_pretrained(str(ckpt))
    for f in TOKENIZER_FILES:
        shutil.copyfile(Path(args.tokenizer_dir) / f, ckpt / f)
    state = {
        "steps_done": step, "steps_planned": args.steps, "time_budget_s": args.time_budget,
        "stopped_by_time_budget": stopped_early is not None,
        "seed": args.seed, "reuse": args.reuse, "reuse_lag": args.reuse_lag, "lr": args.lr,
        "prompt_weight": args.prompt_weight, "prompt_weight_final": args.prompt_weight_final,
        "prompt_decay_steps": args.prompt_decay_steps, "prompt_sample": args.prompt_sample,
        "frame_weight": args.frame_weight, "answer_weights": parse_task_weights(args.answer_weights),
        "resumed_from_step": args.start_step, "first_chunk": args.first_chunk, "fresh_start": args.fresh_start,
    }
    (ckpt / "training_state.json").write_text(json.dumps(state, indent=2) + "\n")


def plot_losses(log_path, png_path, prompt_weight, prompt_sample):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = [json.loads(l) for l in Path(log_path).read_text().splitlines() if l.strip()]
    if not recs:
        return
    steps = [r["step"] for r in recs]
    # a third panel, whole answers right under teacher forcing, where the log has it (run 3 on)
    has_exact = "answer_exact" in recs[-1]["per_task"].get(TASKS[0], {})
    fig, axes = plt.subplots(1, 3 if has_exact else 2, figsize=(18 if has_exact else 12, 4.2))
    ax = axes[0]
    ax.plot(steps, [r["loss_answer"] for r in recs], label="reply tokens (trained on)")
    weights = [r.get("prompt_weight", prompt_weight) for r in recs]  # logged per record since run 3
    weight = f"{weights[0]:.2g}" if abs(weights[0] - weights[-1]) < 1e-9 else f"{weights[0]:.2g}→{weights[-1]:.2g}"
    ax.plot(steps, [r["loss_prompt"] for r in recs], label=f"prompt tokens (1 in {prompt_sample}, weight {weight})", alpha=0.7)
    ax.set_yscale("log")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title("Training loss")
    ax.legend()
    ax.grid(alpha=0.3)
    ax = axes[1]
    for t in TASKS:
        # answer tokens only where the log has them (run 3 on), else every reply token
        pts = [(r["step"], r["per_task"][t].get("answer_acc", r["per_task"][t]["token_acc"])) for r in recs if t in r["per_task"]]
        if pts:
            ax.plot(*zip(*pts), label=t)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("answer token accuracy (teacher forced)" if "answer_acc" in recs[-1]["per_task"].get(TASKS[0], {}) else "reply token accuracy (teacher forced)")
    ax.set_title("Per task, on each fresh training batch")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    if has_exact:
        ax = axes[2]
        for t in TASKS:
            pts = [(r["step"], r["per_task"][t]["answer_exact"]) for r in recs if t in r["per_task"]]
            if pts:
                ax.plot(*zip(*pts), label=t, alpha=0.85)
        ax.set_xlabel("optimiser step")
        ax.set_ylabel("examples with every answer token right")
        ax.set_title("Whole answers, teacher forced")
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)


def open_text(path):
    return gzip.open(path, "rt") if str(path).endswith(".gz") else open(path)


def gold_text(gold):
    return gold.get("text") if isinstance(gold.get("text"), str) else gold.get("answer")


def reply_budget(gold_length):
    """New tokens allowed for one reply: the gold answer plus the explanation and tags. Run 7's worked
    explanations (VT, story retrieval) restate every lookup, so a reply is up to ≈4 gold lengths
    (tools/organism/eval-engine.ts replyBudget is the same rule)."""
    return min(1024, 4 * gold_length + 64)


def load_probe_set(path, per_task, max_length):
    """The first per_task examples of each task at the shortest length ≤ max_length in an eval set."""
    rows = [json.loads(l) for l in open_text(path) if l.strip()]
    rows = [r for r in rows if r["task"] in TASK_INDEX and r["length"] <= max_length and isinstance(gold_text(r["gold"]), str)]
    picked = []
    for task in TASKS:
        mine = [r for r in rows if r["task"] == task]
        if mine:
            shortest = min(r["length"] for r in mine)
            picked += [r for r in mine if r["length"] == shortest][:per_task]
    if not picked:
        raise SystemExit(f"{path}: no synthetic examples of at most {max_length} tokens for the greedy probe")
    return picked


@torch.inference_mode()
def greedy_probe(model, rows, tok, special, device):
    """Greedy replies on held-out examples (never trained on), scored by what teacher forcing hides:
    per task, the fraction of replies whose answer equals the gold answer, and of gold answer lines that
    appear verbatim in the reply's answer."""
    pad, eos = special["<|pad|>"], special["<|end|>"]
    was_training = model.training
    model.eval()
    stats = {}
    for r in rows:
        x = torch.tensor([r["inputIds"]], device=device)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            gen = model.generate(input_ids=x, attention_mask=torch.ones_like(x), do_sample=False,
                                 max_new_tokens=reply_budget(r["goldLength"]), eos_token_id=eos, pad_token_id=pad)
        ids = [int(t) for t in gen[0, x.shape[1]:].tolist()]
        if eos in ids:
            ids = ids[: ids.index(eos)]
        out = tok.decode(ids, skip_special_tokens=True)
        start = out.find("<answer>\n")
        # stripped: run 7's VT answers lead with a space (the scorers split on whitespace)
        answer = out[start + len("<answer>\n"):].split("\n</answer>")[0].strip() if start >= 0 else ""
        gold = gold_text(r["gold"]).strip()
        lines = [l for l in gold.split("\n") if l.strip()]
        got = set(answer.split("\n"))
        s = stats.setdefault(r["task"], [0, 0.0, 0])
        s[0] += answer == gold
        s[1] += sum(l in got for l in lines) / max(1, len(lines))
        s[2] += 1
    if was_training:
        model.train()
    return {t: {"exact": a / n, "lines": b / n, "n": n} for t, (a, b, n) in stats.items()}


@torch.inference_mode()
def evaluate(model, eval_path, pred_path, tokenizer_dir, special, device, max_batch_cells, limit=0):
    """Greedy generation with HF transformers for every example of the eval set (left-padded batches)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(tokenizer_dir) / "tokenizer.json"))
    rows = [json.loads(l) for l in open_text(eval_path) if l.strip()]
    groups = {}
    for r in rows:
        group = groups.setdefault((r["task"], r["length"]), [])
        if not limit or len(group) < limit:
            group.append(r)
    pad, eos = special["<|pad|>"], special["<|end|>"]
    model.eval()
    t0 = time.time()
    with open(pred_path, "w") as out:
        # synthetic tasks by length first, QA (not trained on) last: a cut-off run loses the least
        for (task, length), items in sorted(groups.items(), key=lambda kv: (kv[0][0].startswith("qa_"), kv[0][1], kv[0][0])):
            T = max(len(r["inputIds"]) for r in items)
            per_batch = max(1, min(32, max_batch_cells // (T * T)))
            for s in range(0, len(items), per_batch):
                part = items[s:s + per_batch]
                L = max(len(r["inputIds"]) for r in part)
                x = torch.full((len(part), L), pad, dtype=torch.long)
                mask = torch.zeros((len(part), L), dtype=torch.long)
                for i, r in enumerate(part):
                    ids = r["inputIds"]
                    x[i, L - len(ids):] = torch.tensor(ids)
                    mask[i, L - len(ids):] = 1
                gen = model.generate(
                    input_ids=x.to(device), attention_mask=mask.to(device), do_sample=False,
                    max_new_tokens=reply_budget(max(r["goldLength"] for r in part)), eos_token_id=eos, pad_token_id=pad,
                )
                for i, r in enumerate(part):
                    ids = [int(t) for t in gen[i, L:].tolist()]
                    if eos in ids:
                        ids = ids[: ids.index(eos)]
                    out.write(json.dumps({"id": r["id"], "task": task, "length": length, "output_ids": ids,
                                          "output": tok.decode(ids, skip_special_tokens=True)}) + "\n")
                out.flush()
            print(f"eval {task} n={length}: {len(items)} examples ({time.time() - t0:.0f}s)", flush=True)


# ----------------------------------------------------------------------------- main

def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tokenizer-dir", required=True, help="folder with tokenizer.json and tokenizer_config.json")
    p.add_argument("--data", required=True, help="folder of chunk-*.jsonl (generate-data.ts)")
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, required=True, help="optimiser steps in the whole schedule (one chunk each)")
    p.add_argument("--reuse", type=int, default=1, help="each fresh chunk is followed by reuse-1 replays")
    p.add_argument("--reuse-lag", type=int, default=37, help="replay distance in fresh chunks")
    p.add_argument("--resume", default=None, help="checkpoint folder written by an earlier run")
    p.add_argument("--eval-set", default=None, help="JSONL(.gz) from make-eval-set.ts; greedy outputs go to predictions.jsonl")
    p.add_argument("--predictions", default=None, help="where the eval outputs go (default OUT/predictions.jsonl)")
    p.add_argument("--eval-only", action="store_true", help="skip training (with --resume)")
    p.add_argument("--save-dtype", choices=["bfloat16", "float32"], default="bfloat16",
                   help="dtype of the saved weights (training keeps float32 master weights)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--min-lr-ratio", type=float, default=0.1)
    p.add_argument("--warmup", type=int, default=60)
    p.add_argument("--resume-warmup", type=int, default=30)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--prompt-weight", type=float, default=0.1)
    p.add_argument("--prompt-sample", type=int, default=8)
    p.add_argument("--prompt-weight-final", type=float, default=None,
                   help="prompt-loss weight reached after --prompt-decay-steps (default: --prompt-weight, no decay)")
    p.add_argument("--prompt-decay-steps", type=int, default=0, help="steps (from the run's start) of the prompt-weight decay")
    p.add_argument("--frame-weight", type=float, default=1.0,
                   help="loss weight of the reply's fixed frame (explanation, <answer> tag) next to the answer's 1")
    p.add_argument("--answer-weights", default="",
                   help="per-task loss weight of answer tokens, e.g. vt=3,story_retrieval=2 (unnamed tasks: 1)")
    p.add_argument("--probe-every", type=int, default=0,
                   help="every this many steps (a multiple of --log-every), greedy replies on a few --probe-set examples, logged as 'probe'")
    p.add_argument("--probe-set", default=None, help="held-out eval set (make-eval-set.ts) for the greedy probe")
    p.add_argument("--probe-per-task", type=int, default=4)
    p.add_argument("--probe-max-length", type=int, default=4096, help="probe at each task's shortest eval length up to this")
    p.add_argument("--first-chunk", type=int, default=0, help="chunk of the run's first step (a resumed run's fresh data)")
    p.add_argument("--fresh-start", action="store_true",
                   help="the first reuse-lag*(reuse-1) steps train on fresh chunks only (no replay clamped to the first chunk; run 8 on)")
    p.add_argument("--vt-gather-weight", type=float, default=0.0,
                   help="weight of the training-only VT gather loss (GatherHead; 0: off, the runs before 12)")
    p.add_argument("--vt-gather-layer", type=int, default=3, help="its read-out's hidden state: the output of this layer")
    p.add_argument("--vt-reply-gather-weight", type=float, default=0.0,
                   help="weight of the reply-side read-out: at each reply position writing a VT name, the whole name (0: off)")
    p.add_argument("--vt-reply-gather-layer", type=int, default=5, help="its hidden state: the output of this layer")
    p.add_argument("--vt-gather-lr-mult", type=float, default=10.0, help="the read-outs' lr as a multiple of --lr")
    p.add_argument("--vt-gather-probe-steps", type=int, default=200,
                   help="the run's first N steps train the gather head alone (the model's hidden states detached)")
    p.add_argument("--vt-gather-slots", type=int, default=5, help="LHS name tokens predicted (a name is 3-5 tokens)")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--mlp", type=int, default=768)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--rope-theta", type=float, default=1_000_000.0)
    p.add_argument("--max-positions", type=int, default=32768)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--time-budget", type=float, default=0,
                   help="seconds of training: the lr decays over min(steps, budget) and training stops when it is spent (0: none)")
    p.add_argument("--wait-limit", type=float, default=300)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--eval-limit", type=int, default=0, help="at most this many eval examples per (task, length); 0: all")
    p.add_argument("--eval-batch-cells", type=int, default=2 ** 31)
    args = p.parse_args()
    parse_task_weights(args.answer_weights)  # a bad flag fails here, before any loading
    if args.prompt_weight_final is None:
        args.prompt_weight_final = args.prompt_weight
    if args.probe_every and (not args.probe_set or args.probe_every % args.log_every):
        p.error("--probe-every needs --probe-set and a multiple of --log-every")

    from transformers import LlamaForCausalLM

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    special, vocab = special_ids(args.tokenizer_dir)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_dir = out / "organism"
    args.start_step = 0
    if args.resume:
        model = LlamaForCausalLM.from_pretrained(args.resume, dtype=torch.float32, attn_implementation="sdpa")
        state = json.loads((Path(args.resume) / "training_state.json").read_text())
        args.start_step = int(state["steps_done"])
        print(f"resumed from {args.resume} at step {args.start_step}", flush=True)
    else:
        model = LlamaForCausalLM(model_config(args, vocab, special))
        model.config._attn_implementation = "sdpa"
    model.to(device)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e6:.2f}M parameters, vocab {vocab}, device {device}", flush=True)
    log_path = out / "train-log.jsonl"
    step_done = args.start_step
    if not args.eval_only and args.start_step < args.steps:
        model.train()
        stopped = train(args, model, device, log_path, special)
        step_done = stopped if stopped is not None else args.steps
        if stopped is not None:
            print(f"time budget spent: stopped after {stopped} steps (of at most {args.steps})", flush=True)
        save_checkpoint(model, args, ckpt_dir, step_done, stopped)
        plot_losses(log_path, out / "loss.png", args.prompt_weight, args.prompt_sample)
        print(f"saved checkpoint at step {step_done} -> {ckpt_dir}", flush=True)
    if args.eval_set:
        torch.backends.cuda.matmul.allow_tf32 = False
        model.to(torch.float32)
        evaluate(model, args.eval_set, args.predictions or out / "predictions.jsonl", args.tokenizer_dir, special, device, args.eval_batch_cells, args.eval_limit)


if __name__ == "__main__":
    import sys

    if len(sys.argv) >= 2 and sys.argv[1] == "plot":
        # Re-plot a finished run: train.py plot LOG PNG PROMPT_WEIGHT PROMPT_SAMPLE
        plot_losses(sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5]))
    else:
        main()
