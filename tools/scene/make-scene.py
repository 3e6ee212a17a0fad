#!/usr/bin/python3
"""Renders a synthetic fixed camera looking at a house porch, in three states (door_closed,
door_open, parcel), with the nuisance a real camera sees, and encodes it as VP8 in Matroska.

The scene geometry is the same for every seed (one camera, one house); --seed picks the "day":
the lighting sequence (gain, contrast, white balance), sensor noise, blur, camera shake, the
tree shadow, passing cats and falling leaves, and the per-segment parcel placement and door
angle. With --state the whole clip shows that state; without it the state changes in segments
of 1-4 s. Clips rendered with the same seed, --seconds, --fps and --size but another --state
have the same nuisance frame by frame, so they differ only inside the region of interest.
Needs numpy and gst-launch-1.0 with vp8enc (gstreamer1.0-plugins-good); PIL only for the
captions of --preview and for --preview-colours.
"""
import argparse
import csv
import hashlib
import json
import os
import struct
import subprocess
import sys
import time
import zlib

import numpy as np

LABELS = ["door_closed", "door_open", "parcel"]
BASE_W, BASE_H = 320, 240
# Region of interest (door, its trim and the porch floor in front of it) in 320x240 units;
# scaled with --size. Kept square so a square model input wastes nothing.
ROI_BASE = (92, 50, 136, 136)
SCENE_SEED = 20261207          # texture of the house: the same for every --seed
PREVIEW_GAINS = (("dark", 0.3), ("normal", 0.8), ("bright", 1.3))
MIN_SIZE, MAX_SIZE = (64, 48), (1920, 1080)
# vp8enc: constrained quality at a middling quantizer: blocking and smeared noise are
# visible when zoomed in, the scene is not damaged (measured PSNR in docs/training.md).
VP8_SETTINGS = ["end-usage=cq", "cq-level=28", "min-quantizer=16", "max-quantizer=40",
                "deadline=1", "cpu-used=4", "threads=1"]
PROG = "make-scene.py"


class UsageError(Exception):
    pass


# ---- geometry -----------------------------------------------------------------------------

class Frame:
    """Pixel grid of one output size; shapes are given in 320x240 units and drawn with
    anti-aliased edges at any size. A margin of pad pixels on every side lets the camera
    shake move the image without reaching past the rendered scene."""

    def __init__(self, w, h):
        self.w, self.h = w, h
        self.sx, self.sy = w / BASE_W, h / BASE_H
        self.pix = min(self.sx, self.sy)        # pixels per base unit (for edge widths)
        self.pad = int(np.ceil(4 * max(self.sx, self.sy))) + 2
        self.H, self.W = h + 2 * self.pad, w + 2 * self.pad
        # base-unit coordinates of the pixel centres of the padded canvas
        self.u = ((np.arange(self.W) - self.pad + 0.5) / self.sx).astype(np.float32)
        self.v = ((np.arange(self.H) - self.pad + 0.5) / self.sy).astype(np.float32)

    def roi(self):
        x, y, w, h = ROI_BASE
        x0, y0 = round(x * self.sx), round(y * self.sy)
        return x0, y0, round((x + w) * self.sx) - x0, round((y + h) * self.sy) - y0

    def window(self, x0, y0, x1, y1):
        """Canvas slices and local coordinates covering the base-unit box (clipped)."""
        c0 = max(int(np.floor(x0 * self.sx)) + self.pad - 1, 0)
        c1 = min(int(np.ceil(x1 * self.sx)) + self.pad + 2, self.W)
        r0 = max(int(np.floor(y0 * self.sy)) + self.pad - 1, 0)
        r1 = min(int(np.ceil(y1 * self.sy)) + self.pad + 2, self.H)
        if c1 <= c0 or r1 <= r0:
            return None
        return (slice(r0, r1), slice(c0, c1)), self.u[c0:c1][None, :], self.v[r0:r1][:, None]


def edge(d, pix):
    """Coverage from a signed distance in base units (positive inside)."""
    return np.clip(d * pix + 0.5, 0.0, 1.0)


def rect_cov(fr, u, v, x0, y0, x1, y1):
    return edge(np.minimum(u - x0, x1 - u), fr.pix) * edge(np.minimum(v - y0, y1 - v), fr.pix)


def poly_cov(fr, u, v, pts):
    """Convex polygon, points in either winding order."""
    d = None
    n = len(pts)
    area = sum(pts[i][0] * pts[(i + 1) % n][1] - pts[(i + 1) % n][0] * pts[i][1] for i in range(n))
    sign = 1.0 if area < 0 else -1.0
    for i in range(n):
        (ax, ay), (bx, by) = pts[i], pts[(i + 1) % n]
        ex, ey = bx - ax, by - ay
        ln = np.hypot(ex, ey)
        di = sign * ((u - ax) * ey - (v - ay) * ex) / ln
        d = di if d is None else np.minimum(d, di)
    return edge(d, fr.pix)


def ellipse_cov(fr, u, v, cx, cy, a, b, angle=0.0):
    c, s = np.cos(angle), np.sin(angle)
    du, dv = u - cx, v - cy
    p, q = (du * c + dv * s) / a, (-du * s + dv * c) / b
    return edge((1.0 - np.sqrt(p * p + q * q)) * min(a, b), fr.pix)


def paint(img, sl, cov, colour):
    cov = cov[..., None]
    img[sl] += cov * (np.asarray(colour, np.float32) - img[sl])


def paint_full(img, fr, shape_fn, colour, box):
    w = fr.window(*box)
    if w is None:
        return
    sl, u, v = w
    paint(img, sl, shape_fn(u, v), colour)


def lowpass(rng, shape, sigma):
    """Periodic smooth noise with unit standard deviation (Gaussian filter in Fourier space)."""
    n = rng.standard_normal(shape)
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    g = np.exp(-2 * (np.pi * sigma) ** 2 * (fx * fx + fy * fy))
    out = np.fft.irfft2(np.fft.rfft2(n) * g, s=shape)
    return (out / (out.std() + 1e-9)).astype(np.float32)


# ---- the static scene -------------------------------------------------------------------------

DOOR = (138, 62, 182, 152)             # the door opening
TRIM = (131, 55, 189, 152)
FLOOR_Y, EDGE_Y, STEP_Y, GROUND_Y = 152, 204, 210, 226
PORCH_X = (40, 280)


def build_background(fr):
    """The house without the door leaf: brick wall, eave, window, trim, lamp, porch deck,
    step, lawn and a potted plant. Float32 RGB on the padded canvas."""
    rng = np.random.default_rng(SCENE_SEED)
    U, V = np.meshgrid(fr.u, fr.v)
    img = np.empty((fr.H, fr.W, 3), np.float32)
    fine = lowpass(rng, (fr.H, fr.W), 0.6 * fr.pix)

    # brick wall: 16x6 bricks in running bond, per-brick colour, mortar lines
    row = np.floor(V / 6.0).astype(np.int32)
    off = (row & 1) * 8.0
    col = np.floor((U + off) / 16.0).astype(np.int32)
    table = rng.uniform(0.0, 1.0, (64, 64, 2)).astype(np.float32)
    t = table[row % 64, col % 64]
    base = np.array([150, 78, 58], np.float32)
    brick = base * (0.82 + 0.3 * t[..., 0:1]) + np.array([12, 4, -2], np.float32) * (t[..., 1:2] - 0.5) * 2
    fy = V - row * 6.0
    fx = U + off - col * 16.0
    mortar = np.maximum(edge(1.0 - fy, fr.pix), edge(1.2 - fx, fr.pix))[..., None]
    img[:] = brick * (1 - mortar) + np.array([170, 165, 155], np.float32) * mortar
    img *= (1.0 + 0.07 * fine)[..., None]

    # eave and soffit at the top, with its soft shadow on the wall
    eave = edge(14.0 - V, fr.pix)[..., None]
    img[:] = img * (1 - eave) + np.array([58, 60, 66], np.float32) * eave
    soffit = (edge(V - 14.0, fr.pix) * edge(18.0 - V, fr.pix))[..., None]
    img[:] = img * (1 - soffit) + np.array([200, 198, 190], np.float32) * soffit
    img *= (1.0 - 0.35 * np.exp(-np.clip(V - 18.0, 0, None) / 14.0) * (V > 18))[..., None]

    # window left of the door: white frame, dark glass with a sky reflection, mullions, sill
    paint_full(img, fr, lambda u, v: rect_cov(fr, u, v, 26, 56, 86, 120), (225, 222, 212), (26, 56, 86, 124))
    w = fr.window(31, 61, 81, 115)
    sl, u, v = w
    glass = np.stack([40 + 40 * (1 - (v - 61) / 54) + 0 * u, 52 + 50 * (1 - (v - 61) / 54) + 0 * u,
                      64 + 60 * (1 - (v - 61) / 54) + 0 * u], -1)
    refl = np.clip(1 - np.abs((u - 40) - (v - 61) * 0.8) / 6.0, 0, 1)[..., None] * 45
    cov = rect_cov(fr, u, v, 31, 61, 81, 115)[..., None]
    img[sl] = img[sl] * (1 - cov) + (glass + refl) * cov
    paint_full(img, fr, lambda u, v: rect_cov(fr, u, v, 54.5, 61, 57.5, 115), (225, 222, 212), (54, 61, 58, 115))
    paint_full(img, fr, lambda u, v: rect_cov(fr, u, v, 31, 86.5, 81, 89.5), (225, 222, 212), (31, 86, 81, 90))
    paint_full(img, fr, lambda u, v: rect_cov(fr, u, v, 22, 120, 90, 125), (205, 200, 190), (22, 120, 90, 125))

    # door trim (the door opening itself is painted per state)
    paint_full(img, fr, lambda u, v: rect_cov(fr, u, v, *TRIM), (232, 230, 222), TRIM)
    paint_full(img, fr, lambda u, v: rect_cov(fr, u, v, TRIM[0], TRIM[1], TRIM[2], TRIM[1] + 2),
               (205, 203, 195), (TRIM[0], TRIM[1], TRIM[2], TRIM[1] + 2))
    # lamp right of the door and a house number plate left of it
    paint_full(img, fr, lambda u, v: rect_cov(fr, u, v, 198, 76, 206, 98), (30, 30, 32), (198, 76, 206, 98))
    paint_full(img, fr, lambda u, v: rect_cov(fr, u, v, 199.5, 80, 204.5, 93), (235, 205, 140), (199, 80, 205, 93))
    paint_full(img, fr, lambda u, v: rect_cov(fr, u, v, 112, 84, 124, 92), (220, 215, 200), (112, 84, 124, 92))
    for x in (114, 117.5, 121):
        paint_full(img, fr, lambda u, v, x=x: rect_cov(fr, u, v, x, 85.5, x + 1.6, 90.5), (40, 40, 45),
                   (x, 85, x + 2, 91))

    # porch deck: planks parallel to the wall, wider towards the camera, with wood grain
    depth = np.clip((V - FLOOR_Y) / (EDGE_Y - FLOOR_Y), 0, 1)
    k = (depth ** 0.8) * 9.0                      # plank index, 9 planks
    pk = np.floor(k)
    seam = edge(0.09 - (k - pk), fr.pix * 6)[..., None]
    ptab = rng.uniform(0.85, 1.12, 16).astype(np.float32)
    shade = ptab[pk.astype(np.int32) % 16][..., None]
    grain = (np.sin(U * 0.9 + 3.0 * np.sin(U * 0.05 + pk * 1.7) + pk * 2.3) * 0.04
             + 0.05 * fine)[..., None]
    wood = np.array([86, 80, 76], np.float32) * shade * (1 + grain) * (0.9 + 0.15 * depth[..., None])
    wood = wood * (1 - seam) + np.array([45, 34, 28], np.float32) * seam
    dcov = (edge(np.minimum(V - FLOOR_Y, EDGE_Y - V), fr.pix) *
            edge(np.minimum(U - PORCH_X[0], PORCH_X[1] - U), fr.pix))[..., None]

    # lawn and path outside the porch (below the wall line)
    lawn_n = lowpass(rng, (fr.H, fr.W), 1.2 * fr.pix)
    lawn = np.stack([60 + 12 * lawn_n, 105 + 22 * lawn_n, 45 + 8 * lawn_n], -1)
    below = edge(V - FLOOR_Y, fr.pix)[..., None]
    img[:] = img * (1 - below) + lawn * below
    img[:] = img * (1 - dcov) + wood * dcov
    # porch edge board, concrete step, path
    paint_full(img, fr, lambda u, v: rect_cov(fr, u, v, PORCH_X[0], EDGE_Y, PORCH_X[1], STEP_Y),
               (88, 64, 48), (PORCH_X[0], EDGE_Y, PORCH_X[1], STEP_Y))
    w = fr.window(110, STEP_Y, 210, GROUND_Y)
    sl, u, v = w
    conc = (np.array([150, 148, 142], np.float32) * (1 + 0.06 * fine[sl])[..., None])
    cov = rect_cov(fr, u, v, 110, STEP_Y, 210, GROUND_Y)[..., None]
    img[sl] = img[sl] * (1 - cov) + conc * cov
    w = fr.window(100, GROUND_Y, 220, 260)
    sl, u, v = w
    cov = poly_cov(fr, u, v, [(116, GROUND_Y), (204, GROUND_Y), (222, 262), (98, 262)])[..., None]
    path = np.array([128, 122, 112], np.float32) * (1 + 0.08 * fine[sl])[..., None]
    img[sl] = img[sl] * (1 - cov) + path * cov
    # step shadow line under the porch edge
    img *= (1 - 0.3 * edge(1.5 - np.abs(V - STEP_Y - 1), fr.pix) * (U > 110) * (U < 210))[..., None]

    # shadow where the wall meets the deck, and a doormat in front of the door
    img *= (1 - 0.25 * np.exp(-np.clip(V - FLOOR_Y, 0, None) / 3.0) * (V > FLOOR_Y) * dcov[..., 0])[..., None]
    w = fr.window(141, 153, 179, 160)
    sl, u, v = w
    mat = np.array([70, 58, 42], np.float32) * (1 + 0.15 * fine[sl] + 0.06 * np.sin(u * 3.0))[..., None]
    cov = rect_cov(fr, u, v, 141, 153.5, 179, 159.5)[..., None]
    img[sl] = img[sl] * (1 - cov) + mat * cov

    # potted plant on the porch, right (outside the region of interest)
    paint_full(img, fr, lambda u, v: poly_cov(fr, u, v, [(236, 142), (258, 142), (255, 168), (239, 168)]),
               (165, 82, 52), (236, 142, 258, 168))
    w = fr.window(226, 104, 268, 146)
    sl, u, v = w
    leafy = lowpass(rng, (fr.H, fr.W), 1.0 * fr.pix)[sl]
    cov = ellipse_cov(fr, u, v, 247, 126, 19, 18) * np.clip(0.8 + 0.5 * leafy, 0, 1)
    green = np.stack([40 + 15 * leafy, 90 + 30 * leafy, 35 + 10 * leafy], -1)
    img[sl] = img[sl] * (1 - cov[..., None]) + green * cov[..., None]
    return img


def paint_closed(img, fr):
    """Sage-green door with four raised panels, a brass knob and kick plate."""
    x0, y0, x1, y1 = DOOR
    w = fr.window(*DOOR)
    sl, u, v = w
    door = np.array([96, 134, 112], np.float32)
    grain = 1 + 0.03 * np.sin(v * 1.3 + 2 * np.sin(u * 0.4))
    col = door * grain[..., None] * (1 + 0.06 * (v - y0) / (y1 - y0))[..., None]
    cov = rect_cov(fr, u, v, *DOOR)[..., None]
    img[sl] = img[sl] * (1 - cov) + col * cov
    for px0, px1 in ((142, 157), (163, 178)):
        for py0, py1 in ((67, 102), (110, 144)):
            # bevel: dark on the top/left inner edge (shadowed), light on the bottom/right
            paint(img, sl, rect_cov(fr, u, v, px0, py0, px1, py1), door * 0.72)
            paint(img, sl, rect_cov(fr, u, v, px0 + 1.2, py0 + 1.2, px1, py1), door * 1.18)
            paint(img, sl, rect_cov(fr, u, v, px0 + 1.2, py0 + 1.2, px1 - 1.2, py1 - 1.2), door * 1.02)
    paint(img, sl, ellipse_cov(fr, u, v, 176.5, 106, 2.3, 2.3), (205, 170, 80))
    paint(img, sl, ellipse_cov(fr, u, v, 176.0, 105.4, 1.0, 1.0), (250, 230, 160))
    paint(img, sl, rect_cov(fr, u, v, x0 + 1, 146, x1 - 1, y1), (170, 140, 70))
    paint(img, sl, rect_cov(fr, u, v, x0, y0, x0 + 0.8, y1), door * 0.5)   # hinge-side gap
    paint(img, sl, rect_cov(fr, u, v, x1 - 0.8, y0, x1, y1), door * 0.5)


def paint_open(img, fr, angle):
    """Dark hallway through the doorway; the leaf swung inwards on its left hinges by angle
    (radians from closed), seen as a narrower, slightly shorter quadrilateral."""
    x0, y0, x1, y1 = DOOR
    w = fr.window(*DOOR)
    sl, u, v = w
    depthv = (v - y0) / (y1 - y0)
    hall = np.stack([14 + 10 * depthv + 0 * u, 12 + 8 * depthv + 0 * u, 11 + 6 * depthv + 0 * u], -1)
    cov = rect_cov(fr, u, v, *DOOR)[..., None]
    img[sl] = img[sl] * (1 - cov) + hall * cov
    # hallway floor and a dim lit doorway at the far end
    paint(img, sl, poly_cov(fr, u, v, [(x0, y1), (148, 128), (172, 128), (x1, y1)]), (52, 40, 31))
    paint(img, sl, rect_cov(fr, u, v, 152, 90, 166, 128), (44, 42, 38))
    paint(img, sl, rect_cov(fr, u, v, x0, y1 - 1.2, x1, y1), (120, 110, 90))          # threshold
    wl = (x1 - x0) * np.cos(angle)
    shrink = 0.10 * np.sin(angle) * (y1 - y0)
    fx = x0 + wl
    leaf = [(x0, y0), (fx, y0 + shrink * 0.6), (fx, y1 - shrink * 0.4), (x0, y1)]
    lit = 0.45 + 0.25 * np.cos(angle)
    inner = np.array([150, 152, 145], np.float32) * lit
    if wl > 0.6:
        paint(img, sl, poly_cov(fr, u, v, leaf), inner)
        paint(img, sl, poly_cov(fr, u, v, [(fx - 0.6, y0 + shrink * 0.6), (fx + 2.2 * np.sin(angle), y0 + shrink * 0.6),
                                           (fx + 2.2 * np.sin(angle), y1 - shrink * 0.4), (fx - 0.6, y1 - shrink * 0.4)]),
              np.array([96, 134, 112], np.float32) * 0.75)
        # knob on the inner side
        paint(img, sl, ellipse_cov(fr, u, v, x0 + wl * 0.85, 106, 1.8, 2.0), (140, 118, 60))


def paint_parcel(img, fr, p):
    """Cardboard box standing on the deck in front of the door, its contact shadow first."""
    s, cx, by = p["size"], 157 + p["dx"], 177 + p["dy"]
    w2, h, dep, side = 20 * s * p["aspect"], 23 * s, 8 * s, 5 * s
    xl, xr, yt = cx - w2, cx + w2, by - h
    col = np.array(p["colour"], np.float32)
    win = fr.window(xl - 4, yt - dep - 2, xr + side + 4, by + 5)
    sl, u, v = win
    sh = ellipse_cov(fr, u, v, cx + side * 0.6, by + 0.8, w2 + side + 3, 3.2)
    img[sl] *= (1 - 0.45 * sh)[..., None]
    paint(img, sl, poly_cov(fr, u, v, [(xl, yt), (xl + side, yt - dep), (xr + side, yt - dep), (xr, yt)]), col * 1.15)
    paint(img, sl, poly_cov(fr, u, v, [(xr, yt), (xr + side, yt - dep), (xr + side, by - dep), (xr, by)]), col * 0.72)
    paint(img, sl, rect_cov(fr, u, v, xl, yt, xr, by), col)
    if p["tape"]:
        tw = 2.6 * s
        tape = col * np.array([1.22, 1.18, 1.1], np.float32)
        paint(img, sl, rect_cov(fr, u, v, cx - tw, yt, cx + tw, yt + 5 * s), tape)
        paint(img, sl, poly_cov(fr, u, v, [(cx - tw, yt), (cx - tw + side, yt - dep),
                                           (cx + tw + side, yt - dep), (cx + tw, yt)]), tape * 1.1)
    if p["label"]:
        lx = xl + 3 * s
        paint(img, sl, rect_cov(fr, u, v, lx, yt + 6 * s, lx + 9 * s, yt + 13 * s), (228, 226, 218))
        for i in range(4):
            bx = lx + (1.5 + 1.7 * i) * s
            paint(img, sl, rect_cov(fr, u, v, bx, yt + 9 * s, bx + 0.8 * s, yt + 12 * s), (40, 40, 40))
    # box edges
    paint(img, sl, rect_cov(fr, u, v, xl, yt - 0.3, xr, yt + 0.5), col * 1.3)


def compose(bg, fr, label, variant):
    img = bg.copy()
    if label == 1:
        paint_open(img, fr, variant["door_angle"])
    else:
        paint_closed(img, fr)
    if label == 2:
        paint_parcel(img, fr, variant["parcel"])
    return img


# ---- nuisance --------------------------------------------------------------------------------

def track(rng, n, spacing, draw, force=None):
    """Per-frame values following smooth (smoothstep) transitions between random knots
    about spacing frames apart. force: list of draws for randomly chosen knots inside [0, n)."""
    times = [0.0]
    while times[-1] < n + spacing:
        times.append(times[-1] + spacing * rng.uniform(0.6, 1.4))
    times = np.array(times)
    vals = np.array([draw() for _ in times], dtype=np.float64)
    if force:
        inside = np.flatnonzero(times < n - 1)
        pick = rng.choice(inside, size=min(len(force), len(inside)), replace=False)
        for i, f in zip(pick, force):
            vals[i] = f()
    t = np.arange(n, dtype=np.float64)
    i = np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 2)
    a = (t - times[i]) / (times[i + 1] - times[i])
    a = a * a * (3 - 2 * a)
    return vals[i] + (vals[i + 1] - vals[i]) * a


def segments_for(rng, frames, fps):
    lens, total = [], 0
    while total < frames:
        n = int(rng.integers(fps, 4 * fps + 1))
        n = min(n, frames - total)
        lens.append(n)
        total += n
    return lens


def states_for(rng, lens, fps):
    """Mixed clip: the state changes at every segment; greedy choice that prefers a transition
    not seen yet and the state with the fewest frames so far, with some randomness."""
    seen, frames = set(), np.zeros(3)
    cur = int(rng.integers(3))
    out = [cur]
    frames[cur] += lens[0]
    for n in lens[1:]:
        best, best_score = None, None
        for s in range(3):
            if s == cur:
                continue
            score = (3.0 if (cur, s) not in seen else 0.0) - frames[s] / (2.0 * fps) + rng.uniform(0, 1.5)
            if best_score is None or score > best_score:
                best, best_score = s, score
        seen.add((cur, best))
        cur = best
        out.append(cur)
        frames[cur] += n
    return out


def variants_for(rng, count):
    out = []
    for _ in range(count):
        shade = rng.uniform(0.78, 1.1)
        red = rng.uniform(-0.06, 0.06)
        out.append({
            "door_angle": float(np.radians(rng.uniform(45, 85))),
            "parcel": {"dx": float(rng.uniform(-5, 5)), "dy": float(rng.uniform(-3, 3)),
                       "size": float(rng.uniform(0.85, 1.15)), "aspect": float(rng.uniform(0.85, 1.1)),
                       "colour": [float(196 * shade * (1 + red)), float(148 * shade),
                                  float(98 * shade * (1 - red))],
                       "tape": bool(rng.uniform() < 0.7), "label": bool(rng.uniform() < 0.5)},
        })
    return out


class Day:
    """Every per-frame nuisance parameter of one clip, from one seed, independent of the
    states shown (so renders of different states with one seed line up frame by frame)."""

    def __init__(self, fr, seed, n, fps, lens):
        ss = np.random.SeedSequence([seed, 0x5CE9E])
        (r_light, r_cast, r_cam, r_noise, r_shadow, r_cat, r_leaf, self.r_var) = \
            [np.random.default_rng(s) for s in ss.spawn(8)]
        self.n, self.fps = n, fps
        sp = max(min(fps * r_light.uniform(2.5, 6.0), n / 3.0), 1.0)
        lg = np.log
        self.gain = np.exp(track(r_light, n, sp, lambda: r_light.uniform(lg(0.3), lg(1.3)),
                                 force=[lambda: r_light.uniform(lg(0.3), lg(0.38)),
                                        lambda: r_light.uniform(lg(1.1), lg(1.3))]))
        self.contrast = track(r_light, n, sp * 1.3, lambda: r_light.uniform(0.75, 1.2))
        # white balance: one target per segment, the camera adapts over ~0.5 s
        target = np.empty((n, 3))
        f = 0
        for ln in lens:
            temp, tint = r_cast.uniform(-1, 1), r_cast.uniform(-1, 1)
            target[f:f + ln] = (1 + 0.22 * temp, 1 + 0.07 * tint, 1 - 0.22 * temp)
            f += ln
        self.cast = np.empty_like(target)
        k = 1.0 - np.exp(-1.0 / max(0.15 * fps, 0.5))
        c = target[0].copy()
        for i in range(n):
            c += k * (target[i] - c)
            self.cast[i] = c
        self.cast /= (self.cast @ np.array([0.299, 0.587, 0.114]))[:, None]
        # camera: shake amplitude (px at 320x240) in calm and windy spells, slow zoom breathing
        amp = track(r_cam, n, fps * 4, lambda: r_cam.choice([0.3, 1.0, 2.2, 3.0]))
        jx = track(r_cam, n, max(fps * 0.25, 1), lambda: r_cam.uniform(-1, 1))
        jy = track(r_cam, n, max(fps * 0.25, 1), lambda: r_cam.uniform(-1, 1))
        self.dx = np.clip(amp * jx + 0.12 * r_cam.standard_normal(n), -3, 3) * fr.sx
        self.dy = np.clip(amp * jy * 0.7 + 0.12 * r_cam.standard_normal(n), -3, 3) * fr.sy
        self.scale = 1 + track(r_cam, n, fps * 3, lambda: r_cam.uniform(-0.012, 0.012))
        self.blur = np.clip(track(r_cam, n, fps * 3,
                                  lambda: r_cam.uniform(0.4, 1.0) if r_cam.uniform() < 0.3 else 0.0), 0, 1)
        # sensor noise
        self.noise_level = r_noise.uniform(0.7, 1.3)
        self.noise_pick = r_noise.integers(0, 1 << 30, size=(n, 4))
        self.r_noise = r_noise
        # tree shadow: strength this day, weaker when clouds dim the light
        sunny = r_shadow.uniform() > 0.25
        s_day = r_shadow.uniform(0.3, 0.55) if sunny else r_shadow.uniform(0.05, 0.15)
        self.shadow = s_day * np.clip((self.gain - 0.35) / 0.6, 0.15, 1.0)
        t = np.arange(n) / fps
        v = r_shadow.uniform(2, 8) * r_shadow.choice([-1, 1])
        sway, per = r_shadow.uniform(3, 10), r_shadow.uniform(3, 8)
        self.sh_x = r_shadow.uniform(0, 1e4) + v * t + sway * np.sin(2 * np.pi * t / per)
        self.sh_y = r_shadow.uniform(0, 1e4) + 0.4 * sway * np.sin(2 * np.pi * t / per + 1.0)
        self.r_shadow = r_shadow
        # passing cats and falling leaves
        self.sprites = [[] for _ in range(n)]
        seconds = n / fps
        for _ in range(r_cat.poisson(max(seconds / 40.0, 0.0)) + (1 if r_cat.uniform() < min(seconds / 40, 1) else 0)):
            dur = r_cat.uniform(3, 8) * fps
            start = r_cat.uniform(-dur * 0.3, n)
            d = r_cat.choice([-1, 1])
            feet = r_cat.uniform(182, 187) if r_cat.uniform() < 0.3 else r_cat.uniform(196, 232)
            size, colour = r_cat.uniform(0.8, 1.2), [(30, 30, 32), (110, 108, 104), (190, 120, 60),
                                                     (215, 210, 200)][r_cat.integers(4)]
            x_a, x_b = (-20, 340) if d > 0 else (340, -20)
            for f in range(max(int(start), 0), min(int(start + dur) + 1, n)):
                a = (f - start) / dur
                self.sprites[f].append(("cat", x_a + (x_b - x_a) * a, feet, size, d, f * 2.2 / max(fps / 10, 0.1), colour))
        for _ in range(r_leaf.poisson(seconds / 10.0)):
            dur = r_leaf.uniform(1.5, 4) * fps
            start = r_leaf.uniform(-dur * 0.3, n)
            x0, vx = r_leaf.uniform(0, 320), r_leaf.uniform(-25, 25)
            amp_l, w = r_leaf.uniform(4, 15), r_leaf.uniform(2, 5)
            colour = [(200, 110, 40), (170, 80, 30), (210, 170, 60), (120, 80, 40)][r_leaf.integers(4)]
            for f in range(max(int(start), 0), min(int(start + dur) + 1, n)):
                tt = (f - start) / fps
                y = -5 + (250 / (dur / fps)) * tt
                x = x0 + vx * tt + amp_l * np.sin(w * tt)
                self.sprites[f].append(("leaf", x, y, w * tt, colour))


def draw_sprite(img, fr, sp):
    if sp[0] == "leaf":
        _, x, y, ang, colour = sp
        win = fr.window(x - 5, y - 5, x + 5, y + 5)
        if win is None:
            return
        sl, u, v = win
        paint(img, sl, ellipse_cov(fr, u, v, x, y, 3.2, 1.6 + 0.6 * np.cos(ang), ang), colour)
        return
    _, x, feet, s, d, phase, colour = sp
    win = fr.window(x - 20 * s, feet - 22 * s, x + 20 * s, feet + 1)
    if win is None:
        return
    sl, u, v = win
    col = np.array(colour, np.float32)
    body_y = feet - 8 * s
    for i, lx in enumerate((-7, -4, 5, 8)):
        swing = 1.6 * s * np.sin(phase + (i % 2) * np.pi)
        lx = x + d * lx * s + swing
        paint(img, sl, rect_cov(fr, u, v, lx - 1.0 * s, body_y, lx + 1.0 * s, feet), col * 0.85)
    paint(img, sl, ellipse_cov(fr, u, v, x - d * 14 * s, body_y - 5 * s, 1.4 * s, 7 * s, -d * 0.5), col * 0.9)
    paint(img, sl, ellipse_cov(fr, u, v, x, body_y, 11 * s, 4.8 * s), col)
    hx, hy = x + d * 11 * s, body_y - 5 * s
    paint(img, sl, ellipse_cov(fr, u, v, hx, hy, 4.2 * s, 3.8 * s), col)
    for ex in (-2.2, 1.8):
        paint(img, sl, poly_cov(fr, u, v, [(hx + (ex - 1.2) * s, hy - 2 * s), (hx + ex * s, hy - 6.5 * s),
                                           (hx + (ex + 1.2) * s, hy - 2 * s)]), col)
    paint(img, sl, ellipse_cov(fr, u, v, hx + d * 1.8 * s, hy - 0.8 * s, 0.8 * s, 0.8 * s), (150, 170, 60))


# ---- one frame -----------------------------------------------------------------------------

class Renderer:
    def __init__(self, fr, seed):
        self.fr = fr
        self.bg = build_background(fr)
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))
        m = 8
        self.nm = m
        self.pool = rng.standard_normal((4, fr.h + 2 * m, fr.w + 2 * m, 3), dtype=np.float32)
        # tree shadow texture, periodic, stored twice in both directions for wrap-free slices
        th, tw = int(256 * fr.sy), int(512 * fr.sx)
        leaves = lowpass(rng, (th, tw), 3.0 * fr.pix)
        clumps = lowpass(rng, (th, tw), 22 * fr.pix)
        tex = (np.clip((leaves - 0.1) * 1.6, 0, 1) * np.clip((clumps + 0.2) * 1.5, 0, 1)).astype(np.float32)
        self.tex_h, self.tex_w = th, tw
        self.tex = np.repeat(np.tile(tex, (3, 2))[..., None], 3, axis=2)
        self.rows = np.arange(fr.h, dtype=np.float32)
        self.cols = np.arange(fr.w, dtype=np.float32)
        self.rgb = np.arange(3, dtype=np.intp)[None, :]
        self._buffers()

    def _buffers(self):
        """Every per-frame array, allocated once: fresh arrays of this size cost page
        faults on every frame and halve the speed."""
        fr = self.fr
        f32 = np.float32
        self.b_canvas = np.empty((fr.H, fr.W, 3), f32)
        self.b_r0 = np.empty((fr.h, fr.W, 3), f32)
        self.b_r1 = np.empty((fr.h, fr.W, 3), f32)
        self.b_x = np.empty((fr.h, fr.w, 3), f32)
        self.b_t = np.empty((fr.h, fr.w, 3), f32)
        self.b_u = np.empty((fr.h, fr.w, 3), f32)
        self.b_out = np.empty((fr.h, fr.w, 3), np.uint8)

    def shaded(self, layer, ox, oy, strength):
        """layer under the tree shadow (the texture slid to ox, oy), into b_canvas. The
        texture is stored per channel: numpy broadcasting over a last axis of 3 is slow."""
        fr = self.fr
        ox = int(np.floor(ox)) % self.tex_w
        oy = int(np.floor(oy)) % self.tex_h
        c = self.b_canvas
        np.multiply(layer, self.tex[oy:oy + fr.H, ox:ox + fr.W], out=c)
        c *= np.float32(-strength)
        c += layer
        return c

    def warp(self, img, dx, dy, scale):
        """Camera shake: separable bilinear resampling of the padded canvas (shift + scale
        about the centre) down to the output size, into b_x."""
        fr = self.fr
        cy, cx = (fr.h - 1) / 2.0, (fr.w - 1) / 2.0
        sy = cy + (self.rows - cy) / scale - dy + fr.pad
        sx = cx + (self.cols - cx) / scale - dx + fr.pad
        y0 = np.floor(sy).astype(np.intp)
        x0 = np.floor(sx).astype(np.intp)
        wy = (sy - y0).astype(np.float32)[:, None, None]
        # columns on the (rows, W*3) view, one index per value: long inner loops
        xi = (x0[:, None] * 3 + self.rgb).ravel()
        wx = np.repeat((sx - x0).astype(np.float32), 3)
        r0, r1 = self.b_r0, self.b_r1
        np.take(img, y0, axis=0, out=r0)
        np.take(img, y0 + 1, axis=0, out=r1)
        r1 -= r0
        r1 *= wy
        r0 += r1
        r2 = r0.reshape(fr.h, fr.W * 3)
        x, t = self.b_x.reshape(fr.h, fr.w * 3), self.b_t.reshape(fr.h, fr.w * 3)
        np.take(r2, xi, axis=1, out=x)
        np.take(r2, xi + 3, axis=1, out=t)
        t -= x
        t *= wx
        x += t
        return self.b_x

    def frame(self, layer, day, i):
        """Frame i of the day over the composed scene layer: uint8 RGB (a reused buffer)."""
        fr = self.fr
        c = self.shaded(layer, day.sh_x[i], day.sh_y[i], day.shadow[i])
        for sp in day.sprites[i]:
            draw_sprite(c, fr, sp)
        x = self.warp(c, day.dx[i], day.dy[i], day.scale[i])
        b = day.blur[i]
        t, u = self.b_t, self.b_u
        if b > 0.05:
            # 3x3 binomial blur, blended in by b (edges left sharp)
            np.copyto(t, x)
            np.add(x[:-2], x[2:], out=u[1:-1])
            u[1:-1] *= np.float32(0.5)
            t[1:-1] += u[1:-1]
            t[1:-1] *= np.float32(0.5)
            np.copyto(u, t)
            np.add(t[:, :-2], t[:, 2:], out=u[:, 1:-1])
            u[:, 1:-1] *= np.float32(0.5)
            u[:, 1:-1] += t[:, 1:-1]
            u[:, 1:-1] *= np.float32(0.5)
            u -= x
            u *= np.float32(b)
            x += u
        g, con = day.gain[i], day.contrast[i]
        cast = day.cast[i]
        pivot = 110.0
        x2 = x.reshape(fr.h, fr.w * 3)
        x2 *= np.tile((g * con * cast).astype(np.float32), fr.w)
        x2 += np.tile((g * cast * pivot * (1 - con) + 0.5).astype(np.float32), fr.w)  # + 0.5: rounding
        # noise: read noise plus shot noise, amplified when the camera raises its gain in the dark
        amp = day.noise_level * (1.0 / g) ** 0.5
        k, oy, ox, _ = day.noise_pick[i]
        m = self.nm
        oy, ox = oy % (2 * m), ox % (2 * m)
        nz = self.pool[k % len(self.pool), oy:oy + fr.h, ox:ox + fr.w]
        np.maximum(x, np.float32(0), out=t)
        np.sqrt(t, out=t)
        t *= np.float32(0.22 * amp)
        t += np.float32(1.6 * amp)
        t *= nz
        x += t
        np.maximum(x, np.float32(0), out=x)
        np.minimum(x, np.float32(255), out=x)
        np.copyto(self.b_out, x, casting="unsafe")
        return self.b_out


# ---- output --------------------------------------------------------------------------------

def write_png(path, rgb):
    """Minimal PNG writer (RGB8, zlib), so PIL is not needed for frames."""
    h, w, _ = rgb.shape
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rgb.reshape(h, w * 3)], axis=1).tobytes()

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))
    with open(path, "wb") as f:
        f.write(png)


def parse_size(s):
    try:
        w, h = (int(v) for v in s.lower().split("x"))
    except ValueError:
        raise UsageError(f"bad --size '{s}': expected WxH, e.g. 320x240")
    if not (MIN_SIZE[0] <= w <= MAX_SIZE[0] and MIN_SIZE[1] <= h <= MAX_SIZE[1]) or w % 2 or h % 2:
        raise UsageError(f"bad --size '{s}': W and H must be even, from {MIN_SIZE[0]}x{MIN_SIZE[1]} "
                         f"to {MAX_SIZE[0]}x{MAX_SIZE[1]}")
    return w, h


def check_dir(d):
    try:
        os.makedirs(d, exist_ok=True)
        probe = os.path.join(d, f".make-scene-probe.{os.getpid()}")
        with open(probe, "w"):
            pass
        os.unlink(probe)
    except OSError as e:
        raise UsageError(f"cannot write to --out directory '{d}': {e.strerror}")


def encoder(path, w, h, fps):
    cmd = ["gst-launch-1.0", "-q", "fdsrc", "fd=0", "!", "rawvideoparse", "format=rgb",
           f"width={w}", f"height={h}", f"framerate={fps}/1", "!", "videoconvert", "!",
           "video/x-raw,format=I420", "!", "vp8enc", *VP8_SETTINGS,
           f"keyframe-max-dist={5 * fps}", "!", "matroskamux", "!", "filesink", "location=" + path]
    try:
        return subprocess.Popen(cmd, stdin=subprocess.PIPE)
    except FileNotFoundError:
        raise UsageError("gst-launch-1.0 not found (install gstreamer1.0-tools and gstreamer1.0-plugins-good)")


def preview(path, fr, seed, colours=0):
    """3x3 contact sheet: columns are the states, rows dark / normal / bright; one nuisance
    (noise, shadow, shake) for all nine, the region of interest outlined in the middle row."""
    rnd = Renderer(fr, seed)
    day = Day(fr, seed, 1, 10, [1])
    day.sprites = [[]]
    day.dx[:], day.dy[:], day.scale[:], day.blur[:], day.contrast[:] = 0.6, -0.4, 1.0, 0.0, 1.0
    day.cast[:] = 1.0
    variant = variants_for(np.random.default_rng(seed), 1)[0]
    variant["door_angle"] = float(np.radians(60))
    gap, top, left = 4, 16, 52
    W = left + 3 * fr.w + 2 * gap
    H = top + 3 * fr.h + 2 * gap
    sheet = np.full((H, W, 3), 40, np.uint8)
    rx, ry, rw, rh = fr.roi()
    for r, (name, g) in enumerate(PREVIEW_GAINS):
        day.gain[:] = g
        day.shadow[:] = 0.45 * np.clip((g - 0.35) / 0.6, 0.15, 1.0)
        for c in range(3):
            img = rnd.frame(compose(rnd.bg, fr, c, variant), day, 0)
            if r == 1:
                img = img.copy()
                for yy in (ry, ry + rh - 1):
                    img[yy, rx:rx + rw] = (255, 230, 0)
                for xx in (rx, rx + rw - 1):
                    img[ry:ry + rh, xx] = (255, 230, 0)
            y0, x0 = top + r * (fr.h + gap), left + c * (fr.w + gap)
            sheet[y0:y0 + fr.h, x0:x0 + fr.w] = img
    try:
        from PIL import Image, ImageDraw
        im = Image.fromarray(sheet)
        dr = ImageDraw.Draw(im)
        for c, lab in enumerate(LABELS):
            dr.text((left + c * (fr.w + gap) + 4, 2), f"{c} {lab}", fill=(230, 230, 230))
        for r, (name, g) in enumerate(PREVIEW_GAINS):
            dr.text((4, top + r * (fr.h + gap) + fr.h // 2 - 10), f"{name}\ngain\n{g}", fill=(230, 230, 230))
        if colours:
            # a palette PNG: noise makes a full-colour sheet large, this is for docs
            im = im.quantize(colors=colours, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
        im.save(path, optimize=True)
    except ImportError:
        if colours:
            raise UsageError("--preview-colours needs PIL (python3-pil)")
        write_png(path, sheet)


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description=__doc__,
        epilog=f"""outputs in --out DIR (NAME from --name):
  NAME.mkv         VP8 in Matroska, or --raw instead; vp8enc {' '.join(VP8_SETTINGS[:4])}
  NAME.truth.csv   first_frame,last_frame,label_index,label_name for every frame
  NAME.scene.json  size, fps, seed, labels, the region of interest, the SHA-256 of the
                   rendered (pre-encoding) frames and every segment's parameters
  frames/LABEL/NNNNNN.png   with --png-every K: every K-th rendered frame, lossless

region of interest: {ROI_BASE[0]},{ROI_BASE[1]},{ROI_BASE[2]},{ROI_BASE[3]} at 320x240, scaled with --size
  (the door, its trim and the porch floor in front of it); --print-roi prints it as X,Y,W,H
  for 'basisnet grab --crop X,Y,W,H' and the daemon's source.crop.

examples:
  {PROG} --out scene/train --state parcel --seed 1          # scene/train/parcel.mkv
  {PROG} --out scene/test --seed 99 --seconds 120           # mixed clip scene/test/scene.mkv
  {PROG} --preview porch.png                               # 3x3 contact sheet
  {PROG} --print-roi --size 640x480

exit status: 0 done, 1 rendering or encoding failed, 2 bad arguments""")
    ap.add_argument("--out", metavar="DIR", help="output directory (created if missing)")
    ap.add_argument("--state", metavar="NAME", help="render only this state: " + ", ".join(LABELS)
                    + " (default: a mixed clip, the state changing in segments of 1-4 s)")
    ap.add_argument("--seed", type=int, default=1, help="the day: lighting, noise, shake, distractors, "
                    "parcel placement and door angles (default 1); the geometry never changes")
    ap.add_argument("--seconds", type=float, default=60.0, help="clip length (default 60; a mixed "
                    "clip needs at least 28, so that every transition fits)")
    ap.add_argument("--fps", type=int, default=10, help="frame rate, 1-60 (default 10)")
    ap.add_argument("--size", default="320x240", metavar="WxH",
                    help="frame size, even, 64x48 to 1920x1080 (default 320x240); the scene scales with it")
    ap.add_argument("--name", help="file name stem (default: the state, or 'scene' for a mixed clip)")
    ap.add_argument("--png-every", type=int, default=0, metavar="K",
                    help="also write every K-th rendered frame to DIR/frames/LABEL/NNNNNN.png "
                    "(NNNNNN: the frame number)")
    ap.add_argument("--raw", metavar="FILE", help="write the rendered frames as raw RGB24 to FILE "
                    "('-' for stdout) instead of encoding NAME.mkv")
    ap.add_argument("--preview", metavar="FILE.png", help="write a 3x3 contact sheet (states x dark/"
                    "normal/bright) and exit, unless --out is given too")
    ap.add_argument("--preview-colours", type=int, default=0, metavar="N",
                    help="write the preview as a palette PNG of N colours, 2-256 (needs PIL; "
                    "default 0: full colour)")
    ap.add_argument("--print-roi", action="store_true", help="print the region of interest X,Y,W,H "
                    "for --size and exit")
    ap.add_argument("--quiet", action="store_true", help="no progress on stderr")
    try:
        args = ap.parse_args(argv)
        w, h = parse_size(args.size)
        fr = Frame(w, h)
        if args.print_roi:
            print("%d,%d,%d,%d" % fr.roi())
            return 0
        state = None
        if args.state is not None:
            if args.state not in LABELS:
                raise UsageError(f"unknown state '{args.state}' (valid: {', '.join(LABELS)})")
            state = LABELS.index(args.state)
        if not 1 <= args.fps <= 60:
            raise UsageError(f"bad --fps {args.fps}: 1 to 60")
        if not 0 < args.seconds <= 24 * 3600:
            raise UsageError(f"bad --seconds {args.seconds}: more than 0, at most 86400")
        if args.png_every < 0:
            raise UsageError("bad --png-every: 0 (none) or more")
        n = int(round(args.seconds * args.fps))
        if n < 1:
            raise UsageError("--seconds x --fps gives no frame")
        if state is None and n < 7 * 4 * args.fps and args.out:
            raise UsageError(f"a mixed clip needs at least 28 s (every transition between the 3 states, "
                             f"segments up to 4 s); got {args.seconds:g} s (or use --state)")
        if args.out:
            check_dir(args.out)
        if args.preview:
            pdir = os.path.dirname(os.path.abspath(args.preview))
            if not os.access(pdir, os.W_OK):
                raise UsageError(f"cannot write the preview into '{pdir}'")
            if args.preview_colours and not 2 <= args.preview_colours <= 256:
                raise UsageError(f"bad --preview-colours {args.preview_colours}: 2 to 256")
            preview(args.preview, fr, args.seed, args.preview_colours)
            print(f"{args.preview}: 3x3 preview at {w}x{h}")
            if not args.out:
                return 0
        if not args.out:
            raise UsageError("--out DIR is needed (or --preview / --print-roi alone)")
        if args.raw and args.raw != "-":
            rdir = os.path.dirname(os.path.abspath(args.raw))
            if not os.access(rdir, os.W_OK):
                raise UsageError(f"cannot write --raw file into '{rdir}'")
    except UsageError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2
    return render(args, fr, state, n)


def render(args, fr, state, n):
    w, h, fps = fr.w, fr.h, args.fps
    name = args.name or (LABELS[state] if state is not None else "scene")
    ss = np.random.SeedSequence([args.seed, 0x5E6])
    r_seg, r_state = (np.random.default_rng(s) for s in ss.spawn(2))
    lens = segments_for(r_seg, n, fps)
    labels = [state] * len(lens) if state is not None else states_for(r_state, lens, fps)
    if state is None and len({(a, b) for a, b in zip(labels, labels[1:])}) != 6:
        # states_for covers them in every clip of 28 s or more (checked over many seeds)
        print(f"{PROG}: internal error: the mixed clip misses a transition", file=sys.stderr)
        return 1
    t0 = time.monotonic()
    rnd = Renderer(fr, args.seed)
    day = Day(fr, args.seed, n, fps, lens)
    variants = variants_for(day.r_var, len(lens))
    mkv = os.path.join(args.out, name + ".mkv")
    proc = None
    raw = None
    try:
        if args.raw:
            raw = sys.stdout.buffer if args.raw == "-" else open(args.raw, "wb")
        else:
            proc = encoder(mkv, w, h, fps)
    except (UsageError, OSError) as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2 if isinstance(e, UsageError) else 1
    sink = raw if raw is not None else proc.stdin
    digest = hashlib.sha256()
    if args.png_every:
        for lab in sorted(set(labels)):
            os.makedirs(os.path.join(args.out, "frames", LABELS[lab]), exist_ok=True)
    rows, segs = [], []
    f, last_report, t_render = 0, time.monotonic(), 0.0
    luma = np.empty(n)
    try:
        for si, (ln, lab) in enumerate(zip(lens, labels)):
            layer = compose(rnd.bg, fr, lab, variants[si])
            for i in range(f, f + ln):
                ta = time.process_time()
                img = rnd.frame(layer, day, i)
                t_render += time.process_time() - ta
                b = img.tobytes()
                digest.update(b)
                sink.write(b)
                luma[i] = img[::4, ::4].mean()
                if args.png_every and i % args.png_every == 0:
                    write_png(os.path.join(args.out, "frames", LABELS[lab], "%06d.png" % i), img)
                now = time.monotonic()
                if not args.quiet and now - last_report > 2.0:
                    last_report = now
                    print(f"{PROG}: frame {i + 1}/{n} ({100 * (i + 1) / n:.0f}%)", file=sys.stderr)
            v = variants[si]
            seg = {"first_frame": f, "last_frame": f + ln - 1, "label_index": lab, "label_name": LABELS[lab]}
            if lab == 1:
                seg["door_angle_deg"] = round(float(np.degrees(v["door_angle"])), 2)
            if lab == 2:
                seg["parcel"] = {k: (round(x, 3) if isinstance(x, float) else
                                     [round(c, 1) for c in x] if isinstance(x, list) else x)
                                 for k, x in v["parcel"].items()}
            segs.append(seg)
            if rows and rows[-1][2] == lab:
                rows[-1][1] = f + ln - 1
            else:
                rows.append([f, f + ln - 1, lab, LABELS[lab]])
            f += ln
    except BrokenPipeError:
        print(f"{PROG}: the encoder (or the --raw reader) stopped taking frames", file=sys.stderr)
        return 1
    finally:
        try:
            if raw is not None and raw is not sys.stdout.buffer:
                raw.close()
            elif raw is not None:
                raw.flush()
            if proc is not None:
                proc.stdin.close()
        except BrokenPipeError:
            pass
    if proc is not None and proc.wait() != 0:
        print(f"{PROG}: gst-launch-1.0 failed (exit {proc.returncode}) encoding {mkv}", file=sys.stderr)
        return 1
    truth = os.path.join(args.out, name + ".truth.csv")
    with open(truth, "w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["first_frame", "last_frame", "label_index", "label_name"])
        wr.writerows(rows)
    x, y, rw, rh = fr.roi()
    meta = {"tool": "tools/scene/make-scene.py", "width": w, "height": h, "fps": fps, "frames": n,
            "seed": args.seed, "state": LABELS[state] if state is not None else None,
            "labels": LABELS, "roi": {"x": x, "y": y, "width": rw, "height": rh},
            "roi_crop": f"{x},{y},{rw},{rh}", "frames_sha256": digest.hexdigest(),
            "clip": None if args.raw else os.path.basename(mkv), "encoder": VP8_SETTINGS,
            "mean_luma_min": round(float(luma.min()), 2), "mean_luma_max": round(float(luma.max()), 2),
            "segments": segs}
    with open(os.path.join(args.out, name + ".scene.json"), "w") as fh:
        json.dump(meta, fh, indent=1)
        fh.write("\n")
    el = time.monotonic() - t0
    out = sys.stderr if args.raw == "-" else sys.stdout
    print(f"{args.raw or mkv}: {n} frames {w}x{h} at {fps} fps, {len(lens)} segments, "
          f"roi {x},{y},{rw},{rh}, rendered at {n / max(t_render, 1e-9):.0f} frames per CPU second "
          f"({el:.1f} s in all); truth in {truth}; sha256 {digest.hexdigest()[:16]}", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
