"""Train the SDN that lindy ships for one tau, fuse it, check it, and write it to lindy/weights/.

    python benchmarks/train_sdn.py --tau 0.125
    python benchmarks/train_sdn.py --tau 0.2 --epochs 150
    python benchmarks/train_sdn.py --tau 0.2 --init FILE --finetune-steps 16000 --finetune-lr 3e-3

The recipe of the reference's train.py at a CPU budget: the ``lif`` data set (x ~ N(0, 1), T = 1024,
targets the LIF's decayed membrane at ``--tau``), 10 % of the training examples held out, SmoothL1 loss
(``--loss l1``: the membrane MAE itself), AdamW (lr 0.01, weight decay 0.01), cosine schedule over all
steps, batch 64; the checkpoint with the best held-out loss is kept. ``--finetune-steps N`` adds a
second stage: the fused 153-parameter form itself (the function that is shipped and measured, with no
BatchNorm batch statistics, which differ between training and eval) is trained N steps on the L1 loss
(the membrane MAE the target is stated in), Adam from ``--finetune-lr`` on a cosine to 0, each step on a
fresh batch (batch-size x length, N(0, 1), seeds FINETUNE_SEED + step, never the measurement's);
``--init FILE`` skips stage 1 and fine-tunes a fused SDN file instead. The shipped tau = 0.2 SDN is stage 1
(``--epochs 150``: MAE 2.40e-3, the file of commit 436ac77) fine-tuned 16,000 steps at 3e-3 (MAE 1.86e-3). The
fused SDN is then measured on fresh N(0, 1) inputs (64 x 1024, a seed the training data never used)
against the exact LIF: spike agreement mean 1[(m_hat + x >= 1) == s] and membrane MAE. It is written
only when it meets the targets (agreement >= 99.9 %, MAE <= 2e-3) unless ``--force``. Prints one JSON
line with the measurements and the command.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from lindy.data.lif import generate_lif
from lindy.kernels.lif import lif_reference
from lindy.layers.sdn import SDN, FusedSDN, membrane_mae, pretrained_path, spike_agreement

TARGET_AGREEMENT, TARGET_MAE = 0.999, 2e-3
EVAL_SEED = 20240901  # the measurement's inputs; training and fine-tuning data use other seeds
FINETUNE_SEED = 10**6  # fine-tune step i draws its batch with seed FINETUNE_SEED + i
#: training losses; l1 is the membrane MAE the target is stated in (smooth_l1 is the square near zero)
LOSSES = {"smooth_l1": F.smooth_l1_loss, "l1": F.l1_loss}


def evaluate_fused(fused, tau: float, seed: int = EVAL_SEED, num: int = 64, length: int = 1024) -> dict:
    """Agreement and MAE of a (fused) SDN against the exact LIF on fresh N(0, 1) inputs."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(num, length, generator=g, dtype=torch.float64)
    mem, spikes = lif_reference(x, tau)
    with torch.no_grad():
        m_hat = fused(x.float()).double()
    return {
        "agreement": spike_agreement(m_hat, x, spikes),
        "mae": membrane_mae(m_hat, mem),
        "max_abs": (m_hat - mem).abs().max().item(),
    }


def finetune_fused(fused, tau: float, steps: int, lr: float, batch: int, length: int) -> list[float]:
    """Train the fused SDN in place on the L1 loss, each step on a fresh batch; the loss every 500 steps."""
    fused.requires_grad_(True).train()
    opt = torch.optim.Adam(fused.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    losses, start = [], time.time()
    for i in range(steps):
        data = generate_lif(batch, length, tau, seed=FINETUNE_SEED + i)
        loss = F.l1_loss(fused(data["input"]), data["mem"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if (i + 1) % 500 == 0 or i + 1 == steps:
            losses.append(loss.item())
            elapsed = time.time() - start
            print(f"fine-tune step {i + 1}: l1 {loss.item():.3e} ({elapsed:.0f} s)", file=sys.stderr)
    return losses


def train_sdn(args) -> tuple[FusedSDN, dict]:
    """Stage 1, the reference's recipe on the training form; the best held-out checkpoint, fused (float32)."""
    data = generate_lif(args.n_train, args.length, args.tau, seed=args.seed)
    x, mem = data["input"], data["mem"]
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(42))
    n_val = len(x) // 10
    val_idx, train_idx = perm[:n_val], perm[n_val:]

    model = SDN()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = math.ceil(len(train_idx) / args.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs * steps_per_epoch)
    best, best_state, start = math.inf, None, time.time()
    for epoch in range(args.epochs):
        model.train()
        order = train_idx[torch.randperm(len(train_idx))]
        for i in range(steps_per_epoch):
            idx = order[i * args.batch_size : (i + 1) * args.batch_size]
            loss = LOSSES[args.loss](model(x[idx]), mem[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        with torch.no_grad():
            val = sum(
                LOSSES[args.loss](model(x[val_idx[j : j + 512]]), mem[val_idx[j : j + 512]], reduction="sum")
                for j in range(0, n_val, 512)
            ).item() / (n_val * args.length)
        if val < best:
            best, best_state = val, {k: v.clone() for k, v in model.state_dict().items()}
        print(
            f"epoch {epoch}: val {args.loss} {val:.3e} ({time.time() - start:.0f} s)",
            file=sys.stderr,
            flush=True,
        )

    model.load_state_dict(best_state)
    model = model.double().eval()
    fused = model.fused()
    fused_error = (fused(x[:8].double()) - model(x[:8].double())).abs().max().item()
    fused = fused.float()
    fused.tau = args.tau
    return fused, {f"val_{args.loss}": best, "fused_vs_unfused_float64": fused_error}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tau", type=float, required=True)
    p.add_argument("--n-train", type=int, default=20000, help="examples generated; 10 %% held out")
    p.add_argument("--length", type=int, default=1024)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--init", type=Path, default=None, help="a fused SDN file to fine-tune (skips stage 1)")
    p.add_argument("--finetune-steps", type=int, default=0, help="steps of the fused form on the L1 loss")
    p.add_argument("--finetune-lr", type=float, default=1e-3)
    p.add_argument("--out", type=Path, default=None, help="default: lindy/weights/sdn_tau<tau>.safetensors")
    p.add_argument("--force", action="store_true", help="write the weights even if a target is missed")
    p.add_argument(
        "--loss", choices=sorted(LOSSES), default="smooth_l1", help="smooth_l1 (the reference's) | l1 (MAE)"
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    start = time.time()
    result = {"tau": args.tau}
    if args.init is None:
        fused, trained = train_sdn(args)
        result.update(trained)
    else:
        fused = FusedSDN.load(args.init)
        if fused.tau is not None and fused.tau != args.tau:
            raise ValueError(f"--init holds an SDN for tau={fused.tau}, not --tau {args.tau}")
        result["init"] = str(args.init)
    fused.tau = args.tau
    if args.finetune_steps:
        result["before_finetune"] = evaluate_fused(fused, args.tau)
        result["finetune_l1"] = finetune_fused(
            fused, args.tau, args.finetune_steps, args.finetune_lr, args.batch_size, args.length
        )
        fused.requires_grad_(False).eval()
    result.update(evaluate_fused(fused, args.tau))
    result["seconds"] = round(time.time() - start, 1)
    args_given = argv if argv is not None else sys.argv[1:]
    result["command"] = "python benchmarks/train_sdn.py " + " ".join(args_given)
    met = result["agreement"] >= TARGET_AGREEMENT and result["mae"] <= TARGET_MAE
    result["targets_met"] = met
    if met or args.force:
        out = args.out or pretrained_path(args.tau)
        fused.save(out)
        result["written"] = str(out)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
