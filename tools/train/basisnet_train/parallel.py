"""train.py --procs P: one run on P forked processes (gloo), data parallel."""

import datetime
import json
import multiprocessing
import multiprocessing.connection
import os
import sys

import torch


class Parallel:
    """Data parallelism over `world` processes (gloo, one thread each): every process
    takes its share of every batch and the gradients are averaged, so a step is the step
    one process would take on the whole batch (BatchNorm aside: each process normalises
    its own share, and the running statistics are averaged at every epoch end)."""

    def __init__(self, rank, world, store_path):
        import torch.distributed as dist
        self.dist, self.rank, self.world = dist, rank, world
        dist.init_process_group("gloo", init_method="file://" + store_path,
                                rank=rank, world_size=world,
                                timeout=datetime.timedelta(minutes=30))
        self.flat = None

    def broadcast_float(self, v):
        t = torch.tensor([v], dtype=torch.float64)
        self.dist.broadcast(t, 0)
        return float(t[0])

    def average_grads(self, params):
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        if self.flat is None:
            self.flat = torch.empty(sum(g.numel() for g in grads))
        torch.cat([g.reshape(-1) for g in grads], out=self.flat)
        self.dist.all_reduce(self.flat)
        self.flat /= self.world
        off = 0
        for p, g in zip(params, grads):
            p.grad = self.flat[off:off + g.numel()].view_as(g).clone()
            off += g.numel()

    def sum(self, values):
        t = torch.tensor(values, dtype=torch.float64)
        self.dist.all_reduce(t)
        return t.tolist()

    def average_bn_stats(self, model):
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                for b in (m.running_mean, m.running_var):
                    self.dist.all_reduce(b)
                    b /= self.world

    def check_in_step(self, model):
        """The processes' weights must stay identical (same averaged gradients, same
        optimizer); a difference would mean they trained different models."""
        s = float(sum(p.double().sum() for p in model.parameters()))
        t = torch.tensor([s, -s], dtype=torch.float64)
        self.dist.all_reduce(t, op=self.dist.ReduceOp.MAX)
        if float(t[0]) != -float(t[1]):
            raise RuntimeError("train: --procs: the processes' weights differ (checksums "
                               "%.17g vs %.17g)" % (float(t[0]), -float(t[1])))


def _worker(loop, ctx, rank, world, store):
    try:  # end with the parent: a worker left alone would train on without anyone to report to
        import ctypes
        import signal
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    try:
        loop(ctx, Parallel(rank, world, store))
    except KeyboardInterrupt:
        os._exit(130)
    except BaseException:  # noqa: BLE001 - report and make the parent stop the others
        import traceback
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    sys.stdout.flush()
    os._exit(0)


def run_procs(loop, ctx, procs, out):
    """Runs loop(ctx, Parallel(rank, procs, store)) in procs forked processes (loop(ctx) in
    this one when procs is 1); the history the first one wrote to out/history.json."""
    if procs == 1:
        return loop(ctx)
    # the workers are forked: they inherit data, targets and the identical initial weights
    store = os.path.abspath(os.path.join(out, ".procs-store.%d" % os.getpid()))
    if os.path.exists(store):
        os.unlink(store)
    mp = multiprocessing.get_context("fork")
    workers = [mp.Process(target=_worker, args=(loop, ctx, r, procs, store))
                          for r in range(procs)]
    for p in workers:
        p.start()
    failed = None
    try:
        live = list(workers)
        while live and failed is None:
            multiprocessing.connection.wait([p.sentinel for p in live])
            for p in list(live):
                if p.exitcode is not None:
                    live.remove(p)
                    if p.exitcode != 0:
                        failed = p
    finally:
        for p in workers:  # one worker failed: the others would wait for it in a collective
            if p.exitcode is None:
                p.terminate()
            p.join()
        if os.path.exists(store):
            os.unlink(store)
    if failed is not None:
        raise SystemExit("train: --procs %d: worker %d failed (exit %s)"
                         % (procs, workers.index(failed), failed.exitcode))
    with open(os.path.join(out, "history.json")) as f:
        return json.load(f)["history"]
