#!/usr/bin/env python3
"""Label agreement of two `edgetune infer` outputs for the same inputs (e.g. x86_64 and aarch64).

Usage: agree.py --gold TEST.jsonl --min-agreement 0.99 --max-metric-diff 0.01 --name WHAT A B

A and B hold one JSON answer per input line, in the order of the gold file's examples (the e2e
inputs are the gold texts, whitespace-normalised). Compared: every sentence task's label and every
word's tag reconstructed from the span answers (`slots` for the task `tags`), as one agreement
fraction over all of them; and, against the gold labels, intent accuracy and exact-span slot F1 of
each side, which must differ by at most --max-metric-diff. Dynamic int8 kernels differ between
x86_64 and aarch64 (other rounding), so logits are not compared here, labels and metrics are.
Prints a one-line summary; exit 1 when a threshold is missed, 2 on unreadable input.
"""

import argparse
import json
import sys


def read_jsonl(path):
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    out.append(json.loads(line))
    except (OSError, json.JSONDecodeError) as e:
        print(f"agree: {path}: {e}", file=sys.stderr)
        sys.exit(2)
    return out


def tags_of(answer, n_words):
    tags = ["O"] * n_words
    for s in answer.get("slots", []):
        for w in range(s["start"], min(s["end"], n_words)):
            tags[w] = ("B-" if w == s["start"] else "I-") + s["type"]
    return tags


def spans(tags):
    out, start, kind = set(), None, None
    for i, t in enumerate(tags + ["O"]):
        if start is not None and (t == "O" or t.startswith("B-") or t[2:] != kind):
            out.add((kind, start, i))
            start = None
        if t.startswith("B-") or (t.startswith("I-") and start is None):
            start, kind = i, t[2:]
    return out


def metrics(gold, answers):
    right = tp = n_pred = n_gold = 0
    for g, a in zip(gold, answers):
        words = g.get("words") or g["text"].split()
        if a.get("intent", {}).get("label") == g.get("intent"):
            right += 1
        gs, ps = spans(list(g.get("tags", ["O"] * len(words)))), spans(tags_of(a, len(words)))
        tp += len(gs & ps)
        n_pred += len(ps)
        n_gold += len(gs)
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return right / max(len(gold), 1), f1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gold", required=True)
    ap.add_argument("--min-agreement", type=float, default=0.99)
    ap.add_argument("--max-metric-diff", type=float, default=0.01)
    ap.add_argument("--name", default="agreement")
    ap.add_argument("a")
    ap.add_argument("b")
    args = ap.parse_args()
    gold = read_jsonl(args.gold)
    a, b = read_jsonl(args.a), read_jsonl(args.b)
    n = min(len(a), len(b))
    if n == 0 or len(a) != len(b) or n > len(gold):
        print(f"FAIL {args.name}: {len(a)} vs {len(b)} answers for {len(gold)} gold examples")
        sys.exit(1)
    gold = gold[:n]
    same = total = 0
    for g, x, y in zip(gold, a, b):
        words = g.get("words") or g["text"].split()
        for k, v in x.items():
            if isinstance(v, dict) and "label" in v:
                total += 1
                same += v["label"] == (y.get(k) or {}).get("label")
        tx, ty = tags_of(x, len(words)), tags_of(y, len(words))
        total += len(words)
        same += sum(p == q for p, q in zip(tx, ty))
    agreement = same / max(total, 1)
    (ia, fa), (ib, fb) = metrics(gold, a), metrics(gold, b)
    ok = agreement >= args.min_agreement and abs(ia - ib) <= args.max_metric_diff and abs(fa - fb) <= args.max_metric_diff
    line = (f"{args.name}: {n} sentences, {same}/{total} labels identical ({100 * agreement:.2f}%, "
            f"required {100 * args.min_agreement:.0f}%); intent accuracy {100 * ia:.2f}% vs {100 * ib:.2f}%, "
            f"slot F1 {100 * fa:.2f} vs {100 * fb:.2f} (max difference {100 * args.max_metric_diff:.0f} point)")
    print(("OK " if ok else "FAIL ") + line)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
