#!/usr/bin/env python3
"""Reference client for an edgetune merged model (see docs/merged-model.md).

Reproduces `edgetune infer --model MERGED.onnx [INPUT]`: the same JSON line per input line, with
the same fields and values (labels, spans with character offsets, probabilities); with the ONNX
Runtime version edgetune uses, byte for byte. Needs onnxruntime, tokenizers and numpy only.

    python3 edgetune_client.py MERGED.onnx [INPUT] [--logits]

INPUT is a text file, one utterance per line (default: standard input, answered line by line).
tokenizer.json must sit beside the model, as `edgetune export` writes it.
"""

import argparse
import hashlib
import json
import math
import os
import sys

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

# Lines longer than this (bytes) are answered with an error, as `infer` does.
MAX_LINE_BYTES = 64 * 1024
# Utterances per model run (length-sorted within a chunk of lines), as `infer` batches them.
BATCH = 32
# Lines read from a file before answering them (one at a time from standard input).
FILE_CHUNK = 64

# Rust's char::is_whitespace (the Unicode White_Space property): words are split on these.
WHITESPACE = set(
    "\u0009\u000a\u000b\u000c\u000d\u0020\u0085\u00a0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)


def split_words(text):
    """Words of a line as (start, end) UTF-8 byte offsets, split on Unicode whitespace."""
    spans, start, pos = [], None, 0
    for ch in text:
        if ch in WHITESPACE:
            if start is not None:
                spans.append((start, pos))
                start = None
        elif start is None:
            start = pos
        pos += len(ch.encode("utf-8"))
    if start is not None:
        spans.append((start, pos))
    return spans


def f32(x):
    """A float32 widened to a Python float (float64), as edgetune's JSON prints it."""
    return float(np.float32(x))


class MergedModel:
    def __init__(self, path):
        opts = ort.SessionOptions()
        # edgetune's sessions stop at the layout optimizations (ONNX Runtime's ORT_ENABLE_LAYOUT);
        # the same graph rewrites give the same floating-point results.
        level = getattr(ort.GraphOptimizationLevel, "ORT_ENABLE_LAYOUT", None)
        if level is not None:
            opts.graph_optimization_level = level
        self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        fmt = int(meta["edgetune.format_version"])
        if fmt == 2:
            self.tasks = json.loads(meta["edgetune.tasks"])
        elif fmt == 1:
            self.tasks = []
            intents = json.loads(meta["edgetune.intents"])
            tags = json.loads(meta["edgetune.tags"])
            if intents:
                self.tasks.append({"name": "intent", "kind": "sentence", "labels": intents})
            if tags:
                self.tasks.append({"name": "tags", "kind": "spans", "labels": tags})
        else:
            raise SystemExit(f"{path}: merged-model format {fmt} is not supported")
        self.format = fmt
        self.max_tokens = int(meta["edgetune.max_tokens"])
        tok_path = os.path.join(os.path.dirname(os.path.abspath(path)), "tokenizer.json")
        with open(tok_path, "rb") as f:
            sha = hashlib.sha256(f.read()).hexdigest()
        if sha != meta["edgetune.tokenizer_sha256"]:
            raise SystemExit(f"{tok_path}: not the tokenizer this model was exported with")
        self.tokenizer = Tokenizer.from_file(tok_path)
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=self.max_tokens)
        if "edgetune.pad_id" in meta:
            self.pad_id = int(meta["edgetune.pad_id"])
        else:
            ids = [self.tokenizer.token_to_id(t) for t in ("[PAD]", "<pad>")]
            self.pad_id = next((i for i in ids if i is not None), 0)
        self.inputs = {i.name for i in self.session.get_inputs()}

    def output_names(self, task):
        base = "slot" if self.format == 1 and task["name"] == "tags" else task["name"]
        ids = f"{base}_ids" if task["kind"] != "sentence" else f"{base}_id"
        return f"{base}_logits", f"{base}_probs", ids

    def encode(self, words):
        """Token ids, type ids, per-word token ranges and the truncation flag of one utterance."""
        kept = words[: self.max_tokens]
        enc = self.tokenizer.encode(kept, is_pretokenized=True, add_special_tokens=True)
        word_tokens = [[0, 0] for _ in words]
        for t, w in enumerate(enc.word_ids):
            if w is not None and w < len(word_tokens):
                span = word_tokens[w]
                if span[0] == span[1]:
                    span[0], span[1] = t, t + 1
                else:
                    span[1] = t + 1
        truncated = (
            len(kept) < len(words)
            or len(enc.overflowing) > 0
            or (bool(word_tokens) and word_tokens[-1][0] == word_tokens[-1][1]
                and len(enc.ids) >= self.max_tokens)
        )
        return enc.ids, enc.type_ids, word_tokens, truncated

    def run(self, batch):
        """Runs one batch of encoded utterances; the per-task output arrays."""
        b = len(batch)
        t = max(1, max(len(x[0]) for x in batch))
        w = max(1, max(len(x[2]) for x in batch))
        input_ids = np.full((b, t), self.pad_id, dtype=np.int64)
        attention_mask = np.zeros((b, t), dtype=np.int64)
        token_type_ids = np.zeros((b, t), dtype=np.int64)
        word_pool = np.zeros((b, w, t), dtype=np.float32)
        word_mask = np.zeros((b, w), dtype=np.float32)
        for r, (ids, types, word_tokens, _) in enumerate(batch):
            input_ids[r, : len(ids)] = ids
            attention_mask[r, : len(ids)] = 1
            token_type_ids[r, : len(types)] = types
            for j, (s, e) in enumerate(word_tokens):
                if e > s:
                    word_mask[r, j] = 1.0
                    word_pool[r, j, s:e] = np.float32(1.0) / np.float32(e - s)
        feeds = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "word_pool": word_pool,
            "word_mask": word_mask,
        }
        if "token_type_ids" in self.inputs:
            feeds["token_type_ids"] = token_type_ids
        names = [n for task in self.tasks for n in self.output_names(task)]
        values = self.session.run(names, feeds)
        return [dict(zip(("logits", "probs", "ids"), values[3 * k: 3 * k + 3]))
                for k in range(len(self.tasks))]

    def answer_lines(self, texts, logits=False):
        """One JSON object per text, as `infer --model` answers them."""
        encoded = []
        for text in texts:
            words = [text.encode("utf-8")[s:e].decode("utf-8") for s, e in split_words(text)]
            encoded.append(self.encode(words))
        live = [i for i in range(len(texts)) if encoded[i][2]]
        out = [{"text": t, "error": "empty input"} for t in texts]
        order = sorted(live, key=lambda i: (len(encoded[i][0]), i))
        for c in range(0, len(order), BATCH):
            chunk = order[c: c + BATCH]
            arrays = self.run([encoded[i] for i in chunk])
            for r, i in enumerate(chunk):
                out[i] = self.answer(texts[i], encoded[i], arrays, r, logits)
        return out

    def answer(self, text, encoded, arrays, r, logits):
        _, _, word_tokens, truncated = encoded
        kept = [e > s for s, e in word_tokens]
        words = split_words(text)
        raw = text.encode("utf-8")
        v = {"text": text}
        for task, a in zip(self.tasks, arrays):
            labels = task["labels"]
            if task["kind"] == "sentence":
                i = int(a["ids"][r])
                v[task["name"]] = {"label": labels[i], "prob": f32(a["probs"][r, i])}
                if logits:
                    v[task["name"] + "_logits"] = [f32(x) for x in a["logits"][r]]
                continue
            n = min(len(word_tokens), a["probs"].shape[1])
            probs = a["probs"][r, :n]
            ids = bio_viterbi(probs, labels) if task["kind"] == "spans" else \
                [int(np.argmax(p)) for p in probs]
            tags = [labels[i] if k else labels[0] for i, k in zip(ids, kept)]
            if task["kind"] == "tokens":
                v[task["name"]] = tags
                continue
            found = []
            for kind, s, e in spans(tags):
                if e > len(words) or s >= e:
                    continue
                cs, ce = words[s][0], words[e - 1][1]
                total = np.float32(0.0)
                for w in range(s, e):
                    lid = labels.index(tags[w]) if tags[w] in labels else 0
                    p = probs[w, lid] if w < len(probs) and lid < probs.shape[1] else np.float32(0.0)
                    total = np.float32(total + p)
                found.append({
                    "type": kind,
                    "text": raw[cs:ce].decode("utf-8"),
                    "start": s,
                    "end": e,
                    # Characters (what str slicing counts) and UTF-8 bytes of the line.
                    "char_start": len(raw[:cs].decode("utf-8")),
                    "char_end": len(raw[:ce].decode("utf-8")),
                    "byte_start": cs,
                    "byte_end": ce,
                    "prob": f32(total / np.float32(e - s)),
                })
            v["slots" if task["name"] == "tags" else task["name"]] = found
        if truncated:
            v["truncated"] = True
        return v


def bio_viterbi(probs, tags):
    """The most probable tag sequence that obeys BIO (no I-X at the start or after anything but
    B-X / I-X), exactly as edgetune's `bio_viterbi`: log-probabilities in float64 of the float32
    probabilities floored at 1e-12; on ties the lowest tag id wins, at every step and at the end."""
    n = len(tags)
    if len(probs) == 0 or n == 0:
        return []
    inside = [t[2:] if t.startswith("I-") else None for t in tags]

    def allowed(prev, nxt):
        x = inside[nxt]
        if x is None:
            return True
        if prev is None:
            return False
        p = tags[prev]
        return (p.startswith("B-") or p.startswith("I-")) and p[2:] == x

    floor = np.float32(1e-12)

    def logp(p):
        return math.log(float(max(np.float32(p), floor)))

    neg = -math.inf
    score = [logp(probs[0][j]) if allowed(None, j) else neg for j in range(n)]
    back = []
    for row in probs[1:]:
        nxt = [neg] * n
        frm = [0] * n
        for j in range(n):
            for i in range(n):
                if score[i] > neg and allowed(i, j) and score[i] > nxt[j]:
                    nxt[j] = score[i]
                    frm[j] = i
            nxt[j] += logp(row[j])
        back.append(frm)
        score = nxt
    best = 0
    for j in range(n):
        if score[j] > score[best]:
            best = j
    path = [best]
    for frm in reversed(back):
        best = frm[best]
        path.append(best)
    path.reverse()
    return path


def parse_tag(tag):
    for prefix in ("B-", "I-"):
        if tag.startswith(prefix) and len(tag) > 2:
            return prefix[0], tag[2:]
    return "O", ""


def spans(tags):
    """Chunks (type, start, end) of a tag sequence with conlleval's semantics."""
    out, open_, prev_tag, prev_kind = [], None, "O", ""
    for i, raw in enumerate(tags):
        tag, kind = parse_tag(raw)
        ends = prev_tag != "O" and (tag in ("B", "O") or prev_kind != kind)
        starts = tag == "B" or (tag == "I" and (prev_tag == "O" or prev_kind != kind))
        if ends and open_ is not None:
            out.append((open_[0], open_[1], i))
            open_ = None
        if starts:
            open_ = (kind, i)
        prev_tag, prev_kind = tag, kind
    if open_ is not None:
        out.append((open_[0], open_[1], len(tags)))
    return out


def read_lines(stream):
    """(line number, text or None, error) for each line, as `infer` reads them."""
    n = 0
    for raw in stream:
        n += 1
        line = raw[:-1] if raw.endswith(b"\n") else raw
        if len(line) > MAX_LINE_BYTES:
            yield n, None, f"line longer than {MAX_LINE_BYTES} bytes"
            continue
        if line.endswith(b"\r"):
            line = line[:-1]
        try:
            yield n, line.decode("utf-8"), None
        except UnicodeDecodeError as e:
            yield n, None, f"not UTF-8 text (invalid byte at column {e.start + 1})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="merged model written by `edgetune export`")
    ap.add_argument("input", nargs="?", help="text file, one utterance per line (default: stdin)")
    ap.add_argument("--logits", action="store_true", help="also print sentence tasks' logits")
    args = ap.parse_args()
    model = MergedModel(args.model)
    stream = open(args.input, "rb") if args.input else sys.stdin.buffer
    chunk = FILE_CHUNK if args.input else 1
    slots, pending = [], []

    def flush():
        if pending:
            answers = model.answer_lines([t for _, t in pending], args.logits)
            for (k, _), a in zip(pending, answers):
                slots[k] = a
        for s in slots:
            sys.stdout.write(json.dumps(s, ensure_ascii=False, separators=(",", ":"), sort_keys=True) + "\n")
        sys.stdout.flush()
        slots.clear()
        pending.clear()

    for n, text, error in read_lines(stream):
        if error is None:
            pending.append((len(slots), text))
            slots.append(None)
        else:
            slots.append({"line": n, "error": error})
        if len(pending) >= chunk or not pending:
            flush()
    flush()


if __name__ == "__main__":
    main()
