"""The quickstart network and loss as a plain PyTorch training loop, for benchmarks/train_step.rs.

Prints the mean seconds per training step (after 5 warm-up steps) on the CPU. Same architecture
as src/model (conv3x3-BN-ReLU-maxpool stages, linear embedding + BN1d, class weights W), same
SGD settings and batch size; the data is random u8 images converted per batch like p2sbench does.
"""
import argparse
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def build(channels, size, widths, embedding):
    layers, in_ch, side = [], channels, size
    for w in widths:
        layers += [nn.Conv2d(in_ch, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2)]
        in_ch, side = w, side // 2
    layers += [nn.Flatten(), nn.Linear(in_ch * side * side, embedding), nn.BatchNorm1d(embedding)]
    return nn.Sequential(*layers)


def loss_fn(name, cos, labels, s, m):
    one_hot = F.one_hot(labels, cos.shape[1]).to(cos.dtype)
    if name == "p2sgrad":
        return 0.5 * ((cos - one_hot) ** 2).sum(1).mean()
    if name == "cosface":
        return F.cross_entropy(s * (cos - m * one_hot), labels)
    if name == "arcface":
        c = cos.clamp(-1 + 1e-7, 1 - 1e-7)
        target = torch.where(c > math.cos(math.pi - m), torch.cos(torch.acos(c) + m), c - m * math.sin(m))
        return F.cross_entropy(s * (cos + one_hot * (target - cos)), labels)
    raise SystemExit(f"torch_step.py: loss {name} is not written here")


def main():
    p = argparse.ArgumentParser()
    for k, t in [("classes", int), ("images", int), ("size", int), ("channels", int), ("embedding", int),
                 ("batch", int), ("threads", int), ("steps", int), ("s", float), ("m", float), ("lr", float)]:
        p.add_argument(f"--{k}", type=t, required=True)
    p.add_argument("--widths", required=True)
    p.add_argument("--loss", required=True)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    net = build(a.channels, a.size, [int(w) for w in a.widths.split(",")], a.embedding)
    weight = nn.Parameter(torch.randn(a.classes, a.embedding) / math.sqrt(a.embedding))
    opt = torch.optim.SGD(list(net.parameters()) + [weight], lr=a.lr, momentum=0.9, weight_decay=5e-4)
    pixels = torch.randint(0, 256, (a.images, a.channels, a.size, a.size), dtype=torch.uint8)
    labels_all = torch.randint(0, a.classes, (a.images,))
    warmup, started = 5, None
    for step in range(a.steps + warmup):
        if step == warmup:
            started = time.perf_counter()
        idx = torch.randint(0, a.images, (a.batch,))
        x = pixels[idx].float() * (2.0 / 255.0) - 1.0
        feats = net(x)
        cos = F.normalize(feats) @ F.normalize(weight).t()
        loss = loss_fn(a.loss, cos, labels_all[idx], a.s, a.m)
        opt.zero_grad()
        loss.backward()
        opt.step()
    print((time.perf_counter() - started) / a.steps)


if __name__ == "__main__":
    main()
