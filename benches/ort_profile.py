"""Per-operator time of the fp32 and int8 backbones in ONNX Runtime (Python), to see where the
int8 speed-up goes. Not part of the product or of CI; needs `pip install onnxruntime numpy`.

    python3 benches/ort_profile.py [MODEL_DIR] [TOKENS]

Runs batch 32 x TOKENS random token ids (default 14, about a SNIPS sentence) on 2 threads through
MODEL_DIR/backbone.onnx and MODEL_DIR/backbone.int8.onnx (default .models/minilm-int8) and prints
the milliseconds per batch and each operator type's share of the kernel time.
"""
import collections
import json
import os
import sys
import time

import numpy as np
import onnxruntime as ort

model_dir = sys.argv[1] if len(sys.argv) > 1 else ".models/minilm-int8"
batch, tokens, runs = 32, int(sys.argv[2]) if len(sys.argv) > 2 else 14, 30
rng = np.random.default_rng(0)
ids = rng.integers(1000, 20000, (batch, tokens)).astype(np.int64)
ids[:, 0], ids[:, -1] = 101, 102
print(f"cpu: {open('/proc/cpuinfo').read().split('model name')[1].split(':')[1].splitlines()[0].strip()}")
for name in ["backbone.onnx", "backbone.int8.onnx"]:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.enable_profiling = True
    so.profile_file_prefix = f"/tmp/ort_profile_{name}"
    sess = ort.InferenceSession(os.path.join(model_dir, name), so, providers=["CPUExecutionProvider"])
    feeds = {}
    for i in sess.get_inputs():
        if i.name == "input_ids":
            feeds[i.name] = ids
        elif "mask" in i.name:
            feeds[i.name] = np.ones((batch, tokens), np.int64)
        else:
            feeds[i.name] = np.zeros((batch, tokens), np.int64)
    for _ in range(5):
        sess.run(None, feeds)
    t = time.perf_counter()
    for _ in range(runs):
        sess.run(None, feeds)
    per_batch = (time.perf_counter() - t) / runs
    path = sess.end_profiling()
    per_op = collections.Counter()
    for e in json.load(open(path)):
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_op[e["args"]["op_name"]] += e["dur"]
    os.remove(path)
    total = sum(per_op.values())
    print(f"{name}: {per_batch * 1000:.1f} ms per batch of {batch} x {tokens}")
    for op, us in per_op.most_common(10):
        print(f"  {op:28s} {us / total * 100:5.1f}%  {us / (runs + 5) / 1000:7.2f} ms per batch")
