"""Read/write basisnetd model files (docs/model-format.md) and build the same two-stage
network in PyTorch from a file's metadata and tensors, so that peer runtimes (TorchScript,
ONNX Runtime, OpenCV DNN) run exactly the weights the C engine runs.

Graphs (all NCHW float32, batch 1):
  light       normalized light input          -> (light logits, coeffs)
  specialist  normalized full input           -> logits, weights synthesized once from a
                                                 fixed alpha (static weights)
  full        (light input, full input)       -> (light logits, alpha, specialist logits)
              with softmax + synthesis (alpha @ bases) inside the graph
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# the activation names of docs/model-format.md and the file codec, shared with the training code
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "train"))
from basisnet_train.models import ACTS  # noqa: E402
from basisnet_train import bnm as codec  # noqa: E402


def read_bnm(path):
    """(architecture document or None, name -> writable numpy array) of a model file."""
    meta, tensors = codec.read(path)
    return codec.architecture(meta), {k: v.copy() for k, v in tensors.items()}


def write_bnm(path, doc, tensors):
    """tensors: name -> numpy array (float32 or float16 for bases, uint8 for golden). The
    metadata carries data_crc32, the data section's CRC-32 the engine verifies at load."""
    meta = {codec.CHECKSUM_KEY: ""}  # first, then the architecture
    if doc is not None:
        meta[codec.ARCH_KEY] = json.dumps(doc)
    codec.write(path, tensors, meta, compact=False, metadata_last=True)


def preprocess(doc, img_u8):
    """uint8 (B,H,W,C) -> (light input, full input), normalized NCHW float32."""
    inp = doc["input"]
    x = torch.from_numpy(img_u8).permute(0, 3, 1, 2).float()
    mean = torch.tensor(inp["mean"], dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(inp["std"], dtype=torch.float32).view(1, -1, 1, 1)
    x = (x / 255.0 - mean) / std
    lh, lw = inp["light"]["height"], inp["light"]["width"]
    if inp["light"]["resize"] == "avgpool":
        xl = F.avg_pool2d(x, inp["height"] // lh)
    else:
        xl = F.interpolate(x, (lh, lw), mode="bilinear", align_corners=False, antialias=False)
    return xl.contiguous(), x.contiguous()


class Stage(nn.Module):
    """One stage's layer list. Synthesized layers take their weight from `synth_w`."""

    def __init__(self, layers, tensors, num_bases):
        super().__init__()
        self.layers = layers
        self.N = num_bases
        self.params = nn.ParameterDict()
        for name, a in tensors.items():
            self.params[name.replace(".", "__")] = nn.Parameter(
                torch.from_numpy(np.asarray(a, dtype=np.float32)), requires_grad=False)

    def p(self, name):
        return self.params[name.replace(".", "__")]

    def forward(self, x, synth_w=None):
        outs = {"input": x}
        prev = "input"
        for L in self.layers:
            op, name = L["op"], L["name"]
            y = outs[L.get("input", prev)]
            if op == "conv2d":
                w = synth_w[name] if L["synth"] else self.p(name + ".weight")
                y = F.conv2d(y, w, self.p(name + ".bias"), tuple(L["stride"]), tuple(L["padding"]), 1, L["groups"])
                y = ACTS[L["act"]](y)
            elif op == "linear":
                w = synth_w[name] if L["synth"] else self.p(name + ".weight")
                y = ACTS[L["act"]](F.linear(y.flatten(1), w, self.p(name + ".bias")))
                y = y.view(y.shape[0], -1, 1, 1)
            elif op == "add":
                a, b = L["inputs"]
                y = ACTS[L["act"]](outs[a] + outs[b])
            elif op == "se":
                s = F.adaptive_avg_pool2d(y, 1).flatten(1)  # GlobalAveragePool in ONNX
                s = ACTS[L["act"]](F.linear(s, self.p(name + ".fc1.weight"), self.p(name + ".fc1.bias")))
                s = ACTS[L["gate"]](F.linear(s, self.p(name + ".fc2.weight"), self.p(name + ".fc2.bias")))
                y = y * s.view(s.shape[0], -1, 1, 1)
            elif op == "avgpool":
                y = F.avg_pool2d(y, tuple(L["kernel"]), tuple(L["stride"]), tuple(L["padding"]), count_include_pad=True)
            elif op == "maxpool":
                y = F.max_pool2d(y, tuple(L["kernel"]), tuple(L["stride"]), tuple(L["padding"]))
            elif op == "gap":
                y = F.adaptive_avg_pool2d(y, 1)
            elif op == "act":
                y = ACTS[L["act"]](y)
            else:
                raise ValueError("unknown op " + op)
            outs[name] = y
            prev = name
        return outs


def _stage_tensors(doc, tensors, stage):
    names = {L["name"] for L in doc[stage]["layers"]}
    return {k: v for k, v in tensors.items() if k.rsplit(".", 1)[0] in names
            or k.rsplit(".", 2)[0] in names}


class LightNet(nn.Module):
    def __init__(self, doc, tensors):
        super().__init__()
        self.doc = doc
        self.stage = Stage(doc["light"]["layers"], _stage_tensors(doc, tensors, "light"), doc["num_bases"])

    def forward(self, xl):
        o = self.stage(xl)
        return o[self.doc["light"]["logits"]].flatten(1), o[self.doc["light"]["coeffs"]].flatten(1)


class SpecialistNet(nn.Module):
    """alpha=None: synthesis in the graph from an `alpha` input; else static weights."""

    def __init__(self, doc, tensors, alpha=None):
        super().__init__()
        self.doc = doc
        self.N = doc["num_bases"]
        self.synth = doc["synth_layers"]
        st = _stage_tensors(doc, tensors, "specialist")
        self.shapes = {n: tuple(st[n + ".bases"].shape[1:]) for n in self.synth}
        if alpha is not None:  # fold synthesis into static weights
            st = dict(st)
            for l, n in enumerate(self.synth):
                b = st.pop(n + ".bases").astype(np.float32)
                st[n + ".weight"] = np.tensordot(alpha[l].astype(np.float64), b, 1).astype(np.float32)
            layers = [dict(L, synth=False) for L in doc["specialist"]["layers"]]
        else:
            layers = doc["specialist"]["layers"]
            self.bases = nn.ParameterDict({
                n.replace(".", "__"): nn.Parameter(torch.from_numpy(
                    st.pop(n + ".bases").astype(np.float32).reshape(self.N, -1)), requires_grad=False)
                for n in self.synth})
        self.static = alpha is not None
        self.stage = Stage(layers, st, self.N)

    def forward(self, x, alpha=None):
        synth_w = None
        if not self.static:
            synth_w = {}
            for l, n in enumerate(self.synth):
                w = torch.matmul(alpha[:, l], self.bases[n.replace(".", "__")])  # (1, P): batch 1
                synth_w[n] = w.view(self.shapes[n])
        return self.stage(x, synth_w)[self.doc["specialist"]["logits"]].flatten(1)


class FullNet(nn.Module):
    def __init__(self, doc, tensors):
        super().__init__()
        self.light = LightNet(doc, tensors)
        self.spec = SpecialistNet(doc, tensors)
        self.L, self.N = len(doc["synth_layers"]), doc["num_bases"]

    def forward(self, xl, x):
        logits, coeffs = self.light(xl)
        alpha = torch.softmax(coeffs.view(-1, self.L, self.N), -1)
        return logits, alpha, self.spec(x, alpha)


def golden(doc, tensors, images_u8):
    """Reference outputs for the engine's parity test format (docs/model-format.md)."""
    net = FullNet(doc, tensors).eval()
    xl, x = preprocess(doc, images_u8)
    with torch.no_grad():
        ll, alpha, sl = [], [], []
        for k in range(len(images_u8)):
            a, b, c = net(xl[k:k + 1], x[k:k + 1])
            ll.append(a), alpha.append(b), sl.append(c)
    return {"input": images_u8, "light_logits": torch.cat(ll).numpy(),
            "alpha": torch.cat(alpha).numpy(), "specialist_logits": torch.cat(sl).numpy()}
