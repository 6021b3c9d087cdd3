"""Runs one of p2sbench's backbones written in PyTorch (torchref.backbone) on p2sbench's own
variables and input, for tests/backbones.rs.

    python reference/backbone_parity.py INPUT.safetensors CONFIG.json OUTPUT.safetensors

INPUT holds every backbone variable by its PyTorch module name (p2sbench's name without
"backbone."), the images ("input", float [N, C, H, W]) and a fixed direction ("probe", [N, D]).
CONFIG gives the backbone name, channels, size, embedding and threads. OUTPUT gets the
eval-mode output ("eval"), then the train-mode output ("train"), and the gradient of
sum(train * probe) with respect to every parameter ("grad/<name>").
"""
import json
import sys

import torch

from torchref import backbone, read_safetensors, write_safetensors


def main():
    inputs, config_path, out_path = sys.argv[1:4]
    cfg = json.load(open(config_path))
    torch.set_num_threads(cfg["threads"])
    t = read_safetensors(inputs)
    net = backbone(cfg["backbone"], cfg["channels"], cfg["size"], cfg["embedding"])
    state = net.state_dict()
    expected = {k for k in state if not k.endswith("num_batches_tracked")}
    given = set(t) - {"input", "probe"}
    if expected != given:
        raise SystemExit(f"names differ: only in PyTorch {sorted(expected - given)[:5]}, only given {sorted(given - expected)[:5]}")
    with torch.no_grad():
        for name in expected:
            state[name].copy_(t[name])
    net.eval()
    with torch.no_grad():
        evaluated = net(t["input"])
    net.train()
    trained = net(t["input"])
    (trained * t["probe"]).sum().backward()
    out = {"eval": evaluated, "train": trained.detach()}
    out.update({f"grad/{n}": p.grad for n, p in net.named_parameters() if p.grad is not None})
    write_safetensors(out_path, out)


if __name__ == "__main__":
    main()
