"""The training loop of one process (train.py; with --procs, every process runs it)."""

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


def train_loop(ctx, par=None):
    args, a, data, model = ctx["args"], ctx["a"], ctx["data"], ctx["model"]
    init, teachers, soft = ctx["init"], ctx["teachers"], ctx["soft"]
    rank, world = (par.rank, par.world) if par else (0, 1)
    lead = rank == 0  # only the first process prints, evaluates and writes checkpoints
    gen = torch.Generator().manual_seed(args.seed + 1000)
    # one process: batches and augmentation share one generator (as before --procs); more:
    # the batch order is common, every process augments with its own generator
    aug_gen = gen if world == 1 else torch.Generator().manual_seed(
        args.seed + 1000 + 7919 * (rank + 1))
    madds = bm.model_madds(model)
    nparam = sum(p.numel() for p in model.parameters())
    camera = model.inp["channels"] == 3
    n_classes = len(data["labels"])
    counts = torch.bincount(data["train_y"], minlength=n_classes)
    balance = args.balance and bool(counts.max() > 1.1 * counts.min())
    command = " ".join(["tools/train/train.py"] + sys.argv[1:])
    if lead:
        print("train: %s arch=%s params=%d madds=%s train=%d val=%d threads=%d procs=%d "
              "seed=%d split_seed=%d"
              % (datetime.datetime.utcnow().strftime("%H:%M:%S"), args.arch, nparam, madds,
                 len(data["train_x"]), len(data["val_x"]), args.threads, world, args.seed,
                 args.split_seed), flush=True)

    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (no_decay if p.dim() <= 1 else decay).append(p)
    params = list(model.parameters())
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)
    n = len(data["train_x"])
    steps_per_epoch = max(1, n // args.batch)
    total = steps_per_epoch * args.epochs
    budget = args.time_budget * 60.0 if args.time_budget else None
    warm_frac = min(1.0 / args.epochs, 0.1) if args.epochs > 1 else 0.0

    def progress(step, sync=True):
        """Training progress in [0,1]: steps done, or wall time used if --time-budget
        runs out first (the schedule then compresses so the run still ends annealed).
        With --procs, the first process's clock decides for all (sync=False: this
        process's own clock, for what only the first process prints)."""
        p = step / total
        if budget:
            p = max(p, (time.time() - t0) / budget)
            if par and sync:
                p = par.broadcast_float(p)
        return min(1.0, p)

    swa = args.swa is not None
    swa_lr = args.swa_lr if args.swa_lr is not None else args.lr / 3
    top = swa_lr if swa and args.swa <= warm_frac else args.lr

    def lr_at(p):
        """Linear warm-up, then cosine to 0 at the end; with --swa, cosine to the SWA LR at
        progress --swa and constant after it."""
        if p < warm_frac:
            return top * max(p / warm_frac, 0.01)
        if swa and p >= args.swa:
            return swa_lr
        end, floor = (args.swa, swa_lr) if swa else (1.0, 0.0)
        t = (p - warm_frac) / max(1e-9, end - warm_frac)
        return floor + (top - floor) * 0.5 * (1 + math.cos(math.pi * t))

    is_bn = isinstance(model, bm.BasisNet)
    tw = args.teacher_weight if soft is not None else 0.0

    def objective(logits, y, st):
        """Loss of one output: CE, or (1-w) CE + w KD with teacher targets st."""
        ce = F.cross_entropy(logits, y)
        if tw == 0:
            return ce
        return (1 - tw) * ce + tw * kd_loss(logits, st, args.teacher_temp)

    history = []
    step = 0
    t0 = time.time()
    best = (-1.0, 0.0)  # (validation accuracy, -validation loss): ties go to the lower loss
    stop = False
    swa_sum, swa_epochs = None, []
    for ep in range(1, args.epochs + 1):
        if stop:
            break
        model.train()
        te = time.time()
        in_swa = swa and progress(step) >= args.swa
        perm = (balanced_order(data["train_y"], n_classes, gen) if balance
                else torch.randperm(n, generator=gen))
        tot_loss = tot_ls = tot_ll = 0.0
        correct = cnt = 0
        for bi in range(steps_per_epoch):
            idx = perm[bi * args.batch:(bi + 1) * args.batch][rank::world]
            if camera:
                x, flip = augment_camera(data["train_x"][idx], aug_gen, model.inp,
                                         erase_p=args.erase, jpeg_p=args.jpeg)
            else:
                x, flip = augment(data["train_x"][idx], aug_gen, erase_p=args.erase)
            y = data["train_y"][idx]
            prog = progress(step)
            if prog >= 1.0:
                stop = True
                break
            for g in opt.param_groups:
                g["lr"] = lr_at(prog)
            if is_bn:
                f = min(1.0, prog / args.anneal) if args.anneal > 0 else 1.0
                model.temperature = args.t0 + (1.0 - args.t0) * f
            o = model(x)
            st = soft[idx, flip.long()] if tw > 0 else None
            ls = objective(o["logits"], y, st)
            loss = ls
            ll = torch.zeros(())
            if "light_logits" in o and o["light_logits"] is not o["logits"]:
                ll = objective(o["light_logits"], y, st)
                loss = loss + args.light_weight * ll
                if args.distill > 0:
                    tgt = torch.softmax(o["logits"].detach(), 1)
                    kd = F.kl_div(F.log_softmax(o["light_logits"], 1), tgt, reduction="batchmean")
                    loss = loss + args.distill * kd
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if par:
                par.average_grads(params)
            opt.step()
            step += 1
            tot_loss += float(loss) * len(y)
            tot_ls += float(ls) * len(y)
            tot_ll += float(ll) * len(y)
            correct += int((o["logits"].argmax(1) == y).sum())
            cnt += len(y)
            if lead and args.log_every and (bi + 1) % args.log_every == 0:
                el = time.time() - te
                eta_ep = el / (bi + 1) * (steps_per_epoch - bi - 1)
                temp = " T %.2f" % model.temperature if is_bn else ""
                print("  ep %d %d/%d loss %.4f lr %.2e%s  %.1f img/s  epoch ETA %s  progress %.3f"
                      % (ep, bi + 1, steps_per_epoch, tot_loss / cnt, lr_at(prog), temp,
                         cnt * world / el, fmt_t(eta_ep), prog), flush=True)
        if par:  # the whole batch's numbers, and one set of BatchNorm statistics
            tot_loss, tot_ls, tot_ll, correct, cnt = par.sum(
                [tot_loss, tot_ls, tot_ll, correct, cnt])
            par.average_bn_stats(model)
            par.check_in_step(model)
        if cnt == 0:
            break
        if in_swa:  # an epoch that started at or after --swa (or the last, cut one): a sample
            swa_sum = weight_sum(model.state_dict(), swa_sum)
            swa_epochs.append(round(step / steps_per_epoch, 2))
        if not lead:
            continue
        ev = evaluate(model, data["val_x"], data["val_y"])
        dt = time.time() - te
        done = time.time() - t0
        prog = progress(step, sync=False)
        eta = done / max(prog, 1e-9) * (1 - prog)
        rec = {"epoch": ep, "steps": step, "epochs_done": step / steps_per_epoch, "loss": tot_loss / cnt, "loss_spec": tot_ls / cnt,
               "loss_light": tot_ll / cnt, "train_acc": correct / cnt, "val_acc": ev["acc"],
               "val_light_acc": ev.get("light_acc"), "val_loss": ev["loss"], "epoch_s": dt}
        history.append(rec)
        # models without a light stage (static-wide, specialist, resnet) print neither part
        parts, vlight = "", ""
        if "light_acc" in ev:
            parts = " (spec %.4f light %.4f)" % (rec["loss_spec"], rec["loss_light"])
            vlight = " val_light %.4f" % ev["light_acc"]
        print("epoch %d/%d loss %.4f%s train %.4f val %.4f%s  %.0fs/epoch  "
              "elapsed %s ETA %s (%s UTC)"
              % (ep, args.epochs, rec["loss"], parts, rec["train_acc"], ev["acc"], vlight,
                 dt, fmt_t(done), fmt_t(eta),
                 (datetime.datetime.utcnow() + datetime.timedelta(seconds=eta)).strftime("%H:%M")),
              flush=True)
        ck = {"args": a, "model": model.state_dict(), "epoch": round(step / steps_per_epoch, 2),
              "steps": step, "command": command,
              "date": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
              "madds": madds, "params": nparam, "history": history,
              "train_seconds": time.time() - t0, "init": init, "teachers": teachers}
        torch.save(ck, os.path.join(args.out, "last.pt.tmp"))
        os.replace(os.path.join(args.out, "last.pt.tmp"), os.path.join(args.out, "last.pt"))
        if (ev["acc"], -ev["loss"]) > best:
            best = (ev["acc"], -ev["loss"])
            torch.save(ck, os.path.join(args.out, "best.pt"))
    if not lead:
        return None
    swa_rec = None
    if swa_sum is not None:
        swa_rec = {"start": args.swa, "lr": swa_lr, "samples": len(swa_epochs),
                   "at_epochs": swa_epochs}
        model.load_state_dict(weight_mean(swa_sum, len(swa_epochs)))
        print("train: SWA: mean of %d epoch-end weights; BatchNorm statistics over %d "
              "training images" % (len(swa_epochs), len(data["train_x"])), flush=True)
        recalibrate_bn(model, data["train_x"])
        ev = evaluate(model, data["val_x"], data["val_y"])
        swa_rec["val_acc"] = ev["acc"]
        swa_rec["val_light_acc"] = ev.get("light_acc")
        ck = dict(ck, model=model.state_dict(), swa=swa_rec,
                  train_seconds=time.time() - t0)
        torch.save(ck, os.path.join(args.out, "swa.pt"))
        print("train: SWA val %.4f%s (last epoch %.4f), checkpoint %s"
              % (ev["acc"], " val_light %.4f" % ev["light_acc"] if "light_acc" in ev else "",
                 history[-1]["val_acc"], os.path.join(args.out, "swa.pt")), flush=True)
    with open(os.path.join(args.out, "history.json"), "w") as f:
        json.dump({"args": a, "command": command, "madds": madds, "params": nparam,
                   "steps": step, "epochs_done": step / steps_per_epoch,
                   "history": history, "train_seconds": time.time() - t0, "swa": swa_rec},
                  f, indent=1)
    print("train: done in %s, final val %.4f (best %.4f), checkpoint %s"
          % (fmt_t(time.time() - t0), history[-1]["val_acc"], best[0],
             os.path.join(args.out, "last.pt")), flush=True)
    return history
