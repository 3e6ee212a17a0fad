"""Weight averaging (SWA, soup.py): running sums and means of state dicts, and the
BatchNorm statistics an averaged network needs re-estimated."""

import torch


def weight_sum(sd, acc=None):
    """Running sum of a state dict's floating-point tensors (SWA, soup.py); integer buffers
    are kept from the latest one."""
    if acc is None:
        return {k: v.detach().clone() for k, v in sd.items()}
    for k, v in sd.items():
        if v.is_floating_point():
            acc[k] += v.detach()
        else:
            acc[k] = v.detach().clone()
    return acc


def weight_mean(acc, n):
    return {k: (v / n if v.is_floating_point() else v) for k, v in acc.items()}


@torch.no_grad()
def recalibrate_bn(model, x_u8, bs=500):
    """Cumulative (not running) mean/var of every BatchNorm over x_u8, in training mode
    with basis dropout off: the statistics an averaged network actually sees."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    drop = getattr(model, "basis_dropout", 0.0)
    model.basis_dropout = 0.0
    model.train()
    for i in range(0, len(x_u8), bs):
        model(model.normalize(x_u8[i:i + bs]))
    model.basis_dropout = drop
    for m, mom in zip(bns, momenta):
        m.momentum = mom
    model.eval()
