"""Training augmentation on uint8 batches (then normalized): Fashion-MNIST (crop, mirror,
erasing) and fixed cameras (shake, gain, colour cast, blur, noise, JPEG), and the
class-balanced sample order."""

import math

import numpy as np
import torch
import torch.nn.functional as F

from basisnet_train import models as bm


def augment(xb, gen, pad=2, erase_p=0.5):
    """xb: uint8 (B,28,28). Random crop with zero padding, horizontal flip, random erasing.
    Returns normalized float (B,1,28,28) and the (B,) bool flags of the mirrored images."""
    B, H, W = xb.shape
    xp = F.pad(xb.float(), (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (B,), generator=gen)
    ox = torch.randint(0, 2 * pad + 1, (B,), generator=gen)
    rows = (oy[:, None] + torch.arange(H))[:, :, None]
    cols = (ox[:, None] + torch.arange(W))[:, None, :]
    flip = torch.rand(B, generator=gen) < 0.5
    cols = torch.where(flip[:, None, None], cols.flip(-1), cols)
    x = xp[torch.arange(B)[:, None, None], rows, cols]
    x = (x / 255.0 - bm.MEAN) / bm.STD
    x = x.unsqueeze(1)
    if erase_p > 0:
        x = _erase(x, gen, erase_p)
    return x, flip


_BLUR = None


def augment_camera(xb, gen, inp, erase_p=0.0, jpeg_p=0.3):
    """Augmentation for a fixed camera: xb uint8 (B,3,S,S). Per image: a small shift
    (up to 4% of the side), scale (0.92-1.08) and rotation (2 degrees), the shake of a
    mounted camera; gain 0.3-1.3x (log-uniform), contrast 0.7-1.3, a colour cast (channel
    gains 0.85-1.15), a slight blur (p 0.25), sensor noise growing as the gain drops, and
    JPEG artefacts (p jpeg_p, quality 20-80). No mirror image (a fixed scene has a left and
    a right) and no erasing by default (it can hide the object that sets the label).
    Returns the normalized float (B,3,S,S) and all-False flip flags."""
    global _BLUR
    B, C, H, W = xb.shape
    x = xb.float() / 255.0
    u = lambda lo, hi: torch.empty(B).uniform_(lo, hi, generator=gen)  # noqa: E731
    ang = u(-2, 2) * math.pi / 180
    sc = u(0.92, 1.08)
    th = torch.zeros(B, 2, 3)
    th[:, 0, 0] = torch.cos(ang) / sc
    th[:, 0, 1] = -torch.sin(ang) / sc
    th[:, 1, 0] = torch.sin(ang) / sc
    th[:, 1, 1] = torch.cos(ang) / sc
    th[:, 0, 2] = u(-0.08, 0.08)
    th[:, 1, 2] = u(-0.08, 0.08)
    grid = F.affine_grid(th, (B, C, H, W), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if _BLUR is None:
        k = torch.tensor([0.25, 0.5, 0.25])
        _BLUR = (k[:, None] * k[None, :]).expand(3, 1, 3, 3).contiguous()
    blur = (torch.rand(B, generator=gen) < 0.25)[:, None, None, None]
    x = torch.where(blur, F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), _BLUR, groups=3), x)
    gain = torch.exp(u(math.log(0.3), math.log(1.3)))
    m = x.mean((1, 2, 3), keepdim=True)
    x = (x - m) * u(0.7, 1.3).view(B, 1, 1, 1) + m
    cast = torch.empty(B, 3).uniform_(0.85, 1.15, generator=gen)
    x = x * gain.view(B, 1, 1, 1) * cast.view(B, 3, 1, 1)
    sigma = u(0.0, 0.03).view(B, 1, 1, 1) / gain.clamp(min=0.3).sqrt().view(B, 1, 1, 1)
    x = x + torch.randn(x.shape, generator=gen) * sigma * (0.3 + x.clamp(min=0).sqrt())
    x = (x.clamp(0, 1) * 255).round()
    if jpeg_p > 0:
        x = _jpeg(x, gen, jpeg_p)
    x = (x / 255.0 - torch.tensor(inp["mean"]).view(1, 3, 1, 1)) / torch.tensor(inp["std"]).view(1, 3, 1, 1)
    if erase_p > 0:
        x = _erase(x, gen, erase_p)
    return x, torch.zeros(B, dtype=torch.bool)


def _jpeg(x, gen, p):
    """JPEG-compresses a random share p of the images of x (float 0..255, (B,3,H,W))."""
    try:
        import io
        from PIL import Image
    except ImportError:
        return x
    pick = (torch.rand(len(x), generator=gen) < p).nonzero().flatten().tolist()
    qual = torch.randint(20, 81, (len(x),), generator=gen)
    for i in pick:
        im = Image.fromarray(x[i].permute(1, 2, 0).byte().numpy())
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=int(qual[i]))
        buf.seek(0)
        with Image.open(buf) as j:
            x[i] = torch.from_numpy(np.asarray(j.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1).float()
    return x


def _erase(x, gen, erase_p):
    """Random erasing (Zhong et al., 2020) on normalized (B,C,H,W): a rectangle of 2-25%
    of the image replaced by noise, with probability erase_p per image."""
    B, _, H, W = x.shape
    area = torch.empty(B).uniform_(0.02, 0.25, generator=gen) * H * W
    logr = torch.empty(B).uniform_(math.log(0.3), math.log(3.3), generator=gen)
    eh = (area * logr.exp()).sqrt().round().clamp(1, H - 1)
    ew = (area / logr.exp()).sqrt().round().clamp(1, W - 1)
    y0 = (torch.rand(B, generator=gen) * (H - eh + 1)).floor()
    x0 = (torch.rand(B, generator=gen) * (W - ew + 1)).floor()
    ar = torch.arange(H, dtype=torch.float32)
    ac = torch.arange(W, dtype=torch.float32)
    m = ((ar[None, :, None] >= y0[:, None, None]) & (ar[None, :, None] < (y0 + eh)[:, None, None])
         & (ac[None, None, :] >= x0[:, None, None]) & (ac[None, None, :] < (x0 + ew)[:, None, None]))
    m &= (torch.rand(B, generator=gen) < erase_p)[:, None, None]
    noise = torch.randn(x.shape, generator=gen)
    return torch.where(m[:, None], noise, x)


def balanced_order(y, n_classes, gen):
    """An epoch's sample order in which every class is drawn equally often: len(y) draws
    with replacement, each image weighted by 1 / (its class's count)."""
    counts = torch.bincount(y, minlength=n_classes).float()
    w = 1.0 / counts[y]
    return torch.multinomial(w, len(y), replacement=True, generator=gen)
