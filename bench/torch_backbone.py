"""One of p2sbench's backbones in PyTorch (reference/torchref.py, the networks tests/backbones.rs
shows compute what p2sbench's do), timed forward + backward, for benches/backbones.rs.

    python bench/torch_backbone.py NAME BATCH THREADS [DEVICE [amp]]

Builds the network at 3 x 112 x 112 with a 512-d output in channels-last memory (as p2sbench
trains by default), then answers each line "STEPS" on standard input with the seconds per step
of STEPS timed training-mode steps (zero the gradients, forward, sum(output * probe),
backward), so that the caller can interleave its own measurements with these. DEVICE is cpu
(default) or cuda; with "amp" the forward runs under torch.autocast (float16 on CUDA, bfloat16
on the CPU), the output in float32, as p2sbench's `train.precision = "amp"`.
"""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
from torchref import backbone  # noqa: E402


def main():
    name, batch, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    device = torch.device(sys.argv[4] if len(sys.argv) > 4 else "cpu")
    amp = len(sys.argv) > 5 and sys.argv[5] == "amp"
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    net = backbone(name, 3, 112, 512).to(device=device, memory_format=torch.channels_last).train()
    x = torch.randn(batch, 3, 112, 112, device=device).to(memory_format=torch.channels_last)
    probe = torch.randn(batch, 512, device=device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def step():
        net.zero_grad()
        with torch.autocast(device.type, enabled=amp):
            out = net(x)
        (out.float() * probe).sum().backward()

    step()
    sync()
    print("ready", flush=True)
    for line in sys.stdin:
        steps = int(line)
        started = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        print((time.perf_counter() - started) / steps, flush=True)


if __name__ == "__main__":
    main()
