"""onnxruntime's side of benches/onnx_runtime.rs: embeds a batch of images with an ONNX model.

    python bench/onnx_runtime.py MODEL.onnx BATCH THREADS

Opens MODEL in onnxruntime on the CPU with THREADS intra-op threads (one inter-op thread, all
graph optimisations, as its defaults), makes a seeded batch of BATCH network inputs of the
model's shape, runs it once, prints "ready", then answers each line "STEPS" on standard input
with the seconds per batch of STEPS timed runs.
"""
import sys
import time

import numpy as np
import onnxruntime


def main():
    model, batch, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    spec = session.get_inputs()[0]
    x = np.random.RandomState(1).uniform(-1, 1, size=[batch] + list(spec.shape[1:])).astype(np.float32)
    session.run(None, {spec.name: x})
    print("ready", flush=True)
    for line in sys.stdin:
        steps = int(line)
        started = time.perf_counter()
        for _ in range(steps):
            session.run(None, {spec.name: x})
        print((time.perf_counter() - started) / steps, flush=True)


if __name__ == "__main__":
    main()
