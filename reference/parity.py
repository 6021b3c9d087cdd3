"""Trains the reference network on exactly what p2sbench trained on, for tests/parity.rs.

    python reference/parity.py INPUT.safetensors CONFIG.json OUTPUT.safetensors

INPUT holds p2sbench's initial variables (by p2sbench name), the training images as the network
sees them ("data/images", float [N, C, H, W]), their labels ("data/labels") and the image order of
every epoch ("data/order/<epoch>"), and under Partial FC each step's sampled classes
("data/sample/<step>", sorted). CONFIG gives the network shape, the loss, and the SGD settings
(lr, momentum, weight_decay, lr_milestones in epochs, lr_gamma, epochs, batch_size, threads,
channels_last: the memory format of images and 4-D weights; clip_grad_norm: the backbone's
gradient norm clipped to it, torch.nn.utils.clip_grad_norm_, when given; device: where it trains, "cpu" by default).
OUTPUT gets the loss of every step ("loss", float64 [steps]) and every final variable.
torch.optim.SGD and MultiStepLR do the optimisation: whatever p2sbench computes must match them.
"""
import json
import sys

import torch

from torchref import Net, loss_value, read_safetensors, write_safetensors


def main():
    inputs, config_path, out_path = sys.argv[1:4]
    cfg = json.load(open(config_path))
    torch.set_num_threads(cfg["threads"])
    t = read_safetensors(inputs)
    images, labels = t["data/images"], t["data/labels"]
    net = Net(cfg["channels"], cfg["size"], cfg["widths"], cfg["embedding"], cfg["classes"], "head.bias" in t)
    with torch.no_grad():
        for name, var in net.p2sbench_names().items():
            var.copy_(t[name])
    memory_format = torch.channels_last if cfg["channels_last"] else torch.contiguous_format
    device = torch.device(cfg.get("device", "cpu"))
    net = net.to(device=device, memory_format=memory_format)
    images, labels = images.to(device), labels.to(device)
    t = {k: (v.to(device) if k.startswith("data/sample/") else v) for k, v in t.items()}
    opt = torch.optim.SGD(net.parameters(), lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["weight_decay"])
    schedule = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=cfg["lr_milestones"], gamma=cfg["lr_gamma"])
    net.train()
    losses = []
    b = cfg["batch_size"]
    for epoch in range(cfg["epochs"]):
        order = t[f"data/order/{epoch}"]
        for start in range(0, len(order) - b + 1, b):
            idx = order[start : start + b]
            x = images[idx].to(memory_format=memory_format)
            classes = t.get(f"data/sample/{len(losses)}")
            loss = loss_value(cfg["loss"], cfg["params"], net, net.embed(x), labels[idx], classes)
            losses.append(loss.item())
            opt.zero_grad()
            loss.backward()
            if cfg.get("clip_grad_norm"):
                # The backbone's parameters in p2sbench's order (by name), as it clips them.
                names = net.p2sbench_names()
                backbone = [names[k] for k in sorted(names) if k.startswith("backbone.") and names[k].requires_grad]
                torch.nn.utils.clip_grad_norm_(backbone, cfg["clip_grad_norm"])
            opt.step()
        schedule.step()
    out = {"loss": torch.tensor(losses, dtype=torch.float64)}
    out.update({k: v.detach().cpu() for k, v in net.p2sbench_names().items()})
    write_safetensors(out_path, out)


if __name__ == "__main__":
    main()
