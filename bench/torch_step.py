"""The quickstart network and loss as a plain PyTorch training loop, for benches/train_step.rs.

Prints the mean seconds per training step (after 5 warm-up steps) on the CPU. The network and
loss are reference/torchref.py's (the ones tests/parity.rs shows p2sbench trains identically);
the optimiser is torch.optim.SGD with p2sbench's default settings, the data random u8 images
converted per batch as p2sbench converts them. --channels-last puts the model and every batch
in channels-last memory, as PyTorch's performance guide recommends.
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
from torchref import Net, loss_value  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    for k, t in [("classes", int), ("images", int), ("size", int), ("channels", int), ("embedding", int),
                 ("batch", int), ("threads", int), ("steps", int), ("s", float), ("m", float), ("lr", float)]:
        p.add_argument(f"--{k}", type=t, required=True)
    p.add_argument("--widths", required=True)
    p.add_argument("--loss", required=True)
    p.add_argument("--channels-last", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    memory_format = torch.channels_last if a.channels_last else torch.contiguous_format
    widths = [int(w) for w in a.widths.split(",")]
    net = Net(a.channels, a.size, widths, a.embedding, a.classes, a.loss == "softmax").to(memory_format=memory_format)
    opt = torch.optim.SGD(net.parameters(), lr=a.lr, momentum=0.9, weight_decay=5e-4)
    pixels = torch.randint(0, 256, (a.images, a.channels, a.size, a.size), dtype=torch.uint8)
    labels_all = torch.randint(0, a.classes, (a.images,))
    params = {"s": a.s, "m": a.m}
    warmup, started = 5, None
    for step in range(a.steps + warmup):
        if step == warmup:
            started = time.perf_counter()
        idx = torch.randint(0, a.images, (a.batch,))
        x = (pixels[idx].float() * (2.0 / 255.0) - 1.0).to(memory_format=memory_format)
        loss = loss_value(a.loss, params, net, net.embed(x), labels_all[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    print((time.perf_counter() - started) / a.steps)


if __name__ == "__main__":
    main()
