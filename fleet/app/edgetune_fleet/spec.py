"""The fleet's task spec and the head tensors of an edgetune run folder.

The spec is what every device's heads must share for their tensors to be averaged: the backbone's
hashes and sizes, the hidden states the heads read, the tasks with their label lists and head
architectures (dropout aside), and the tensor names and shapes in the order they travel (sorted by
name). It must equal what `edgetune::fleet::spec::spec_of` computes on a device; the device
compares and refuses a mismatch.
"""

import hashlib
import json
import os
from pathlib import Path

import numpy as np

BACKBONE_KEYS = ("onnx_sha256", "tokenizer_sha256", "layers", "hidden", "max_tokens")


def _strip_dropout(v):
    if isinstance(v, dict):
        return {k: _strip_dropout(x) for k, x in v.items() if k != "dropout"}
    if isinstance(v, list):
        return [_strip_dropout(x) for x in v]
    return v


def read_heads(path: Path):
    """Names (sorted) and float32 arrays of a heads.safetensors file."""
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    base = 8 + n
    names = sorted(k for k in header if k != "__metadata__")
    arrays = []
    for name in names:
        h = header[name]
        if h["dtype"] != "F32":
            raise ValueError(f"{path}: tensor {name} is {h['dtype']}, expected F32")
        a, b = h["data_offsets"]
        arrays.append(np.frombuffer(raw[base + a : base + b], dtype="<f4").reshape(h["shape"]).copy())
    return names, arrays


def load_seed(run: Path):
    """(spec, config, names, arrays) of a finished edgetune run."""
    config = json.loads((run / "config.json").read_text())
    if config.get("top_layers"):
        raise ValueError(f"{run}: fine-tuned backbone layers; a fleet averages heads on a frozen backbone")
    names, arrays = read_heads(run / config["weights"]["file"])
    spec = {
        "backbone": {k: config["backbone"][k] for k in BACKBONE_KEYS},
        "features": config["features"],
        "model": _strip_dropout(config["model"]),
        "tensors": [[n, list(a.shape)] for n, a in zip(names, arrays)],
    }
    return spec, config, names, arrays


def write_run(out: Path, config: dict, names, arrays, provenance: dict):
    """Writes the heads as an edgetune run folder (heads.safetensors, then config.json naming its
    hash), each file atomically."""
    out.mkdir(parents=True, exist_ok=True)
    header, blobs, offset = {}, [], 0
    for name, a in zip(names, arrays):
        data = np.ascontiguousarray(a, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    weights = len(h).to_bytes(8, "little") + h + b"".join(blobs)
    _atomic(out / "heads.safetensors", weights)
    cfg = dict(config)
    cfg["weights"] = {"file": "heads.safetensors", "sha256": hashlib.sha256(weights).hexdigest()}
    cfg["metrics"] = {}
    cfg["training"] = dict(cfg.get("training", {}), fleet=provenance)
    _atomic(out / "config.json", json.dumps(cfg, indent=2).encode())


def _atomic(path: Path, data: bytes):
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
