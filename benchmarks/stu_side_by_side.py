"""Side by side: lindy's STU against google-deepmind/spectral_ssm's (JAX/Haiku), trained alike on real MNIST.

The reference side is spectral_ssm's own network, ``model.Architecture`` as shipped (Linear embedding; per
block: BatchNorm (decay 0.9), STU (K = 24, k_u = 3, k_y = 2, learnable M_y), GELU (tanh form), dropout,
Linear(H, 2H), GLU, dropout, residual; mean over time; Linear head), trained with its own optimiser
(``optimizer.get_optimizer``: AdamW, weight decay 0.1 on every parameter but M_y, M_y at its own lr 5e-5
and no decay, linear warmup from 1e-7 then cosine to 1e-7) and its ``pmap``/``pmean`` step on one CPU
device. The lindy side is the same network written in torch around lindy's ``STU``, built from the
reference's initial parameters (``lindy.interop.stu_from_spectral_ssm`` with the reference's own
eigenvectors; the other weights copied), trained with torch's AdamW under the same groups and the same
schedule. Same seed -> the same initial function; the start check compares the logits on the first batch
(train mode, dropout off: BatchNorm on batch statistics) and the gradients of the embedding and the head.
Same batches in the same order; the dropout masks differ (each framework draws its own). Then test
accuracy (eval mode: each side's running BatchNorm statistics) and the final train loss.

Data as ``side_by_side.py``: lindy's offline real-MNIST subset ``smnist_embedded`` (4000 train / 500
test), every ``--stride``-th pixel (stride 4: L = 196, the reference's ``input_len``).

    python benchmarks/stu_side_by_side.py --reference-root spectral_ssm_checkout --seeds 0 1 2 \\
        --steps 300 --out benchmarks/results/side_by_side_stu.jsonl

``--reference-root``: a checkout of google-deepmind/spectral_ssm (the folder holding the package
``spectral_ssm/``; code Apache-2.0, imported at run time, never copied into lindy). Needs
``pip install jax jaxlib dm-haiku optax chex`` (benchmark only; not a lindy dependency).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from side_by_side import accuracy, batch_order, fit, load_data, lockstep, mean_std
from torch import Tensor, nn

from lindy.interop.stu import stu_from_spectral_ssm

SIDES = ("reference", "lindy")
NUM_EIGH = 24  # the filters per STU: model.Architecture's default, left as shipped


class ReferenceMissing(RuntimeError):
    pass


def load_reference(root: Path | None):
    """spectral_ssm's ``model``, ``optimizer`` and ``stu_utils`` modules from a checkout at ``root``."""
    if root is None or not (Path(root) / "spectral_ssm" / "model.py").is_file():
        raise ReferenceMissing(
            "--reference-root must be a checkout of google-deepmind/spectral_ssm holding "
            f"spectral_ssm/model.py (got {root})"
        )
    try:
        import haiku  # noqa: F401
        import jax  # noqa: F401
        import optax  # noqa: F401
    except ImportError as exc:
        raise ReferenceMissing(f"the reference needs jax, dm-haiku, optax and chex: {exc}") from exc
    sys.path.insert(0, str(root))
    from spectral_ssm import model, optimizer, stu_utils

    return model, optimizer, stu_utils


class Network(nn.Module):
    """spectral_ssm's ``Architecture`` in torch around lindy STUs: x (B, L, d_in) -> logits (B, classes)."""

    def __init__(self, stus: list[nn.Module], d_in: int, width: int, classes: int, dropout: float):
        super().__init__()
        self.embed = nn.Linear(d_in, width)
        self.norms = nn.ModuleList(nn.BatchNorm1d(width, eps=1e-5, momentum=0.1) for _ in stus)  # decay 0.9
        self.stus = nn.ModuleList(stus)
        self.mixes = nn.ModuleList(nn.Linear(width, 2 * width) for _ in stus)
        self.head = nn.Linear(width, classes)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = self.embed(x)
        for norm, stu, mix in zip(self.norms, self.stus, self.mixes):
            z = x
            x = norm(x.transpose(1, 2)).transpose(1, 2)
            x = self.dropout(F.gelu(stu(x), approximate="tanh"))  # jax.nn.gelu's default form
            x = self.dropout(F.glu(mix(x), -1))
            x = x + z
        return self.head(x.mean(1))


def _t(a) -> Tensor:
    return torch.from_numpy(np.array(a, dtype=np.float32))


def lindy_network(params: dict, stu_utils, *, d_in, width, classes, layers, length, dropout) -> Network:
    """The torch network with the reference's (unreplicated) Haiku parameters."""

    def name(base: str, i: int) -> str:
        return f"architecture/{base}" + (f"_{i}" if i else "")

    eigh = stu_utils.get_top_hankel_eigh(length, NUM_EIGH)
    stus = [
        stu_from_spectral_ssm(params[name("stu", i)], input_len=length, num_eigh=NUM_EIGH, eigh=eigh)
        for i in range(layers)
    ]
    net = Network(stus, d_in, width, classes, dropout)

    def linear(module: nn.Linear, p: dict) -> None:
        module.weight.copy_(_t(p["w"]).T)
        module.bias.copy_(_t(p["b"]))

    with torch.no_grad():
        linear(net.embed, params[name("linear", 0)])
        for i in range(layers):
            net.norms[i].weight.copy_(_t(params[name("batch_norm", i)]["scale"]).reshape(-1))
            net.norms[i].bias.copy_(_t(params[name("batch_norm", i)]["offset"]).reshape(-1))
            linear(net.mixes[i], params[name("linear", i + 1)])
        linear(net.head, params[name("linear", layers + 1)])
    return net


def warmup_cosine(itr: int, peak: float, steps: int, warmup: int, floor: float = 1e-7) -> float:
    """The reference's ``WarmupCosineDecay`` (start and end 1e-7) at update ``itr``."""
    if itr <= warmup:
        return (peak - floor) * itr / warmup + floor
    return 0.5 * (peak - floor) * (1 + math.cos(math.pi * (itr - warmup) / (steps - warmup))) + floor


class ReferenceSide:
    """The reference network, optimiser and pmap'd train step (one device), as its experiment.py runs them."""

    def __init__(self, refs, *, seed, width, classes, layers, length, dropout, steps, warmup, lr, m_y_lr, x0):
        import haiku as hk
        import jax

        model, optimizer, _ = refs
        self.jax = jax

        def net(rate):
            def fwd(x, is_training):
                arch = model.Architecture(
                    d_model=width, d_target=classes, num_layers=layers, dropout=rate, input_len=length
                )
                return arch(x, is_training=is_training)[:, 0, :]

            return hk.transform_with_state(fwd)

        self.fwd, self.fwd_no_dropout = net(dropout), net(0.0)
        self.opt = optimizer.get_optimizer(
            num_steps=steps, warmup_steps=warmup, learning_rate=lr, weight_decay=0.1, m_y_learning_rate=m_y_lr
        )
        self.key = jax.random.PRNGKey(seed)
        init = jax.pmap(lambda r, x: self.fwd.init(r, x, True), axis_name="i")
        self.params, self.state = init(self.key[None], x0[None])
        self.opt_state = jax.pmap(self.opt.init, axis_name="i")(self.params)
        self._step = jax.pmap(self._train_step, axis_name="i")

    def _loss(self, fwd, params, state, rng, x, y):
        import optax

        logits, state = fwd.apply(params, state, rng, x, True)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), (state, logits)

    def _train_step(self, params, state, opt_state, rng, x, y):
        import optax

        jax = self.jax
        grad_fn = jax.value_and_grad(lambda p: self._loss(self.fwd, p, state, rng, x, y), has_aux=True)
        (loss, (state, _)), grads = grad_fn(params)
        grads = jax.lax.pmean(grads, axis_name="i")
        updates, opt_state = self.opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), state, opt_state, loss

    def unreplicated(self) -> dict:
        return self.jax.tree_util.tree_map(lambda a: np.asarray(a[0]), self.params)

    def check(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float, dict]:
        """Train-mode logits (dropout off), loss and gradients on one batch (pmap'd: BatchNorm's pmean)."""
        jax = self.jax

        def value_grad(params, state, rng, x, y):
            fn = lambda p: self._loss(self.fwd_no_dropout, p, state, rng, x, y)  # noqa: E731
            (loss, (_, logits)), grads = jax.value_and_grad(fn, has_aux=True)(params)
            return logits, loss, grads

        logits, loss, grads = jax.pmap(value_grad, axis_name="i")(
            self.params, self.state, self.key[None], x[None], y[None]
        )
        grads = jax.tree_util.tree_map(lambda a: np.asarray(a[0]), grads)
        return np.asarray(logits[0]), float(loss[0]), grads

    def train(self, x: np.ndarray, y: np.ndarray, order: Tensor) -> list[float]:
        losses = []
        for i, idx in enumerate(order.numpy()):
            rng = self.jax.random.fold_in(self.key, i)[None]
            self.params, self.state, self.opt_state, loss = self._step(
                self.params, self.state, self.opt_state, rng, x[idx][None], y[idx][None]
            )
            losses.append(float(loss[0]))
            if not math.isfinite(losses[-1]):
                break
        return losses

    def accuracy(self, x: np.ndarray, y: np.ndarray, batch: int = 250) -> float:
        # the reference's STU draws M_u's initial value whenever it is built, so apply needs a key
        apply = self.jax.pmap(lambda p, s, r, xb: self.fwd.apply(p, s, r, xb, False)[0], axis_name="i")
        key = self.key[None]
        right = 0
        for i in range(0, len(x), batch):
            logits = np.asarray(apply(self.params, self.state, key, x[None, i : i + batch])[0])
            right += int((logits.argmax(1) == y[i : i + batch]).sum())
        return right / len(x)


def train_lindy(net: Network, x: Tensor, y: Tensor, order: Tensor, *, steps, warmup, lr, m_y_lr, seed):
    """torch AdamW with the reference's groups (M_y: own lr, no decay; the rest: decay 0.1) and schedule."""
    m_y = [p for n, p in net.named_parameters() if n.endswith("M_y")]
    rest = [p for n, p in net.named_parameters() if not n.endswith("M_y")]
    groups = [
        {"params": rest, "lr": lr, "weight_decay": 0.1},
        {"params": m_y, "lr": m_y_lr, "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, betas=(0.9, 0.999), eps=1e-8)
    peaks = [lr, m_y_lr]

    def set_lr(i: int) -> None:
        for group, peak in zip(opt.param_groups, peaks):
            group["lr"] = warmup_cosine(i, peak, steps, warmup)

    torch.manual_seed(seed)  # the dropout masks
    return fit(net, opt, x, y, order, set_lr)


def start_check(ref: ReferenceSide, net: Network, x: Tensor, y: Tensor, tol: float) -> dict:
    logits_ref, loss_ref, grads = ref.check(x.numpy(), y.numpy())
    p = net.dropout.p
    net.dropout.p = 0.0
    net.train()
    net.zero_grad(set_to_none=True)
    logits = net(x)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    net.dropout.p = p
    rel = {}
    head = f"architecture/linear_{len(net.stus) + 1}"
    for mine, theirs in ((net.embed, "architecture/linear"), (net.head, head)):
        g_ref = _t(grads[theirs]["w"]).T
        rel[theirs] = ((mine.weight.grad - g_ref).abs().max() / g_ref.abs().max().clamp_min(1e-30)).item()
    net.zero_grad(set_to_none=True)
    out = {
        "tol": tol,
        "train_max_abs": float(np.abs(logits.detach().numpy() - logits_ref).max()),
        "loss_diff": abs(loss.item() - loss_ref),
        "grad_max_rel": max(rel.values()),
    }
    out["ok"] = bool(out["train_max_abs"] <= tol and out["grad_max_rel"] <= 1e-3)
    return out


def run_seed(refs, data, seed: int, args) -> list[dict]:
    classes = int(data["y_train"].max()) + 1
    length = data["x_train"].shape[1]
    warmup = max(1, round(args.warmup_fraction * args.steps))
    order = batch_order(len(data["x_train"]), args.batch, args.steps, seed)
    x_np, y_np = data["x_train"].numpy(), data["y_train"].numpy()
    ref = ReferenceSide(
        refs, seed=seed, width=args.width, classes=classes, layers=args.layers, length=length,
        dropout=args.dropout, steps=args.steps, warmup=warmup, lr=args.lr, m_y_lr=args.m_y_lr,
        x0=x_np[order[0].numpy()],
    )  # fmt: skip
    net = lindy_network(
        ref.unreplicated(), refs[2], d_in=data["x_train"].shape[-1], width=args.width, classes=classes,
        layers=args.layers, length=length, dropout=args.dropout,
    )  # fmt: skip
    check = start_check(ref, net, data["x_train"][order[0]], data["y_train"][order[0]], args.tol)
    print(f"# stu seed {seed} start check: {json.dumps(check)}", flush=True)
    rows, curves = [], []
    tail = min(20, args.steps)
    for side in SIDES:
        start = time.perf_counter()
        if side == "reference":
            losses = ref.train(x_np, y_np, order)
            acc = ref.accuracy(data["x_test"].numpy(), data["y_test"].numpy())
        else:
            losses = train_lindy(
                net, data["x_train"], data["y_train"], order, steps=args.steps, warmup=warmup, lr=args.lr,
                m_y_lr=args.m_y_lr, seed=seed,
            )  # fmt: skip
            acc = accuracy(net, data["x_test"], data["y_test"])
        wall = time.perf_counter() - start
        curves.append(losses)
        rows.append(
            dict(
                family="stu", side=side, layer="spectral_ssm.STU" if side == "reference" else "lindy.STU",
                seed=seed, test_acc=acc, final_train_loss=statistics.fmean(losses[-tail:]),
                first_loss=losses[0], diverged=len(losses) < args.steps or not math.isfinite(losses[-1]),
                loss_curve=[round(v, 4) for v in losses[:: max(1, args.steps // 50)]],
                wall_s=round(wall, 1), s_per_step=round(wall / len(losses), 4), start_check=check,
                steps=args.steps, batch=args.batch, lr=args.lr, m_y_lr=args.m_y_lr, warmup=warmup,
                dropout=args.dropout, width=args.width, layers=args.layers, stride=args.stride, length=length,
                threads=args.threads, torch=torch.__version__,
            )
        )  # fmt: skip
        print(f"# stu seed {seed} {side}: test acc {acc:.4f}, final loss {rows[-1]['final_train_loss']:.4f}")
    steps = lockstep(*curves)
    for row in rows:
        row["lockstep_steps"] = steps
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    out = []
    for side in SIDES:
        mine = [r for r in rows if r["side"] == side]
        acc, loss = mean_std([r["test_acc"] for r in mine]), mean_std([r["final_train_loss"] for r in mine])
        out.append(
            dict(
                summary=True, family="stu", side=side, layer=mine[0]["layer"],
                seeds=[r["seed"] for r in mine], test_acc_mean=acc[0], test_acc_std=acc[1],
                final_train_loss_mean=loss[0], final_train_loss_std=loss[1],
                start_checks_ok=all(r["start_check"]["ok"] for r in mine),
            )
        )  # fmt: skip
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reference-root", type=Path, help="a checkout of google-deepmind/spectral_ssm")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3, help="peak lr (the reference's 5e-4 is for 180k steps)")
    ap.add_argument("--m-y-lr", type=float, default=5e-5, help="M_y's peak lr (the reference's)")
    ap.add_argument("--warmup-fraction", type=float, default=0.1, help="the reference's 18k of 180k steps")
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--stride", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tol", type=float, default=1e-4, help="start check: max |logit difference|")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    refs = load_reference(args.reference_root)
    data = load_data(args.stride)
    rows = []
    for seed in args.seeds:
        rows += run_seed(refs, data, seed, args)
        with args.out.open("a") as f:
            for row in rows[-2:]:
                f.write(json.dumps(row) + "\n")
    summary = summarize(rows)
    with args.out.open("a") as f:
        for s in summary:
            f.write(json.dumps(s) + "\n")
    print("| side | layer | seeds | test acc (mean ± std) | final train loss (mean ± std) | same start |")
    print("|---|---|---|---|---|---|")
    for s in summary:
        print(
            f"| {s['side']} | {s['layer']} | {len(s['seeds'])} "
            f"| {s['test_acc_mean']:.4f} ± {s['test_acc_std']:.4f} "
            f"| {s['final_train_loss_mean']:.4f} ± {s['final_train_loss_std']:.4f} "
            f"| {'yes' if s['start_checks_ok'] else 'NO'} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
