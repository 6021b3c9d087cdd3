"""One of p2sbench's backbones in PyTorch (reference/torchref.py, the networks tests/backbones.rs
shows compute what p2sbench's do), timed forward + backward, for benches/backbones.rs.

    python bench/torch_backbone.py NAME BATCH THREADS

Builds the network at 3 x 112 x 112 with a 512-d output in channels-last memory (as p2sbench
trains by default), then answers each line "STEPS" on standard input with the seconds per step
of STEPS timed training-mode steps (zero the gradients, forward, sum(output * probe),
backward), so that the caller can interleave its own measurements with these.
"""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
from torchref import backbone  # noqa: E402


def main():
    name, batch, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    net = backbone(name, 3, 112, 512).to(memory_format=torch.channels_last).train()
    x = torch.randn(batch, 3, 112, 112).to(memory_format=torch.channels_last)
    probe = torch.randn(batch, 512)

    def step():
        net.zero_grad()
        (net(x) * probe).sum().backward()

    step()
    print("ready", flush=True)
    for line in sys.stdin:
        steps = int(line)
        started = time.perf_counter()
        for _ in range(steps):
            step()
        print((time.perf_counter() - started) / steps, flush=True)


if __name__ == "__main__":
    main()
