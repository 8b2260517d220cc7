#!/usr/bin/env python3
"""Runs an edgetune merged model in Python's onnxruntime (used by tests/onnx_export.rs).

usage: export_parity.py MERGED.onnx INPUTS.json

INPUTS.json: {"name": {"shape": [...], "dtype": "int64" | "float32", "data": [flat values]}, ...}
(only the inputs the model declares are fed). Prints one JSON object: the metadata labels, the
predicted ids and labels, and the logits. Exit status 3 when onnxruntime or numpy is missing.
"""

import json
import sys

try:
    import numpy as np
    import onnxruntime as ort
except ImportError as e:  # the Rust test skips on this status
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
    intents = json.loads(meta["edgetune.intents"])
    tags = json.loads(meta["edgetune.tags"])
    feed = {}
    for i in sess.get_inputs():
        spec = raw[i.name]
        feed[i.name] = np.asarray(spec["data"], dtype=spec["dtype"]).reshape(spec["shape"])
    names = [o.name for o in sess.get_outputs()]
    outs = dict(zip(names, sess.run(names, feed)))
    res = {"format_version": meta["edgetune.format_version"], "outputs": names}
    if "intent_id" in outs:
        ids = outs["intent_id"].tolist()
        res["intent_id"] = ids
        res["intent"] = [intents[i] for i in ids]
        res["intent_logits"] = outs["intent_logits"].tolist()
    if "slot_ids" in outs:
        ids = outs["slot_ids"].tolist()
        res["slot_ids"] = ids
        res["tags"] = [[tags[t] for t in row] for row in ids]
    json.dump(res, sys.stdout)


if __name__ == "__main__":
    main()
