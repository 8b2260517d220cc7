#!/usr/bin/env python3
"""Runs an edgetune merged model in Python's onnxruntime (used by tests/onnx/onnx_export.rs).

usage: export_parity.py MERGED.onnx INPUTS.json

INPUTS.json: {"name": {"shape": [...], "dtype": "int64" | "float32", "data": [flat values]}, ...}
(only the inputs the model declares are fed). Prints one JSON object:

- "format_version", "outputs": the metadata's format and the graph's output names;
- "tasks": per task of the metadata `edgetune.tasks` ({name, kind, labels}), by name: "kind",
  "labels", "ids" (NAME_id for a sentence task, NAME_ids for a token task), "predicted" (the
  labels of those ids), "logits" (NAME_logits) and "max_prob_error" (largest |sum of NAME_probs
  over classes - 1|);
- "aliases": for the format-1 output names the model also carries (`slot_logits`, `slot_probs`,
  `slot_ids` of the task `tags`), the largest |difference| to the named outputs they alias.

Exit status 3 when onnxruntime or numpy is missing (the Rust test requires both).
"""

import json
import sys

try:
    import numpy as np
    import onnxruntime as ort
except ImportError as e:
    print(f"onnxruntime unavailable: {e}", file=sys.stderr)
    sys.exit(3)


def main() -> None:
    model, inputs_path = sys.argv[1], sys.argv[2]
    with open(inputs_path) as f:
        raw = json.load(f)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    tasks = json.loads(meta["edgetune.tasks"])
    feed = {}
    for i in sess.get_inputs():
        spec = raw[i.name]
        feed[i.name] = np.asarray(spec["data"], dtype=spec["dtype"]).reshape(spec["shape"])
    names = [o.name for o in sess.get_outputs()]
    outs = dict(zip(names, sess.run(names, feed)))
    res = {
        "format_version": meta["edgetune.format_version"],
        "outputs": names,
        "tasks": {},
        "aliases": {},
    }
    for t in tasks:
        name, kind, labels = t["name"], t["kind"], t["labels"]
        token = kind != "sentence"
        ids = outs[f"{name}_ids" if token else f"{name}_id"]
        probs = outs[f"{name}_probs"]
        if token:
            predicted = [[labels[i] for i in row] for row in ids.tolist()]
        else:
            predicted = [labels[i] for i in ids.tolist()]
        res["tasks"][name] = {
            "kind": kind,
            "labels": labels,
            "ids": ids.tolist(),
            "predicted": predicted,
            "logits": outs[f"{name}_logits"].tolist(),
            "max_prob_error": float(np.abs(probs.sum(axis=-1) - 1.0).max()),
        }
        if name == "tags":
            for suffix in ["logits", "probs", "ids"]:
                alias, named = outs[f"slot_{suffix}"], outs[f"tags_{suffix}"]
                res["aliases"][f"slot_{suffix}"] = float(
                    np.abs(alias.astype(np.float64) - named.astype(np.float64)).max()
                )
    json.dump(res, sys.stdout)


if __name__ == "__main__":
    main()
