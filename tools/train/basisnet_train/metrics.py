"""Accuracy and loss of a model over a split (both stages of a two-stage model)."""

import torch
import torch.nn.functional as F


@torch.no_grad()
def evaluate(model, x_u8, y, bs=500):
    """Returns dict: acc (full path / static), loss (its mean cross-entropy), light_acc,
    light_conf, light_pred, pred."""
    model.eval()
    preds, lpreds, lconf = [], [], []
    loss = 0.0
    for i in range(0, len(x_u8), bs):
        o = model(model.normalize(x_u8[i:i + bs]))
        loss += float(F.cross_entropy(o["logits"], y[i:i + bs], reduction="sum"))
        preds.append(o["logits"].argmax(1))
        if "light_logits" in o:
            p = torch.softmax(o["light_logits"], 1)
            c, lp = p.max(1)
            lpreds.append(lp)
            lconf.append(c)
    pred = torch.cat(preds)
    r = {"acc": float((pred == y).float().mean()), "loss": loss / max(1, len(y)), "pred": pred}
    if lpreds:
        lp = torch.cat(lpreds)
        r.update(light_acc=float((lp == y).float().mean()), light_pred=lp,
                 light_conf=torch.cat(lconf))
    return r
