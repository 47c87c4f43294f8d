"""VT statements found in a tokenised prompt (no torch: the gather probe and train.py's auxiliary loss share it).

A statement is `VAR LHS = VAR RHS` or `VAR LHS = 12345`, in the organism's byte-level tokens: `ĠVAR`,
the LHS name's tokens (uppercase pieces, the first led by `Ġ`), `Ġ=`, then `ĠVAR` and the RHS name's
tokens, or the number's tokens (digit pieces, possibly led by a bare `Ġ`). The intro's quoted examples
(`"VAR QWERT = 24680"`) start with a bare `VAR` after a quote and are left out (a bare `VAR` counts only
after a newline: the context's first statement), as is the reply's `VAR NAME,` (no `=`).
"""
import json
import re
import sys

_NAME_FIRST = re.compile(r"^Ġ[A-Z]+$")
_NAME_REST = re.compile(r"^[A-Z]+$")
_DIGITS = re.compile(r"^Ġ?[0-9]+$")


class TokenKinds:
    """Which ids are `ĠVAR`, `Ġ=`, name pieces and number pieces, from the tokenizer's own vocabulary."""

    def __init__(self, id_to_token):
        """id_to_token: list of token strings indexed by id (byte-level, `Ġ` for a leading space)."""
        self.var = {i for i, t in enumerate(id_to_token) if t == "ĠVAR"}
        self.bare_var = {i for i, t in enumerate(id_to_token) if t == "VAR"}
        self.newline = {i for i, t in enumerate(id_to_token) if t.endswith("Ċ")}
        self.eq = {i for i, t in enumerate(id_to_token) if t == "Ġ="}
        if len(self.var) != 1 or len(self.eq) != 1:
            raise ValueError("tokenizer has no single 'ĠVAR' and 'Ġ=' token: not the organism's VT tokenisation")
        self.name_first = {i for i, t in enumerate(id_to_token) if _NAME_FIRST.match(t)}
        self.name_rest = {i for i, t in enumerate(id_to_token) if _NAME_REST.match(t)}
        self.bare_space = {i for i, t in enumerate(id_to_token) if t == "Ġ"}
        self.digits = {i for i, t in enumerate(id_to_token) if _DIGITS.match(t)}
        # letters per name piece (a VT name is 5 letters in 3-5 pieces)
        self.letters = {i: len(t) - t.startswith("Ġ") for i, t in enumerate(id_to_token) if i in self.name_first or i in self.name_rest}
        self.spaced_digits = {i for i, t in enumerate(id_to_token) if _DIGITS.match(t) and t.startswith("Ġ")}


def _name_end(ids, start, kinds):
    """End (exclusive) of the name whose first token is at start, or None if ids[start] starts no name."""
    if start >= len(ids) or ids[start] not in kinds.name_first:
        return None
    end = start + 1
    while end < len(ids) and ids[end] in kinds.name_rest:
        end += 1
    return end


def find_statements(ids, kinds, limit=None):
    """Statements in ids[:limit], in order: dicts with lhs (start, end), eq (position of `Ġ=`), rhs (start, end)
    and rhs_kind ('var' or 'value'). rhs for a variable spans its name's tokens (not `ĠVAR`); for a value,
    its digit pieces (and a leading bare `Ġ`)."""
    n = len(ids) if limit is None else min(limit, len(ids))
    out = []
    t = 0
    while t < n:
        starts = ids[t] in kinds.var or (ids[t] in kinds.bare_var and t > 0 and ids[t - 1] in kinds.newline)
        if not starts:
            t += 1
            continue
        lhs_end = _name_end(ids, t + 1, kinds)
        if lhs_end is None or lhs_end >= n or ids[lhs_end] not in kinds.eq:
            t += 1
            continue
        eq = lhs_end
        r = eq + 1
        if r < n and ids[r] in kinds.var:
            rhs_end = _name_end(ids, r + 1, kinds)
            if rhs_end is None or rhs_end > n:
                t += 1
                continue
            out.append({"lhs": (t + 1, lhs_end), "eq": eq, "rhs": (r + 1, rhs_end), "rhs_kind": "var"})
            t = rhs_end
            continue
        start = r
        if r < n and ids[r] in kinds.bare_space:
            r += 1
        # a number is its first piece, then bare digit pieces (a `Ġ`-led digit piece is the next word)
        first_digit = r
        while r < n and ids[r] in kinds.digits and (r == first_digit or ids[r] not in kinds.spaced_digits):
            r += 1
        if r == first_digit:
            t += 1
            continue
        out.append({"lhs": (t + 1, lhs_end), "eq": eq, "rhs": (start, r), "rhs_kind": "value"})
        t = r
    return out



def gather_targets(ids, prompt_tokens, kinds, slots=5):
    """train.py's VT gather supervision for one example: every position from a prompt statement's `Ġ=`
    to its last token, with the statement's LHS name tokens as targets (slots of them, -100 past the
    name's end). Returns (positions, targets), lists of equal length."""
    positions, targets = [], []
    for st in find_statements(ids, kinds, limit=prompt_tokens):
        lhs = list(ids[st["lhs"][0]:st["lhs"][1]])[:slots]
        target = lhs + [-100] * (slots - len(lhs))
        for t in range(st["eq"], st["rhs"][1]):
            positions.append(t)
            targets.append(target)
    return positions, targets


def reply_name_targets(ids, spans, kinds, slots=5):
    """train.py's reply-side gather supervision: in each reply span [start, end), every 5-letter name
    (a `Ġ`-led uppercase piece, not `ĠVAR`, then bare uppercase pieces), and for each position that
    predicts one of its tokens (the one before it up to its second-to-last), the name's tokens as targets.
    Returns (positions, targets)."""
    positions, targets = [], []
    for start, end in spans:
        t = max(start, 1)
        while t < end:
            if ids[t] not in kinds.name_first or ids[t] in kinds.var:
                t += 1
                continue
            stop = _name_end(ids, t, kinds)
            stop = min(stop, end)
            name = list(ids[t:stop])
            if sum(kinds.letters[i] for i in name) == 5 and len(name) <= slots:
                target = name + [-100] * (slots - len(name))
                for q in range(t - 1, stop - 1):
                    positions.append(q)
                    targets.append(target)
            t = stop
    return positions, targets


def vocabulary(tokenizer_json):
    """id -> token string from a tokenizer.json (model vocab and added tokens), without the tokenizers library."""
    tj = json.loads(open(tokenizer_json, encoding="utf-8").read())
    table = {**tj["model"]["vocab"], **{t["content"]: t["id"] for t in tj.get("added_tokens", [])}}
    out = [""] * (max(table.values()) + 1)
    for token, i in table.items():
        out[i] = token
    return out


if __name__ == "__main__":
    # Test hook: python3 vt_statements.py TOKENIZER_JSON < [{"ids": [...], "prompt_tokens": n}, ...]
    # prints [{"statements", "positions", "targets", "reply_positions", "reply_targets"}, ...] (reply: ids[prompt_tokens:])
    kinds = TokenKinds(vocabulary(sys.argv[1]))
    out = []
    for r in json.load(sys.stdin):
        g = gather_targets(r["ids"], r["prompt_tokens"], kinds)
        rg = reply_name_targets(r["ids"], [(r["prompt_tokens"], len(r["ids"]))], kinds)
        out.append({"statements": find_statements(r["ids"], kinds, limit=r["prompt_tokens"]), "positions": g[0], "targets": g[1],
                    "reply_positions": rg[0], "reply_targets": rg[1]})
    print(json.dumps(out))
