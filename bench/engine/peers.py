#!/usr/bin/env python3
"""Peer runtimes on the same network and weights as a .bnm file (bench/engine/run.sh).

  peers.py export MODEL.bnm OUTDIR      ONNX graphs for ONNX Runtime (opset 13) and OpenCV
                                        DNN (opset 10, Clip as attributes) + input tensors
  peers.py torch  MODEL.bnm --threads N --seconds S    TorchScript timings (JSON lines)
  peers.py opencv OUTDIR    --threads N --seconds S    OpenCV DNN timings (JSON lines)

Graphs (see bnm.py): light (light input -> logits, coeffs), specialist (full input ->
logits, static weights synthesized from the alpha of the benchmark image), full (both
inputs -> light logits, alpha, specialist logits, synthesis inside the graph).
Each timing line: {"runtime", "graph", "threads", "p50_ms", "p99_ms", "mean_ms", "iterations"}.
"""
import argparse
import json
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def bench_image(doc):
    """The same pseudo-random image as `basisnet bench` (LCG, seed 12345)."""
    n = doc["input"]["height"] * doc["input"]["width"] * doc["input"]["channels"]
    out = np.empty(n, np.uint8)
    seed = 12345
    for i in range(n):
        seed = (seed * 1664525 + 1013904223) & 0xFFFFFFFF
        out[i] = seed >> 24
    return out.reshape(1, doc["input"]["height"], doc["input"]["width"], doc["input"]["channels"])


def timeit(fn, seconds, warmup=10, min_iter=20):
    for _ in range(warmup):
        fn()
    t = []
    end = time.perf_counter() + seconds
    while len(t) < min_iter or time.perf_counter() < end:
        t0 = time.perf_counter()
        fn()
        t.append((time.perf_counter() - t0) * 1e3)
    t = np.array(t)
    return {"p50_ms": round(float(np.percentile(t, 50)), 4), "p99_ms": round(float(np.percentile(t, 99)), 4),
            "mean_ms": round(float(t.mean()), 4), "iterations": len(t)}


def load(model):
    import bnm
    doc, tensors = bnm.read_bnm(model)
    xl, x = bnm.preprocess(doc, bench_image(doc))
    return bnm, doc, tensors, xl, x


def cmd_export(a):
    import torch
    bnm, doc, tensors, xl, x = load(a.model)
    os.makedirs(a.outdir, exist_ok=True)
    light = bnm.LightNet(doc, tensors).eval()
    full = bnm.FullNet(doc, tensors).eval()
    with torch.no_grad():
        _, alpha, _ = full(xl, x)
    spec = bnm.SpecialistNet(doc, tensors, alpha[0].numpy()).eval()
    np.save(os.path.join(a.outdir, "light_input.npy"), xl.numpy())
    np.save(os.path.join(a.outdir, "input.npy"), x.numpy())
    graphs = [("light", light, (xl,), ["light_input"], ["light_logits", "coeffs"]),
              ("specialist", spec, (x,), ["input"], ["logits"]),
              ("full", full, (xl, x), ["light_input", "input"], ["light_logits", "alpha", "logits"])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, net, args, ins, outs in graphs:
            for tag, opset in (("ort", 13), ("opencv", 10)):
                if tag == "opencv" and name == "full":
                    continue  # OpenCV DNN needs constant convolution weights
                path = os.path.join(a.outdir, "%s.%s.onnx" % (name, tag))
                torch.onnx.export(net, args, path, input_names=ins, output_names=outs, opset_version=opset,
                                  do_constant_folding=True)
    # reference outputs to check the peers compute the same thing
    with torch.no_grad():
        ref = {"light_logits": light(xl)[0].numpy().tolist(), "logits": full(xl, x)[2].numpy().tolist()}
    json.dump(ref, open(os.path.join(a.outdir, "reference.json"), "w"))
    print("exported ONNX graphs to %s" % a.outdir)


def cmd_torch(a):
    import torch
    torch.set_num_threads(a.threads)
    bnm, doc, tensors, xl, x = load(a.model)
    full = bnm.FullNet(doc, tensors).eval()
    with torch.no_grad():
        ref_light, alpha, ref_logits = full(xl, x)
        nets = {"light": (bnm.LightNet(doc, tensors).eval(), (xl,)),
                "specialist": (bnm.SpecialistNet(doc, tensors, alpha[0].numpy()).eval(), (x,)),
                "full": (full, (xl, x))}
        for name, (net, args) in nets.items():
            # traced + frozen; optimize_for_inference was left out: its MKLDNN rewrite changed
            # the logits by 2.5% (relative) on the random-tiny network with torch 1.13
            ts = torch.jit.freeze(torch.jit.trace(net, args).eval())
            out = ts(*args)
            got = out[0] if name == "light" else (out[2] if name == "full" else out)
            want = ref_light if name == "light" else ref_logits
            err = float((got - want).abs().max() / want.abs().max().clamp(min=1))
            r = timeit(lambda: ts(*args), a.seconds)
            r.update(runtime="pytorch-torchscript", graph=name, threads=a.threads, max_rel_err=err)
            print(json.dumps(r), flush=True)


def cmd_opencv(a):
    import cv2
    cv2.setNumThreads(a.threads)
    ref = json.load(open(os.path.join(a.outdir, "reference.json")))
    xl = np.load(os.path.join(a.outdir, "light_input.npy"))
    x = np.load(os.path.join(a.outdir, "input.npy"))
    for name, inp, outs, want in (("light", xl, ["light_logits", "coeffs"], ref["light_logits"]),
                                  ("specialist", x, ["logits"], ref["logits"])):
        net = cv2.dnn.readNetFromONNX(os.path.join(a.outdir, "%s.opencv.onnx" % name))
        net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)

        def run():
            net.setInput(inp)
            return net.forward(outs)
        got = np.asarray(run()[0])
        w = np.asarray(want)
        err = float(np.abs(got.reshape(w.shape) - w).max() / max(np.abs(w).max(), 1))
        r = timeit(run, a.seconds)
        r.update(runtime="opencv-dnn", graph=name, threads=a.threads, max_rel_err=err)
        print(json.dumps(r), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export")
    e.add_argument("model")
    e.add_argument("outdir")
    for name in ("torch", "opencv"):
        p = sub.add_parser(name)
        p.add_argument("model" if name == "torch" else "outdir")
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--seconds", type=float, default=5)
    a = ap.parse_args()
    {"export": cmd_export, "torch": cmd_torch, "opencv": cmd_opencv}[a.cmd](a)


if __name__ == "__main__":
    main()
