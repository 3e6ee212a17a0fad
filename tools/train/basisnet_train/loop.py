"""The training loop of one process (train.py; with --procs, every process runs it).

train_loop(ctx, par) builds a Trainer and runs it: per epoch, train_epoch (the optimizer
steps on augmented batches), then, on the first process only, end_epoch (validation, the
epoch's line, last.pt and best.pt); at the end finish_swa (--swa) and write_history. The
schedule (progress, learning rate) is a Schedule. With --procs every process takes its
share of each batch and Parallel (parallel.py) averages gradients and statistics.
"""

import datetime
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

from basisnet_train import models as bm
from basisnet_train.augment import augment, augment_camera, balanced_order
from basisnet_train.averaging import recalibrate_bn, weight_mean, weight_sum
from basisnet_train.metrics import evaluate
from basisnet_train.teachers import kd_loss


def fmt_t(s):
    s = int(s)
    return "%d:%02d:%02d" % (s // 3600, s % 3600 // 60, s % 60)


def utc(fmt, seconds_ahead=0.0):
    return (datetime.datetime.utcnow() + datetime.timedelta(seconds=seconds_ahead)).strftime(fmt)


class Schedule:
    """Training progress in [0,1] and the learning rate at a progress. Progress is steps
    done, or wall time used if --time-budget runs out first (the schedule then compresses so
    the run still ends annealed). With --procs, the first process's clock decides for all."""

    def __init__(self, args, total, par=None):
        self.total, self.par = total, par
        self.budget = args.time_budget * 60.0 if args.time_budget else None
        self.warm_frac = min(1.0 / args.epochs, 0.1) if args.epochs > 1 else 0.0
        self.swa = args.swa is not None
        self.swa_start = args.swa
        self.swa_lr = args.swa_lr if args.swa_lr is not None else args.lr / 3
        self.top = self.swa_lr if self.swa and args.swa <= self.warm_frac else args.lr
        self.t0 = time.time()

    def progress(self, step, sync=True):
        """sync=False: this process's own clock, for what only the first process prints."""
        p = step / self.total
        if self.budget:
            p = max(p, (time.time() - self.t0) / self.budget)
            if self.par and sync:
                p = self.par.broadcast_float(p)
        return min(1.0, p)

    def lr_at(self, p):
        """Linear warm-up, then cosine to 0 at the end; with --swa, cosine to the SWA LR at
        progress --swa and constant after it."""
        if p < self.warm_frac:
            return self.top * max(p / self.warm_frac, 0.01)
        if self.swa and p >= self.swa_start:
            return self.swa_lr
        end, floor = (self.swa_start, self.swa_lr) if self.swa else (1.0, 0.0)
        t = (p - self.warm_frac) / max(1e-9, end - self.warm_frac)
        return floor + (self.top - floor) * 0.5 * (1 + math.cos(math.pi * t))


def make_optimizer(model, args):
    """AdamW; no weight decay on biases and BatchNorm parameters (1-dimensional)."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        (no_decay if p.dim() <= 1 else decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": args.wd},
                              {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)


class Trainer:
    def __init__(self, ctx, par=None):
        self.args, self.a, self.data, self.model = ctx["args"], ctx["a"], ctx["data"], ctx["model"]
        self.init, self.teachers, self.soft = ctx["init"], ctx["teachers"], ctx["soft"]
        args, data, model = self.args, self.data, self.model
        self.par = par
        self.rank, self.world = (par.rank, par.world) if par else (0, 1)
        self.lead = self.rank == 0  # only the first process prints, evaluates and saves
        self.gen = torch.Generator().manual_seed(args.seed + 1000)
        # one process: batches and augmentation share one generator (as before --procs);
        # more: the batch order is common, every process augments with its own generator
        self.aug_gen = self.gen if self.world == 1 else torch.Generator().manual_seed(
            args.seed + 1000 + 7919 * (self.rank + 1))
        self.madds = bm.model_madds(model)
        self.nparam = sum(p.numel() for p in model.parameters())
        self.camera = model.inp["channels"] == 3
        self.n_classes = len(data["labels"])
        counts = torch.bincount(data["train_y"], minlength=self.n_classes)
        self.balance = args.balance and bool(counts.max() > 1.1 * counts.min())
        self.command = " ".join(["tools/train/train.py"] + sys.argv[1:])
        if self.lead:
            print("train: %s arch=%s params=%d madds=%s train=%d val=%d threads=%d procs=%d "
                  "seed=%d split_seed=%d"
                  % (utc("%H:%M:%S"), args.arch, self.nparam, self.madds, len(data["train_x"]),
                     len(data["val_x"]), args.threads, self.world, args.seed, args.split_seed),
                  flush=True)
        self.params = list(model.parameters())
        self.opt = make_optimizer(model, args)
        self.steps_per_epoch = max(1, len(data["train_x"]) // args.batch)
        self.is_bn = isinstance(model, bm.BasisNet)
        self.tw = args.teacher_weight if self.soft is not None else 0.0
        self.history, self.step, self.stop = [], 0, False
        self.best = (-1.0, 0.0)  # (validation accuracy, -validation loss): ties to lower loss
        self.swa_sum, self.swa_epochs, self.last_ck = None, [], None
        self.sched = Schedule(args, self.steps_per_epoch * args.epochs, par)

    def objective(self, logits, y, st):
        """Loss of one output: CE, or (1-w) CE + w KD with teacher targets st."""
        ce = F.cross_entropy(logits, y)
        if self.tw == 0:
            return ce
        return (1 - self.tw) * ce + self.tw * kd_loss(logits, st, self.args.teacher_temp)

    def batch(self, perm, bi):
        """This process's share of batch bi of the epoch's order: (x, flip flags, y, idx)."""
        args, data = self.args, self.data
        idx = perm[bi * args.batch:(bi + 1) * args.batch][self.rank::self.world]
        if self.camera:
            x, flip = augment_camera(data["train_x"][idx], self.aug_gen, self.model.inp,
                                     erase_p=args.erase, jpeg_p=args.jpeg)
        else:
            x, flip = augment(data["train_x"][idx], self.aug_gen, erase_p=args.erase)
        return x, flip, data["train_y"][idx], idx

    def losses(self, x, y, flip, idx):
        """Forward pass and (total loss, specialist loss, light loss, output)."""
        args = self.args
        o = self.model(x)
        st = self.soft[idx, flip.long()] if self.tw > 0 else None
        ls = self.objective(o["logits"], y, st)
        loss, ll = ls, torch.zeros(())
        if "light_logits" in o and o["light_logits"] is not o["logits"]:
            ll = self.objective(o["light_logits"], y, st)
            loss = loss + args.light_weight * ll
            if args.distill > 0:
                tgt = torch.softmax(o["logits"].detach(), 1)
                kd = F.kl_div(F.log_softmax(o["light_logits"], 1), tgt, reduction="batchmean")
                loss = loss + args.distill * kd
        return loss, ls, ll, o

    def set_schedule(self, prog):
        """The learning rate and (BasisNet) the coefficient softmax temperature at prog."""
        args = self.args
        for g in self.opt.param_groups:
            g["lr"] = self.sched.lr_at(prog)
        if self.is_bn:
            f = min(1.0, prog / args.anneal) if args.anneal > 0 else 1.0
            self.model.temperature = args.t0 + (1.0 - args.t0) * f

    def optimizer_step(self, loss):
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.par:
            self.par.average_grads(self.params)
        self.opt.step()
        self.step += 1

    def log_progress(self, ep, bi, tot, te, prog):
        el = time.time() - te
        eta_ep = el / (bi + 1) * (self.steps_per_epoch - bi - 1)
        temp = " T %.2f" % self.model.temperature if self.is_bn else ""
        print("  ep %d %d/%d loss %.4f lr %.2e%s  %.1f img/s  epoch ETA %s  progress %.3f"
              % (ep, bi + 1, self.steps_per_epoch, tot["loss"] / tot["cnt"],
                 self.sched.lr_at(prog), temp, tot["cnt"] * self.world / el, fmt_t(eta_ep), prog),
              flush=True)

    def train_epoch(self, ep, te):
        """One epoch's optimizer steps; the totals over the whole batch (all processes):
        loss, loss_spec, loss_light, correct, cnt. Sets self.stop when progress reaches 1."""
        args = self.args
        self.model.train()
        if self.balance:
            perm = balanced_order(self.data["train_y"], self.n_classes, self.gen)
        else:
            perm = torch.randperm(len(self.data["train_x"]), generator=self.gen)
        tot = dict(loss=0.0, loss_spec=0.0, loss_light=0.0, correct=0, cnt=0)
        for bi in range(self.steps_per_epoch):
            x, flip, y, idx = self.batch(perm, bi)
            prog = self.sched.progress(self.step)
            if prog >= 1.0:
                self.stop = True
                break
            self.set_schedule(prog)
            loss, ls, ll, o = self.losses(x, y, flip, idx)
            self.optimizer_step(loss)
            for k, v in (("loss", loss), ("loss_spec", ls), ("loss_light", ll)):
                tot[k] += float(v) * len(y)
            tot["correct"] += int((o["logits"].argmax(1) == y).sum())
            tot["cnt"] += len(y)
            if self.lead and args.log_every and (bi + 1) % args.log_every == 0:
                self.log_progress(ep, bi, tot, te, prog)
        if self.par:  # the whole batch's numbers, and one set of BatchNorm statistics
            keys = ("loss", "loss_spec", "loss_light", "correct", "cnt")
            tot = dict(zip(keys, self.par.sum([tot[k] for k in keys])))
            self.par.average_bn_stats(self.model)
            self.par.check_in_step(self.model)
        return tot

    def checkpoint(self):
        return {"args": self.a, "model": self.model.state_dict(),
                "epoch": round(self.step / self.steps_per_epoch, 2), "steps": self.step,
                "command": self.command, "date": utc("%Y-%m-%dT%H:%M:%SZ"),
                "madds": self.madds, "params": self.nparam, "history": self.history,
                "train_seconds": time.time() - self.sched.t0, "init": self.init,
                "teachers": self.teachers}

    def end_epoch(self, ep, tot, te):
        """First process: validation, the epoch's line, OUT/last.pt and (if best) best.pt."""
        args, model = self.args, self.model
        ev = evaluate(model, self.data["val_x"], self.data["val_y"])
        dt = time.time() - te
        done = time.time() - self.sched.t0
        prog = self.sched.progress(self.step, sync=False)
        eta = done / max(prog, 1e-9) * (1 - prog)
        cnt = tot["cnt"]
        rec = {"epoch": ep, "steps": self.step, "epochs_done": self.step / self.steps_per_epoch,
               "loss": tot["loss"] / cnt, "loss_spec": tot["loss_spec"] / cnt,
               "loss_light": tot["loss_light"] / cnt, "train_acc": tot["correct"] / cnt,
               "val_acc": ev["acc"], "val_light_acc": ev.get("light_acc"), "val_loss": ev["loss"],
               "epoch_s": dt}
        self.history.append(rec)
        # models without a light stage (static-wide, specialist, resnet) print neither part
        parts, vlight = "", ""
        if "light_acc" in ev:
            parts = " (spec %.4f light %.4f)" % (rec["loss_spec"], rec["loss_light"])
            vlight = " val_light %.4f" % ev["light_acc"]
        print("epoch %d/%d loss %.4f%s train %.4f val %.4f%s  %.0fs/epoch  "
              "elapsed %s ETA %s (%s UTC)"
              % (ep, args.epochs, rec["loss"], parts, rec["train_acc"], ev["acc"], vlight,
                 dt, fmt_t(done), fmt_t(eta), utc("%H:%M", eta)), flush=True)
        ck = self.last_ck = self.checkpoint()
        torch.save(ck, os.path.join(args.out, "last.pt.tmp"))
        os.replace(os.path.join(args.out, "last.pt.tmp"), os.path.join(args.out, "last.pt"))
        if (ev["acc"], -ev["loss"]) > self.best:
            self.best = (ev["acc"], -ev["loss"])
            torch.save(ck, os.path.join(args.out, "best.pt"))

    def finish_swa(self):
        """--swa: the mean of the sampled weights, BatchNorm re-estimated, as OUT/swa.pt;
        returns its record (None without SWA samples)."""
        if self.swa_sum is None:
            return None
        args, data, model, sched = self.args, self.data, self.model, self.sched
        n = len(self.swa_epochs)
        rec = {"start": args.swa, "lr": sched.swa_lr, "samples": n, "at_epochs": self.swa_epochs}
        model.load_state_dict(weight_mean(self.swa_sum, n))
        print("train: SWA: mean of %d epoch-end weights; BatchNorm statistics over %d "
              "training images" % (n, len(data["train_x"])), flush=True)
        recalibrate_bn(model, data["train_x"])
        ev = evaluate(model, data["val_x"], data["val_y"])
        rec["val_acc"] = ev["acc"]
        rec["val_light_acc"] = ev.get("light_acc")
        ck = dict(self.last_ck, model=model.state_dict(), swa=rec,
                  train_seconds=time.time() - sched.t0)
        torch.save(ck, os.path.join(args.out, "swa.pt"))
        print("train: SWA val %.4f%s (last epoch %.4f), checkpoint %s"
              % (ev["acc"], " val_light %.4f" % ev["light_acc"] if "light_acc" in ev else "",
                 self.history[-1]["val_acc"], os.path.join(args.out, "swa.pt")), flush=True)
        return rec

    def write_history(self, swa_rec):
        with open(os.path.join(self.args.out, "history.json"), "w") as f:
            json.dump({"args": self.a, "command": self.command, "madds": self.madds,
                       "params": self.nparam, "steps": self.step,
                       "epochs_done": self.step / self.steps_per_epoch, "history": self.history,
                       "train_seconds": time.time() - self.sched.t0, "swa": swa_rec},
                      f, indent=1)

    def run(self):
        """All epochs; the history (None on processes other than the first)."""
        args, sched = self.args, self.sched
        for ep in range(1, args.epochs + 1):
            if self.stop:
                break
            te = time.time()
            in_swa = sched.swa and sched.progress(self.step) >= args.swa
            tot = self.train_epoch(ep, te)
            if tot["cnt"] == 0:
                break
            if in_swa:  # an epoch that started at or after --swa (or the last, cut one)
                self.swa_sum = weight_sum(self.model.state_dict(), self.swa_sum)
                self.swa_epochs.append(round(self.step / self.steps_per_epoch, 2))
            if self.lead:
                self.end_epoch(ep, tot, te)
        if not self.lead:
            return None
        self.write_history(self.finish_swa())
        print("train: done in %s, final val %.4f (best %.4f), checkpoint %s"
              % (fmt_t(time.time() - sched.t0), self.history[-1]["val_acc"], self.best[0],
                 os.path.join(args.out, "last.pt")), flush=True)
        return self.history


def train_loop(ctx, par=None):
    """Trains ctx's model (train.train builds ctx: args, a, data, model, init, teachers,
    soft); par: this process's Parallel with --procs. Returns the history (first process)."""
    return Trainer(ctx, par).run()
