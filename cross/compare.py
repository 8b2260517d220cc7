#!/usr/bin/env python3
"""Compares two outputs of the same edgetune (or ortcheck) command run on two machines.

Usage: compare.py [--tol 1e-3] [--name WHAT] A B

A and B are files holding one JSON value, or JSON Lines (one value per line; .jsonl files or any
file whose content is not a single JSON value). The two must have the same structure: the same
keys, the same list lengths, equal strings, booleans, integers and nulls (so the same predicted
labels), and floating-point numbers within the absolute tolerance (so logits and probabilities
within 1e-3 by default). Keys listed with --ignore (e.g. library paths, architecture names, timings)
are skipped at any depth.

Prints a one-line summary; on mismatch also up to 20 differences with their JSON paths, and exits 1.
Exit code 2 for unreadable input. Python 3 standard library only.
"""

import argparse
import json
import math
import sys

DEFAULT_IGNORE = ("arch", "ort_lib", "elapsed", "elapsed_s", "seconds", "time", "duration_ms", "threads", "run", "path", "model_path")


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        sys.exit(f"compare: {e}")
    try:
        return [json.loads(text)] if not path.endswith(".jsonl") else _lines(path, text)
    except json.JSONDecodeError:
        return _lines(path, text)


def _lines(path, text):
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as e:
            print(f"compare: {path}:{n}: not JSON: {e}", file=sys.stderr)
            sys.exit(2)
    return out


class Diff:
    def __init__(self, tol, ignore):
        self.tol, self.ignore = tol, set(ignore)
        self.errors, self.floats, self.max_abs, self.max_at = [], 0, 0.0, None

    def err(self, path, msg):
        self.errors.append(f"{path or '$'}: {msg}")

    def walk(self, a, b, path):
        if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None or isinstance(a, str) or isinstance(b, str):
            if a != b or type(a) is not type(b):
                self.err(path, f"{json.dumps(a)[:80]} != {json.dumps(b)[:80]}")
            return
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            if isinstance(a, int) and isinstance(b, int):
                if a != b:
                    self.err(path, f"{a} != {b}")
                return
            self.floats += 1
            if not (math.isfinite(a) and math.isfinite(b)):
                if not (a == b or (math.isnan(a) and math.isnan(b))):
                    self.err(path, f"{a} != {b}")
                return
            d = abs(a - b)
            if d > self.max_abs:
                self.max_abs, self.max_at = d, path
            if d > self.tol:
                self.err(path, f"{a!r} vs {b!r} (|diff| {d:.3g} > {self.tol:g})")
            return
        if isinstance(a, list) and isinstance(b, list):
            if len(a) != len(b):
                self.err(path, f"list lengths {len(a)} != {len(b)}")
            for i, (x, y) in enumerate(zip(a, b)):
                self.walk(x, y, f"{path}[{i}]")
            return
        if isinstance(a, dict) and isinstance(b, dict):
            ka = {k for k in a if k not in self.ignore}
            kb = {k for k in b if k not in self.ignore}
            for k in sorted(ka - kb):
                self.err(f"{path}.{k}", "only in A")
            for k in sorted(kb - ka):
                self.err(f"{path}.{k}", "only in B")
            for k in sorted(ka & kb):
                self.walk(a[k], b[k], f"{path}.{k}")
            return
        self.err(path, f"type {type(a).__name__} != {type(b).__name__}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--tol", type=float, default=1e-3, help="absolute tolerance for floats (default 1e-3)")
    ap.add_argument("--name", default=None, help="what is compared, for the summary line")
    ap.add_argument("--ignore", action="append", default=None, help="key to skip at any depth (repeatable; default: %s)" % ", ".join(DEFAULT_IGNORE))
    ap.add_argument("--min-records", type=int, default=1, help="fail if fewer JSON values than this (default 1)")
    args = ap.parse_args()
    name = args.name or f"{args.a} vs {args.b}"
    a, b = load(args.a), load(args.b)
    d = Diff(args.tol, args.ignore if args.ignore is not None else DEFAULT_IGNORE)
    if len(a) < args.min_records:
        d.err("", f"A has {len(a)} JSON values, expected at least {args.min_records}")
    if len(a) != len(b):
        d.err("", f"A has {len(a)} JSON values, B has {len(b)}")
    for i, (x, y) in enumerate(zip(a, b)):
        d.walk(x, y, f"[{i}]" if len(a) > 1 else "")
    where = f" at {d.max_at}" if d.max_at else ""
    summary = f"{len(a)} record(s), {d.floats} floats, max |diff| {d.max_abs:.3g}{where} (tol {args.tol:g})"
    if d.errors:
        print(f"MISMATCH {name}: {len(d.errors)} difference(s); {summary}")
        for e in d.errors[:20]:
            print(f"  {e}")
        if len(d.errors) > 20:
            print(f"  ... {len(d.errors) - 20} more")
        return 1
    print(f"OK {name}: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
