#!/usr/bin/env python3
"""An independent reference for edgetune's MPNet import: Hugging Face's `modeling_mpnet.py`
transcribed to NumPy (no PyTorch), run on the checkpoint's safetensors, compared with the imported
ONNX graph run by Python's onnxruntime on the same token ids.

usage: mpnet_reference.py HF_DIR BACKBONE.onnx [SENTENCES_FILE]

HF_DIR holds config.json, model.safetensors and tokenizer.json (tokenized with Python's
`tokenizers`, special tokens added, padded with the config's pad id to the batch's longest).
Only the graph's layer count of the checkpoint's layers is computed (an import cut with
`--layers K`). Prints one JSON object:

- "sentences", "tokens", "layers";
- "max_abs_diff_hidden": max |ONNX - NumPy| of last_hidden_state over real tokens;
- "max_abs_diff_hidden_all": the same over every position, padding included;
- "max_abs_diff_pooled": of the mean over real tokens (sentence-transformers' pooling);
- "buckets": the relative-position buckets of distances -130..130 (Hugging Face's function in
  float32), for the Rust side to compare with its own.

Exit status 3 when numpy, onnxruntime or tokenizers is missing.
"""

import json
import math
import struct
import sys

try:
    import numpy as np
    import onnxruntime as ort
    from tokenizers import Tokenizer
except ImportError as e:
    print(f"reference unavailable: {e}", file=sys.stderr)
    sys.exit(3)

SENTENCES = [
    "Book a table for two at an Italian restaurant tonight.",
    "play some jazz",
    "What will the weather be like in Paris on Saturday afternoon, and should I bring an umbrella?",
    "Add this song to my workout playlist.",
    "rate this novel four out of six stars",
    "Hello!",
    "wake me up at 7 am tomorrow",
    "Is it going to snow in Kraków next week?",
]

_erf = np.frompyfunc(math.erf, 1, 1)


def load_safetensors(path):
    """name -> float32 array (f32, f16 and bf16 tensors; integer buffers skipped)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        out = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            start, end = info["data_offsets"]
            f.seek(base + start)
            raw = f.read(end - start)
            dt = info["dtype"]
            if dt == "F32":
                a = np.frombuffer(raw, dtype="<f4")
            elif dt == "F16":
                a = np.frombuffer(raw, dtype="<f2").astype(np.float32)
            elif dt == "BF16":
                a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
            else:
                continue
            out[name] = a.reshape(info["shape"])
    for prefix in ("mpnet.", "model."):
        if prefix + "embeddings.word_embeddings.weight" in out:
            out = {k[len(prefix):]: v for k, v in out.items() if k.startswith(prefix)}
    return out


def relative_position_bucket(relative_position, num_buckets=32, max_distance=128):
    """Hugging Face's MPNetEncoder.relative_position_bucket, in float32 as PyTorch computes it."""
    ret = 0
    n = -relative_position
    num_buckets //= 2
    ret += (n < 0).astype(np.int64) * num_buckets
    n = np.abs(n)
    max_exact = num_buckets // 2
    is_small = n < max_exact
    # (log of 0 is never used: those distances are small; max(n, 1) keeps the cast defined)
    val_if_large = max_exact + (
            np.log(np.maximum(n, 1).astype(np.float32) / np.float32(max_exact))
            / np.float32(math.log(max_distance / max_exact))
            * np.float32(num_buckets - max_exact)
    ).astype(np.int64)
    val_if_large = np.minimum(val_if_large, num_buckets - 1)
    ret += np.where(is_small, n, val_if_large)
    return ret


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def linear(x, w, name):
    return x @ w[name + ".weight"].T + w[name + ".bias"]


def mpnet(w, cfg, ids, mask, layers):
    """last_hidden_state [B, T, H] of MPNetModel for int64 ids / mask [B, T]."""
    pad = cfg.get("pad_token_id", 1)
    eps = cfg["layer_norm_eps"]
    heads = cfg["num_attention_heads"]
    real = (ids != pad).astype(np.int64)
    pos = np.cumsum(real, axis=1) * real + pad
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][pos]
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    b, t, h = x.shape
    d = h // heads
    ctx_pos = np.arange(t)[:, None]
    mem_pos = np.arange(t)[None, :]
    buckets = relative_position_bucket(mem_pos - ctx_pos, cfg.get("relative_attention_num_buckets", 32))
    bias = w["encoder.relative_attention_bias.weight"][buckets].transpose(2, 0, 1)[None]
    ext = (1.0 - mask[:, None, None, :].astype(np.float32)) * np.finfo(np.float32).min
    for i in range(layers):
        p = f"encoder.layer.{i}."
        split = lambda y: y.reshape(b, t, heads, d).transpose(0, 2, 1, 3)
        q = split(linear(x, w, p + "attention.attn.q"))
        k = split(linear(x, w, p + "attention.attn.k"))
        v = split(linear(x, w, p + "attention.attn.v"))
        s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d)
        s = s + bias
        s = s + ext
        s = s - s.max(-1, keepdims=True)
        e = np.exp(s)
        probs = e / e.sum(-1, keepdims=True)
        c = (probs @ v).transpose(0, 2, 1, 3).reshape(b, t, h)
        o = linear(c, w, p + "attention.attn.o")
        x = layer_norm(o + x, w[p + "attention.LayerNorm.weight"], w[p + "attention.LayerNorm.bias"], eps)
        f = linear(x, w, p + "intermediate.dense")
        f = f * 0.5 * (1.0 + _erf(f / math.sqrt(2.0)).astype(np.float32))
        o = linear(f, w, p + "output.dense")
        x = layer_norm(o + x, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)
    return x.astype(np.float32)


def main():
    hf, onnx_path = sys.argv[1], sys.argv[2]
    sentences = SENTENCES
    if len(sys.argv) > 3:
        with open(sys.argv[3]) as f:
            sentences = [l.strip() for l in f if l.strip()]
    with open(f"{hf}/config.json") as f:
        cfg = json.load(f)
    tok = Tokenizer.from_file(f"{hf}/tokenizer.json")
    tok.no_padding()
    tok.no_truncation()
    pad = cfg.get("pad_token_id", 1)
    rows = [tok.encode(s).ids[:512] for s in sentences]
    t = max(len(r) for r in rows)
    ids = np.full((len(rows), t), pad, dtype=np.int64)
    mask = np.zeros((len(rows), t), dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
        mask[i, : len(r)] = 1
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    layers = int(meta.get("edgetune.num_layers", cfg["num_hidden_layers"]))
    feed = {"input_ids": ids, "attention_mask": mask}
    feed = {i.name: feed[i.name] for i in sess.get_inputs()}
    onnx_out = sess.run(["last_hidden_state"], feed)[0]
    w = load_safetensors(f"{hf}/model.safetensors")
    ref = mpnet(w, cfg, ids, mask, layers)
    diff = np.abs(onnx_out.astype(np.float64) - ref.astype(np.float64))
    m = mask[:, :, None].astype(np.float64)
    pooled = lambda x: (x * m).sum(1) / m.sum(1)
    res = {
        "sentences": len(rows),
        "tokens": int(mask.sum()),
        "layers": layers,
        "max_abs_diff_hidden": float((diff * m).max()),
        "max_abs_diff_hidden_all": float(diff.max()),
        "max_abs_diff_pooled": float(np.abs(pooled(onnx_out) - pooled(ref)).max()),
        "buckets": relative_position_bucket(np.arange(-130, 131)).tolist(),
    }
    json.dump(res, sys.stdout)


if __name__ == "__main__":
    main()
