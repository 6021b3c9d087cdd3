"""Opens a model that `p2sbench export` wrote with code this project did not write, and embeds
images with it, for tests/export.rs. Inputs and outputs are 2-D float32 .npy files (one image or
one embedding per row).

    python reference/export_reference.py onnxruntime MODEL.onnx IN.npy C S OUT.npy
        onnx.checker (full check), then onnxruntime (CPU) runs MODEL on IN's rows as [N, C, S, S]
        network input.
    python reference/export_reference.py insightface MODEL.onnx IN.npy S OUT.npy
        insightface's model_zoo.get_model loads MODEL; IN's rows are 0..255 RGB pixels of S x S
        images (channels last); they go to its get_feat as the BGR uint8 images it expects
        (cv2's order), so that its own blobFromImages swaps, subtracts and scales them. Prints
        {"class", "taskname", "input_mean", "input_std", "input_size"} as JSON.
    python reference/export_reference.py arcface_torch BACKBONE.py WEIGHTS.safetensors LAYERS D IN.npy OUT.npy
        BACKBONE.py is arcface_torch's iresnet.py as PyPI ships it (scripts/setup-python-export.sh);
        IResNet(IBasicBlock, LAYERS, num_features=D), i.e. arcface_torch's get_model("r18", ...)
        for LAYERS = 2,2,2,2, loads WEIGHTS with strict=True and embeds IN's rows as
        [N, 3, 112, 112] network input in eval mode.
"""
import importlib.util
import json
import sys

import numpy as np


def onnxruntime_embed(model, inputs, channels, size, out):
    import onnx
    import onnxruntime

    onnx.checker.check_model(onnx.load(model), full_check=True)
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    x = np.load(inputs).astype(np.float32).reshape(-1, int(channels), int(size), int(size))
    np.save(out, session.run(None, {session.get_inputs()[0].name: x})[0])


def insightface_embed(model, inputs, size, out):
    from insightface.model_zoo import get_model

    m = get_model(model, providers=["CPUExecutionProvider"])
    if m is None:
        raise SystemExit(f"insightface's model_zoo does not recognise {model}")
    size = int(size)
    rgb = np.load(inputs).reshape(-1, size, size, 3)
    assert rgb.min() >= 0 and rgb.max() <= 255 and np.all(rgb == np.round(rgb))
    bgr = [np.ascontiguousarray(img[:, :, ::-1]).astype(np.uint8) for img in rgb]
    np.save(out, np.asarray(m.get_feat(bgr), dtype=np.float32))
    print(json.dumps({
        "class": type(m).__name__,
        "taskname": m.taskname,
        "input_mean": float(m.input_mean),
        "input_std": float(m.input_std),
        "input_size": list(m.input_size),
    }))


def arcface_torch_embed(backbone, weights, layers, dim, inputs, out):
    import torch
    from safetensors.torch import load_file

    spec = importlib.util.spec_from_file_location("arcface_backbone", backbone)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = module.IResNet(module.IBasicBlock, [int(n) for n in layers.split(",")], num_features=int(dim))
    net.load_state_dict(load_file(weights), strict=True)
    net.eval()
    x = torch.from_numpy(np.load(inputs).astype(np.float32).reshape(-1, 3, 112, 112))
    with torch.no_grad():
        np.save(out, net(x).numpy())


def main():
    command, args = sys.argv[1], sys.argv[2:]
    {"onnxruntime": onnxruntime_embed, "insightface": insightface_embed, "arcface_torch": arcface_torch_embed}[command](*args)


if __name__ == "__main__":
    main()
