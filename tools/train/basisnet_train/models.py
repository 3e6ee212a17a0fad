"""BasisNet modules for basisnetd (PyTorch).

Two-stage model (Zhang et al., "BasisNet", arXiv 2105.03014). A spec (``SPECS``) fixes the
input (channels, side, normalization, light-stage side), the specialist and the light
model: ``fmnist`` (28x28 gray, light 14x14) or the camera family ``cam96``, ``cam160``,
``cam224`` (RGB, light at half the side).

* ``Light``: a small conv net on a half-resolution copy of the normalized input
  (``F.avg_pool2d(x, 2)``). Two heads: ``logits`` (num_classes) and ``coeffs`` (L*N).
* ``Specialist``: MobileNetV2/V3-style net on the full input. Some of its convs (and
  optionally its classifier) are *synthesized*: W_l = sum_n alpha_{l,n} W_{l,n},
  alpha_l = softmax(coeffs_l / T).

Every module can ``export()`` itself as the layer list of docs/model-format.md with batch
norm folded, so export.py, the MAdds counter and the reference forward all work from the
same description that the C engine reads.
"""

import copy
import math
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

MEAN = 0.2860
STD = 0.3530
NUM_CLASSES = 10

ACTS = {
    "none": lambda x: x,
    "relu": F.relu,
    "relu6": F.relu6,
    "hswish": F.hardswish,
    "hsigmoid": F.hardsigmoid,
    "sigmoid": torch.sigmoid,
}


def act_fn(name):
    if name not in ACTS:
        raise ValueError("unknown activation %r" % name)
    return ACTS[name]


def normalize_u8(img_u8, inp=None):
    """uint8 tensor (B,H,W) (one channel) or (B,C,H,W) -> normalized float32 (B,C,H,W),
    x = (p / 255 - mean[c]) / std[c] with the input spec's mean and std (default fmnist)."""
    inp = inp or INPUTS["fmnist"]
    x = img_u8.float()
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.shape[1] != inp["channels"]:
        raise ValueError("images have %d channels, the model takes %d" % (x.shape[1], inp["channels"]))
    mean = torch.tensor(inp["mean"], dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(inp["std"], dtype=torch.float32).view(1, -1, 1, 1)
    return (x / 255.0 - mean) / std


def light_input(x, factor=2):
    """Lightweight input from the normalized image (docs/model-format.md, avgpool)."""
    return F.avg_pool2d(x, factor)


# --------------------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------------------

class ConvBN(nn.Module):
    """Conv (static, or synthesized from N bases) + BatchNorm + activation.

    Synthesized forward builds per-sample weights (B x params, cheap) and runs one grouped
    conv over the batch (groups = B * groups), or a bmm for 1x1 convs: same cost as a
    static conv, no N-fold blow-up.
    """

    def __init__(self, name, cin, cout, k, stride=1, groups=1, act="relu", synth=False,
                 num_bases=1, split_act=False):
        super().__init__()
        self.name, self.cin, self.cout, self.k = name, cin, cout, k
        self.stride, self.groups, self.act = stride, groups, act
        self.pad = k // 2
        self.synth = synth
        self.num_bases = num_bases
        self.split_act = split_act  # export as conv2d(act none) + separate `act` layer
        shape = (cout, cin // groups, k, k)
        if synth:
            w = torch.empty(num_bases, *shape)
            for n in range(num_bases):
                nn.init.kaiming_normal_(w[n], mode="fan_out", nonlinearity="relu")
            self.bases = nn.Parameter(w)
        else:
            w = torch.empty(*shape)
            nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
            self.weight = nn.Parameter(w)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x, alpha=None):
        if self.synth:
            B, C, H, W = x.shape
            wb = torch.mm(alpha, self.bases.flatten(1))  # (B, P)
            if self.k == 1 and self.groups == 1 and self.stride == 1:
                y = torch.bmm(wb.view(B, self.cout, self.cin), x.reshape(B, C, H * W))
                y = y.view(B, self.cout, H, W)
            else:
                wb = wb.view(B * self.cout, self.cin // self.groups, self.k, self.k)
                y = F.conv2d(x.reshape(1, B * C, H, W), wb, None, self.stride, self.pad,
                             groups=B * self.groups)
                y = y.view(B, self.cout, y.shape[-2], y.shape[-1])
        else:
            y = F.conv2d(x, self.weight, None, self.stride, self.pad, groups=self.groups)
        return act_fn(self.act)(self.bn(y))

    @torch.no_grad()
    def export(self, tensors):
        bn = self.bn
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        bias = bn.bias - bn.running_mean * scale
        layer = OrderedDict(name=self.name, op="conv2d", **{"in": self.cin}, out=self.cout,
                            kernel=[self.k, self.k], stride=[self.stride, self.stride],
                            padding=[self.pad, self.pad], groups=self.groups,
                            act="none" if self.split_act else self.act, synth=self.synth)
        if self.synth:
            tensors[self.name + ".bases"] = self.bases * scale.view(1, -1, 1, 1, 1)
        else:
            tensors[self.name + ".weight"] = self.weight * scale.view(-1, 1, 1, 1)
        tensors[self.name + ".bias"] = bias
        layers = [layer]
        if self.split_act:
            layers.append(OrderedDict(name=self.name + ".act", op="act", act=self.act))
        return layers


class Linear(nn.Module):
    """Linear layer, static or synthesized; no batch norm."""

    def __init__(self, name, cin, cout, act="none", synth=False, num_bases=1):
        super().__init__()
        self.name, self.cin, self.cout, self.act = name, cin, cout, act
        self.synth, self.num_bases = synth, num_bases
        bound = 1.0 / math.sqrt(cin)
        if synth:
            self.bases = nn.Parameter(torch.empty(num_bases, cout, cin).uniform_(-bound, bound))
        else:
            self.weight = nn.Parameter(torch.empty(cout, cin).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(cout))

    def forward(self, x, alpha=None):
        x = x.flatten(1)
        if self.synth:
            B = x.shape[0]
            wb = torch.mm(alpha, self.bases.flatten(1)).view(B, self.cout, self.cin)
            y = torch.bmm(wb, x.unsqueeze(2)).squeeze(2) + self.bias
        else:
            y = F.linear(x, self.weight, self.bias)
        return act_fn(self.act)(y)

    @torch.no_grad()
    def export(self, tensors, input_name=None):
        layer = OrderedDict(name=self.name, op="linear", **{"in": self.cin}, out=self.cout,
                            act=self.act, synth=self.synth)
        if input_name:
            layer["input"] = input_name
        tensors[self.name + (".bases" if self.synth else ".weight")] = (
            self.bases if self.synth else self.weight).clone()
        tensors[self.name + ".bias"] = self.bias.clone()
        return [layer]


class SE(nn.Module):
    def __init__(self, name, channels, squeeze, act="relu", gate="hsigmoid"):
        super().__init__()
        self.name, self.channels, self.squeeze = name, channels, squeeze
        self.act, self.gate = act, gate
        self.fc1 = nn.Linear(channels, squeeze)
        self.fc2 = nn.Linear(squeeze, channels)

    def forward(self, x):
        s = x.mean((2, 3))
        g = act_fn(self.gate)(self.fc2(act_fn(self.act)(self.fc1(s))))
        return x * g[:, :, None, None]

    @torch.no_grad()
    def export(self, tensors):
        for fc in ("fc1", "fc2"):
            m = getattr(self, fc)
            tensors["%s.%s.weight" % (self.name, fc)] = m.weight.clone()
            tensors["%s.%s.bias" % (self.name, fc)] = m.bias.clone()
        return [OrderedDict(name=self.name, op="se", channels=self.channels,
                            squeeze=self.squeeze, act=self.act, gate=self.gate)]


def _make_div(v, d=4):
    return max(d, int(v + d / 2) // d * d)


class InvertedResidual(nn.Module):
    """expand 1x1 -> depthwise kxk (stride) -> [SE] -> project 1x1 (linear) [+ residual]."""

    def __init__(self, name, cin, exp, cout, k, stride, se, act, synth_parts, num_bases):
        super().__init__()
        self.name = name
        self.use_res = stride == 1 and cin == cout
        syn = lambda part: part in synth_parts
        self.expand = None
        if exp != cin:
            self.expand = ConvBN(name + ".exp", cin, exp, 1, 1, 1, act, syn("exp"), num_bases)
        self.dw = ConvBN(name + ".dw", exp, exp, k, stride, exp, act, syn("dw"), num_bases)
        self.se = SE(name + ".se", exp, _make_div(exp / 4, 4)) if se else None
        self.proj = ConvBN(name + ".proj", exp, cout, 1, 1, 1, "none", syn("proj"), num_bases)

    def convs(self):
        return [c for c in (self.expand, self.dw, self.proj) if c is not None]

    def forward(self, x, alphas):
        y = x
        if self.expand is not None:
            y = self.expand(y, alphas.get(self.expand.name))
        y = self.dw(y, alphas.get(self.dw.name))
        if self.se is not None:
            y = self.se(y)
        y = self.proj(y, alphas.get(self.proj.name))
        return x + y if self.use_res else y

    def export(self, tensors, input_name):
        layers = []
        for m in (self.expand, self.dw, self.se, self.proj):
            if m is not None:
                layers += m.export(tensors)
        if self.use_res:
            layers.append(OrderedDict(name=self.name + ".add", op="add",
                                      inputs=[input_name, self.proj.name], act="none"))
        return layers


# --------------------------------------------------------------------------------------
# configurations
# --------------------------------------------------------------------------------------

# blocks: (kernel, expansion channels, out channels, SE, activation, stride)
SPEC_CONFIGS = {
    "fmnist": dict(
        stem=(16, 3, 1, "hswish"),
        blocks=[
            (3, 16, 24, False, "relu", 2),     # no expansion; 28 -> 14
            (3, 72, 24, False, "relu", 1),
            (3, 72, 24, False, "relu", 1),
            (5, 96, 48, True, "hswish", 2),    # 14 -> 7
            (5, 192, 48, True, "hswish", 1),
            (5, 192, 48, True, "hswish", 1),
            (3, 240, 64, True, "hswish", 1),
            (3, 320, 64, True, "hswish", 1),
        ],
        last=384, head=256, dropout=0.2,
        synth_parts=("exp", "dw", "proj"), synth_from=1, synth_fc=True,
    ),
    # tiny random fixture: exercises every op, small enough to commit
    "tiny": dict(
        stem=(8, 3, 2, "hswish"),
        stem_split_act=True,
        blocks=[
            (3, 8, 8, True, "relu", 1),        # no expand; dw + SE(sigmoid) + add
            (3, 16, 12, False, "relu6", 2),    # strided dw
            (5, 24, 12, True, "hswish", 1),
        ],
        last=32, head=0, dropout=0.0,
        synth_parts=("exp", "dw", "proj"), synth_from=1, synth_fc=True,
        se_gate_first="sigmoid",
    ),
}

# The same MAdds (11.67M full path) moved towards 14x14: three blocks there, 32 channels
# and expansion 96-128 (fmnist: two blocks, 24 channels, expansion 72), and three blocks at
# 7x7 instead of five; the rest as fmnist. `train.py --spec fmnist14`; results-training.md.
SPEC_CONFIGS["fmnist14"] = dict(SPEC_CONFIGS["fmnist"], blocks=[
    (3, 16, 24, False, "relu", 2),     # no expansion; 28 -> 14
    (3, 96, 32, False, "relu", 1),
    (3, 112, 32, False, "relu", 1),
    (3, 128, 32, True, "hswish", 1),
    (5, 128, 48, True, "hswish", 2),   # 14 -> 7
    (5, 192, 48, True, "hswish", 1),
    (3, 240, 64, True, "hswish", 1),
])

# light layers: ("conv", out, k, stride, act) | ("dw", k, stride, act)
#               | ("avgpool", k, stride, pad) | ("maxpool", k, stride, pad); then gap + heads
LIGHT_CONFIGS = {
    "fmnist": dict(layers=[("conv", 24, 3, 1, "relu"), ("conv", 48, 3, 2, "relu"),
                           ("conv", 96, 3, 2, "relu")], hidden=128),
    "tiny": dict(layers=[("conv", 8, 3, 1, "relu"), ("maxpool", 2, 2, 0),
                         ("conv", 12, 3, 1, "hswish"), ("avgpool", 3, 2, 1)], hidden=16),
}


# Camera family: RGB, MobileNetV3-Small-style specialist (Howard et al., 2019, table 2: the
# same eleven inverted-residual blocks, stem stride 2, SE and h-swish) whose expand,
# depthwise and project convs from block 1 on and classifier are synthesized; a narrower
# head (256) because camera tasks have a few classes. The side sets the cost: about 11M
# MAdds at 96, 30M at 160, 58M at 224 for the specialist.
CAM_BLOCKS = [
    (3, 16, 16, True, "relu", 2),
    (3, 72, 24, False, "relu", 2),
    (3, 88, 24, False, "relu", 1),
    (5, 96, 40, True, "hswish", 2),
    (5, 240, 40, True, "hswish", 1),
    (5, 240, 40, True, "hswish", 1),
    (5, 120, 48, True, "hswish", 1),
    (5, 144, 48, True, "hswish", 1),
    (5, 288, 96, True, "hswish", 2),
    (5, 576, 96, True, "hswish", 1),
    (5, 576, 96, True, "hswish", 1),
]
SPEC_CONFIGS["cam"] = dict(
    stem=(16, 3, 2, "hswish"), blocks=CAM_BLOCKS, last=576, head=256, dropout=0.2,
    synth_parts=("exp", "dw", "proj"), synth_from=1, synth_fc=True)
# Light model at half the side: MobileNetV1-style depthwise-separable pairs, stride 2 four
# times, so it sees the scene at 1/8 of the specialist's side at its last layer; about a
# fifth of the specialist's MAdds.
LIGHT_CONFIGS["cam"] = dict(layers=[
    ("conv", 16, 3, 2, "hswish"),
    ("dw", 3, 1, "relu"), ("conv", 32, 1, 1, "relu"),
    ("dw", 3, 2, "relu"), ("conv", 48, 1, 1, "relu"),
    ("dw", 3, 1, "relu"), ("conv", 48, 1, 1, "relu"),
    ("dw", 3, 2, "hswish"), ("conv", 96, 1, 1, "hswish"),
    ("dw", 3, 1, "hswish"), ("conv", 96, 1, 1, "hswish"),
    ("dw", 3, 2, "hswish"), ("conv", 160, 1, 1, "hswish"),
], hidden=256)

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
INPUTS = {
    "fmnist": dict(channels=1, size=28, mean=[MEAN], std=[STD], light=14),
}
for _side in (96, 160, 224):
    INPUTS["cam%d" % _side] = dict(channels=3, size=_side, mean=IMAGENET_MEAN,
                                   std=IMAGENET_STD, light=_side // 2)

# spec name -> (specialist config, light config, input); `train.py --spec`
SPECS = {
    "fmnist": ("fmnist", "fmnist", "fmnist"),
    "fmnist14": ("fmnist14", "fmnist", "fmnist"),
    "tiny": ("tiny", "tiny", "fmnist"),
    "cam96": ("cam", "cam", "cam96"),
    "cam160": ("cam", "cam", "cam160"),
    "cam224": ("cam", "cam", "cam224"),
}
TRAIN_SPECS = ["fmnist", "fmnist14", "cam96", "cam160", "cam224"]


def spec_parts(spec):
    """(specialist config, light config, input dict) of a spec name."""
    if spec not in SPECS:
        raise ValueError("unknown spec %r (known: %s)" % (spec, ", ".join(TRAIN_SPECS)))
    sc, lc, inp = SPECS[spec]
    return SPEC_CONFIGS[sc], LIGHT_CONFIGS[lc], INPUTS[inp]


def input_shapes(inp):
    """((C,H,W) of the specialist's input, (C,h,w) of the light input)."""
    c, s, l = inp["channels"], inp["size"], inp["light"]
    return (c, s, s), (c, l, l)


def scale_spec_config(cfg, width):
    """Width multiplier for the static-wide baseline."""
    c = copy.deepcopy(cfg)
    s_out, k, s, a = c["stem"]
    c["stem"] = (_make_div(s_out * width), k, s, a)
    c["blocks"] = [(k, _make_div(e * width), _make_div(o * width), se, a, st)
                   for (k, e, o, se, a, st) in c["blocks"]]
    # keep "no expansion" blocks consistent (exp == cin)
    cin = c["stem"][0]
    blocks = []
    for (k, e, o, se, a, st), orig in zip(c["blocks"], cfg["blocks"]):
        if orig[1] == (cfg["stem"][0] if not blocks else cfg["blocks"][len(blocks) - 1][2]):
            e = cin
        blocks.append((k, e, o, se, a, st))
        cin = o
    c["blocks"] = blocks
    c["last"] = _make_div(c["last"] * width)
    if c["head"]:
        c["head"] = _make_div(c["head"] * width)
    return c


# --------------------------------------------------------------------------------------
# stages
# --------------------------------------------------------------------------------------

class Specialist(nn.Module):
    def __init__(self, cfg, num_bases=4, synth=True, in_ch=1, num_classes=NUM_CLASSES,
                 prefix="s"):
        super().__init__()
        self.cfg = cfg
        self.num_bases = num_bases if synth else 1
        P = prefix
        out, k, s, a = cfg["stem"]
        self.stem = ConvBN(P + ".stem", in_ch, out, k, s, 1, a, False, 1,
                           split_act=cfg.get("stem_split_act", False))
        blocks = []
        cin = out
        for i, (k, e, o, se, a, st) in enumerate(cfg["blocks"]):
            parts = cfg["synth_parts"] if (synth and i >= cfg["synth_from"]) else ()
            b = InvertedResidual("%s.b%d" % (P, i), cin, e, o, k, st, se, a, parts,
                                 self.num_bases)
            if i == 0 and se and cfg.get("se_gate_first"):
                b.se.gate = cfg["se_gate_first"]
            blocks.append(b)
            cin = o
        self.blocks = nn.ModuleList(blocks)
        self.last = ConvBN(P + ".last", cin, cfg["last"], 1, 1, 1, "hswish", False, 1)
        feat = cfg["last"]
        self.head = None
        if cfg["head"]:
            self.head = Linear(P + ".head", feat, cfg["head"], "hswish")
            feat = cfg["head"]
        self.drop = nn.Dropout(cfg["dropout"])
        self.fc = Linear(P + ".fc", feat, num_classes, "none",
                         synth and cfg["synth_fc"], self.num_bases)

    def synth_layers(self):
        names = []
        for b in self.blocks:
            names += [c.name for c in b.convs() if c.synth]
        if self.fc.synth:
            names.append(self.fc.name)
        return names

    def forward(self, x, alpha=None):
        """alpha: (B, L, N) or None for a static specialist."""
        amap = {}
        if alpha is not None:
            amap = {n: alpha[:, i] for i, n in enumerate(self.synth_layers())}
        y = self.stem(x)
        for b in self.blocks:
            y = b(y, amap)
        y = self.last(y)
        y = y.mean((2, 3))
        if self.head is not None:
            y = self.head(y)
        y = self.drop(y)
        return self.fc(y, amap.get(self.fc.name))

    def export(self, tensors):
        layers = self.stem.export(tensors)
        for b in self.blocks:
            layers += b.export(tensors, layers[-1]["name"])
        layers += self.last.export(tensors)
        P = self.last.name.split(".")[0]
        layers.append(OrderedDict(name=P + ".gap", op="gap"))
        if self.head is not None:
            layers += self.head.export(tensors)
        layers += self.fc.export(tensors)
        return layers


class Light(nn.Module):
    def __init__(self, cfg, num_synth=0, num_bases=1, in_ch=1, num_classes=NUM_CLASSES,
                 prefix="l"):
        super().__init__()
        self.cfg = cfg
        self.num_synth, self.num_bases = num_synth, num_bases
        P = prefix
        mods = []
        cin = in_ch
        for i, spec in enumerate(cfg["layers"]):
            kind = spec[0]
            name = "%s.c%d" % (P, i)
            if kind == "conv":
                _, o, k, s, a = spec
                mods.append(ConvBN(name, cin, o, k, s, 1, a, False, 1))
                cin = o
            elif kind == "dw":
                _, k, s, a = spec
                mods.append(ConvBN(name, cin, cin, k, s, cin, a, False, 1))
            elif kind in ("avgpool", "maxpool"):
                mods.append(Pool(name, kind, *spec[1:]))
            else:
                raise ValueError(kind)
        self.body = nn.ModuleList(mods)
        feat = cin
        self.hidden = None
        if cfg.get("hidden"):
            self.hidden = Linear(P + ".hid", feat, cfg["hidden"], "hswish")
            feat = cfg["hidden"]
        self.drop = nn.Dropout(0.1)
        self.fc = Linear(P + ".fc", feat, num_classes, "none")
        self.coef = Linear(P + ".coef", feat, num_synth * num_bases, "none") if num_synth else None
        self.prefix = P

    def forward(self, x):
        """x: the 14x14 light input. Returns (logits, coeffs or None)."""
        y = x
        for m in self.body:
            y = m(y)
        y = y.mean((2, 3))
        if self.hidden is not None:
            y = self.hidden(y)
        logits = self.fc(self.drop(y))
        coeffs = self.coef(y) if self.coef is not None else None
        return logits, coeffs

    def export(self, tensors):
        layers = []
        for m in self.body:
            layers += m.export(tensors)
        layers.append(OrderedDict(name=self.prefix + ".gap", op="gap"))
        feat_name = self.prefix + ".gap"
        if self.hidden is not None:
            layers += self.hidden.export(tensors)
            feat_name = self.hidden.name
        layers += self.fc.export(tensors)
        if self.coef is not None:
            layers += self.coef.export(tensors, input_name=feat_name)
        return layers


class Pool(nn.Module):
    def __init__(self, name, kind, k, s, p):
        super().__init__()
        self.name, self.kind, self.k, self.s, self.p = name, kind, k, s, p

    def forward(self, x):
        if self.kind == "avgpool":
            return F.avg_pool2d(x, self.k, self.s, self.p, count_include_pad=True)
        return F.max_pool2d(x, self.k, self.s, self.p)

    def export(self, tensors):
        return [OrderedDict(name=self.name, op=self.kind, kernel=[self.k, self.k],
                            stride=[self.s, self.s], padding=[self.p, self.p])]


# --------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------

def _resolve(spec_cfg, light_cfg, inp):
    """Spec name or configs -> (specialist config, light config, input dict). A spec name
    in SPECS sets all three; LIGHT_CONFIGS / INPUTS names and dicts are taken as given."""
    name = spec_cfg if isinstance(spec_cfg, str) else None
    if name is not None and name in SPECS:
        sc, lc, ic = spec_parts(name)
    else:
        sc = SPEC_CONFIGS[spec_cfg] if isinstance(spec_cfg, str) else spec_cfg
        lc, ic = LIGHT_CONFIGS["fmnist"], INPUTS["fmnist"]
    if light_cfg is not None:
        lc = LIGHT_CONFIGS[light_cfg] if isinstance(light_cfg, str) else light_cfg
    if inp is not None:
        ic = INPUTS[inp] if isinstance(inp, str) else inp
    return sc, lc, ic


class _Stages(nn.Module):
    """What every exportable model shares: its input spec and the light input."""

    def light_in(self, x):
        return light_input(x, self.inp["size"] // self.inp["light"])

    def shapes(self):
        return input_shapes(self.inp)

    def normalize(self, x_u8):
        return normalize_u8(x_u8, self.inp)


class BasisNet(_Stages):
    """Lightweight model + synthesized specialist. num_bases=1 gives the cascade baseline."""

    kind = "basisnet"

    def __init__(self, spec_cfg="fmnist", light_cfg=None, num_bases=4, inp=None,
                 num_classes=NUM_CLASSES, basis_dropout=0.0):
        super().__init__()
        spec_cfg, light_cfg, self.inp = _resolve(spec_cfg, light_cfg, inp)
        in_ch = self.inp["channels"]
        self.num_bases = num_bases
        self.specialist = Specialist(spec_cfg, num_bases, True, in_ch, num_classes)
        self.L = len(self.specialist.synth_layers())
        self.light = Light(light_cfg, self.L, num_bases, in_ch, num_classes)
        self.temperature = 1.0
        self.basis_dropout = basis_dropout

    def alphas(self, coeffs):
        c = coeffs.view(-1, self.L, self.num_bases) / self.temperature
        if self.training and self.basis_dropout > 0 and self.num_bases > 1:
            drop = torch.rand_like(c) < self.basis_dropout
            # never drop all bases of a layer: keep the largest one
            keep = F.one_hot(c.argmax(-1), self.num_bases).bool()
            c = c.masked_fill(drop & ~keep, float("-inf"))
        return torch.softmax(c, dim=-1)

    def forward(self, x):
        """x: normalized (B,C,H,W). Returns dict(light_logits, alpha, logits)."""
        ll, coeffs = self.light(self.light_in(x))
        alpha = self.alphas(coeffs)
        logits = self.specialist(x, alpha)
        return {"light_logits": ll, "alpha": alpha, "logits": logits}

    def export(self):
        tensors = OrderedDict()
        light_layers = self.light.export(tensors)
        spec_layers = self.specialist.export(tensors)
        arch = OrderedDict(
            num_bases=self.num_bases,
            light=OrderedDict(layers=light_layers, logits=self.light.fc.name,
                              coeffs=self.light.coef.name),
            specialist=OrderedDict(layers=spec_layers, logits=self.specialist.fc.name),
            synth_layers=self.specialist.synth_layers(),
        )
        return arch, OrderedDict((k, v.detach().float().contiguous()) for k, v in tensors.items())


class StaticNet(_Stages):
    """Specialist-shaped static net (baselines (a) static-wide and (b) specialist alone)."""

    kind = "static"

    def __init__(self, spec_cfg="fmnist", width=1.0, inp=None, num_classes=NUM_CLASSES):
        super().__init__()
        spec_cfg, _, self.inp = _resolve(spec_cfg, None, inp)
        in_ch = self.inp["channels"]
        if width != 1.0:
            spec_cfg = scale_spec_config(spec_cfg, width)
        self.width = width
        self.specialist = Specialist(spec_cfg, 1, False, in_ch, num_classes)

    def forward(self, x):
        return {"logits": self.specialist(x)}

    def export(self):
        tensors = OrderedDict()
        layers = self.specialist.export(tensors)
        return OrderedDict(num_bases=1, specialist=OrderedDict(
            layers=layers, logits=self.specialist.fc.name), synth_layers=[]), tensors


class LightOnly(_Stages):
    """Baseline (c): the lightweight model alone on the light input."""

    kind = "light"

    def __init__(self, spec_cfg="fmnist", light_cfg=None, inp=None, num_classes=NUM_CLASSES):
        super().__init__()
        _, light_cfg, self.inp = _resolve(spec_cfg, light_cfg, inp)
        self.light = Light(light_cfg, 0, 1, self.inp["channels"], num_classes)

    def forward(self, x):
        ll, _ = self.light(self.light_in(x))
        return {"light_logits": ll, "logits": ll}

    def export(self):
        tensors = OrderedDict()
        layers = self.light.export(tensors)
        return OrderedDict(num_bases=1, light=OrderedDict(layers=layers, logits=self.light.fc.name),
                           synth_layers=[]), tensors


class _ResBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                       nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.b2(self.c2(F.relu(self.b1(self.c1(x)))))
        return F.relu(y + (x if self.short is None else self.short(x)))


class ResNetTeacher(nn.Module):
    """A distillation teacher only (train.py --arch resnet): a plain ResNet (He et al.,
    2016) of dense 3x3 convs, three stages of two blocks at 28x28, 14x14 and 7x7 with
    32, 64, 128 channels times ``width``. It is not bound by the 12M MAdds cap (80.5M
    at width 1) and has no export: the C engine never runs it. Dense convs train about
    as fast per image on one core as the specialist's depthwise ones do at 7x less MAdds,
    so a teacher that errs differently from the BasisNet chain fits in one session."""

    kind = "teacher"

    def __init__(self, width=1.0, inp=None, num_classes=NUM_CLASSES, blocks=2):
        super().__init__()
        self.inp = inp or INPUTS["fmnist"]
        in_ch = self.inp["channels"]
        self.width = width
        c = [max(8, int(round(b * width))) for b in (32, 64, 128)]
        self.stem = nn.Sequential(nn.Conv2d(in_ch, c[0], 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(c[0]), nn.ReLU(inplace=True))
        layers, cin = [], c[0]
        for i, co in enumerate(c):
            for j in range(blocks):
                layers.append(_ResBlock(cin, co, 2 if (i > 0 and j == 0) else 1))
                cin = co
        self.blocks = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        h = self.blocks(self.stem(x))
        return {"logits": self.fc(h.mean((2, 3)))}

    def export(self):
        raise ValueError("the resnet teacher (train.py --arch resnet) is for distillation "
                         "only; the C engine does not run it, so it has no export")

    def normalize(self, x_u8):
        return normalize_u8(x_u8, self.inp)

    def madds(self):
        """MAdds of one image (convs and the classifier; batch norm as folded)."""
        in_shape = input_shapes(self.inp)[0]
        total = [0]

        def hook(m, inp, out):
            if isinstance(m, nn.Conv2d):
                total[0] += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] \
                    * m.kernel_size[1]
            else:
                total[0] += m.in_features * m.out_features
        hs = [m.register_forward_hook(hook) for m in self.modules()
              if isinstance(m, (nn.Conv2d, nn.Linear))]
        was = self.training
        self.eval()
        with torch.no_grad():
            self(torch.zeros((1,) + tuple(in_shape)))
        self.train(was)
        for h in hs:
            h.remove()
        return {"light": 0, "specialist": total[0], "synth": 0, "full": total[0]}


# --------------------------------------------------------------------------------------
# MAdds (docs/model-format.md rule), computed from the exported layer list
# --------------------------------------------------------------------------------------

def _out(h, k, s, p):
    return (h + 2 * p - k) // s + 1


def stage_shapes_and_madds(layers, in_shape):
    """Shape inference over a stage's layer list. Returns (shapes dict, madds, synth_weights)."""
    shapes = {"input": tuple(in_shape)}
    prev = "input"
    madds = 0
    synth_w = {}
    for L in layers:
        src = L.get("input", prev)
        c, h, w = shapes[src]
        op = L["op"]
        if op == "conv2d":
            kh, kw = L["kernel"]
            sh, sw = L["stride"]
            ph, pw = L["padding"]
            if L["in"] != c:
                raise ValueError("%s: in %d != input channels %d" % (L["name"], L["in"], c))
            oh, ow = _out(h, kh, sh, ph), _out(w, kw, sw, pw)
            per = L["out"] * (L["in"] // L["groups"]) * kh * kw
            madds += oh * ow * per
            if L["synth"]:
                synth_w[L["name"]] = per
            shp = (L["out"], oh, ow)
        elif op == "linear":
            if L["in"] != c * h * w:
                raise ValueError("%s: in %d != %d" % (L["name"], L["in"], c * h * w))
            madds += L["in"] * L["out"]
            if L["synth"]:
                synth_w[L["name"]] = L["in"] * L["out"]
            shp = (L["out"], 1, 1)
        elif op == "se":
            madds += L["channels"] * L["squeeze"] * 2
            shp = (c, h, w)
        elif op in ("avgpool", "maxpool"):
            (kh, kw), (sh, sw), (ph, pw) = L["kernel"], L["stride"], L["padding"]
            shp = (c, _out(h, kh, sh, ph), _out(w, kw, sw, pw))
        elif op == "gap":
            shp = (c, 1, 1)
        elif op == "add":
            a, b = L["inputs"]
            if shapes[a] != shapes[b]:
                raise ValueError("%s: add of %s and %s" % (L["name"], shapes[a], shapes[b]))
            shp = shapes[a]
        elif op == "act":
            shp = (c, h, w)
        else:
            raise ValueError("unknown op " + op)
        shapes[L["name"]] = shp
        prev = L["name"]
    return shapes, madds, synth_w


def arch_madds(arch, in_shape=None, light_shape=None):
    """madds dict {light, specialist, synth, full} for an exported architecture (shapes
    from its input block, else 28x28 gray with a 14x14 light input)."""
    if in_shape is None:
        if "input" in arch:
            i = arch["input"]
            in_shape = (i["channels"], i["height"], i["width"])
            light_shape = (i["channels"], i["light"]["height"], i["light"]["width"])
        else:
            in_shape, light_shape = (1, 28, 28), (1, 14, 14)
    res = {"light": 0, "specialist": 0, "synth": 0}
    N = arch.get("num_bases", 1)
    if "light" in arch:
        res["light"] = stage_shapes_and_madds(arch["light"]["layers"], light_shape)[1]
    if "specialist" in arch:
        _, m, sw = stage_shapes_and_madds(arch["specialist"]["layers"], in_shape)
        res["specialist"] = m
        synth = set(arch.get("synth_layers", []))
        res["synth"] = N * sum(v for k, v in sw.items() if k in synth) if synth else 0
    res["full"] = res["light"] + res["specialist"] + res["synth"]
    return res


def model_madds(model):
    if isinstance(model, ResNetTeacher):
        return model.madds()
    arch, _ = model.export()
    return arch_madds(arch, *model.shapes())


def build_model(arch, bases=4, spec_cfg="fmnist", light_cfg=None, width=None,
                basis_dropout=0.0, num_classes=NUM_CLASSES):
    k = dict(num_classes=num_classes)
    if arch == "basisnet":
        return BasisNet(spec_cfg, light_cfg, bases, basis_dropout=basis_dropout, **k)
    if arch == "cascade":
        return BasisNet(spec_cfg, light_cfg, 1, **k)
    if arch == "specialist":
        return StaticNet(spec_cfg, 1.0, **k)
    if arch == "static-wide":
        if width is None:
            width = match_width(spec_cfg, model_madds(BasisNet(spec_cfg, light_cfg, bases, **k))["full"],
                                num_classes)
        return StaticNet(spec_cfg, width, **k)
    if arch == "light":
        return LightOnly(spec_cfg, light_cfg, **k)
    if arch == "resnet":
        return ResNetTeacher(1.0 if width is None else width,
                             _resolve(spec_cfg, light_cfg, None)[2], **k)
    raise ValueError("unknown arch %r" % arch)


def match_width(spec_cfg, target, num_classes=NUM_CLASSES):
    """Largest width multiplier (step 0.01) whose static net stays within target MAdds."""
    best = 1.0
    for i in range(100, 301):
        w = i / 100.0
        m = model_madds(StaticNet(spec_cfg, w, num_classes=num_classes))["full"]
        if m <= target:
            best = w
        elif m > 1.2 * target:
            break
    return best


if __name__ == "__main__":
    for a in ("basisnet", "cascade", "specialist", "static-wide", "light"):
        m = build_model(a)
        n = sum(p.numel() for p in m.parameters())
        print("%-12s params %8d madds %s" % (a, n, model_madds(m)))
    print("tiny", model_madds(BasisNet("tiny", "tiny", 4)))
    for sp in ("cam96", "cam160", "cam224"):
        for a in ("basisnet", "light", "specialist"):
            m = build_model(a, spec_cfg=sp, num_classes=3)
            n = sum(p.numel() for p in m.parameters())
            print("%-7s %-10s params %8d madds %s" % (sp, a, n, model_madds(m)))
