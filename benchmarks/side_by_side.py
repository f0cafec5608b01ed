"""Side by side: lindy's layers against the official reference layers, trained the same way on real MNIST.

One small classifier, built twice, differing only in its sequence layer:

    x (B, L, 1) -> Linear(1, H) -> n_layers x [h = h + layer(LayerNorm(h))] -> mean over L -> Linear(H, 10)

once with the reference layer (``--family spiking_ssm``: shenshuaijie/SDN's ``SS4D``; ``--family ldnn``:
leonty1/DeepLDNN's ``SSM``; both run ``transposed=True``: (B, H, L) in, (y, state) out), once with lindy's
(``SpikingSSM`` / ``LDNN``: (B, L, H) -> (B, L, H)). Same seed -> the same encoder, norms and decoder (the
lindy model's are copied from the reference model's); lindy's layers are loaded from the reference layers'
initial state dicts by ``lindy.interop`` (``spikingssm_from_reference`` with the reference's own SDN file,
``ldnn_from_reference``), so both sides start from the same function. The start check, printed and stored,
compares on the first training batch the logits (eval and train mode: max |diff| and the fraction of
examples whose 10 logits all agree within ``--tol``) and the gradients of the shared encoder/norms/decoder
after one backward (max |diff| / max |grad|).

Training, identical for both sides: AdamW at a constant lr; parameter groups from each parameter's
``_optim`` hint (both code bases attach one to their SSM parameters): the hinted lr and weight decay where
hinted (0 weight decay when the hint names none), else the global lr, with ``--weight-decay`` on Linear and
Conv weights only; the same batches in the same order (one torch.Generator per seed), the same steps. Then
test accuracy, and the final train loss (mean of the last ``min(20, steps)`` steps).

Data: lindy's offline real-MNIST subset ``smnist_embedded`` (4000 train / 500 test images, 784 steps of one
pixel), every ``--stride``-th pixel (stride 4: L = 196). Its test split comes from MNIST's training images.

The reference code is imported at run time from the reference harness's cache (filled by its
``extract.sh``; never copied into lindy), with the harness's own loaders (``bench_anchors.py`` beside the
cache: ``use_anchor``, ``load_ldnn``).

    python benchmarks/side_by_side.py --family spiking_ssm --seeds 0 1 2 --steps 300 --out ss.jsonl
    python benchmarks/side_by_side.py --family ldnn --seeds 0 1 2 --steps 300 --out ldnn.jsonl

JSON lines go to ``--out`` (one per side and seed, then one summary per side); a markdown table is printed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import statistics
import sys
import time
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = ROOT.parent / "shared" / "bench-references" / ".cache"
FAMILIES = {"spiking_ssm": "spikingssm", "ldnn": "ldnn"}  # family -> the harness's anchor folder
# top-level names the reference trees import (they all call their package ``src``); forgotten after a build
REFERENCE_PACKAGES = {"src", "models", "model", "ldnn_multihead_A_complex"}
SIDES = ("reference", "lindy")


class ReferenceMissing(RuntimeError):
    pass


# ----------------------------------------------------------------------------------------------------
# the reference layers, through the harness's loaders
# ----------------------------------------------------------------------------------------------------
@cache
def load_harness(cache_dir: Path, family: str):
    """The harness module (``bench_anchors.py`` beside ``cache_dir``), once the family's anchor is there."""
    script, anchor = cache_dir.parent / "bench_anchors.py", cache_dir / FAMILIES[family]
    if not script.is_file() or not anchor.is_dir():
        raise ReferenceMissing(
            f"reference cache folder {anchor} (or the harness {script}) is missing: put git copies of "
            f"shenshuaijie/SDN, state-spaces/s4 and leonty1/DeepLDNN in a folder MIRROR and run "
            f"`bash {cache_dir.parent / 'extract.sh'} MIRROR` (see {cache_dir.parent / 'README.md'})"
        )
    spec = importlib.util.spec_from_file_location("bench_anchors_side_by_side", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextmanager
def reference_imports():
    """Let a reference tree put itself on sys.path and import its ``src``/``models``, then forget them.

    The built classes keep their modules' globals, so they still run; forgetting the names lets the other
    family (another tree, also called ``src``) load in the same process, as the test does.
    """
    path, before = list(sys.path), set(sys.modules)
    try:
        yield
    finally:
        sys.path[:] = path
        for name in set(sys.modules) - before:
            if name.split(".")[0] in REFERENCE_PACKAGES:
                del sys.modules[name]


def reference_config(family: str, width: int, d_state: int | None, heads: int | None, harness) -> dict:
    """The harness's layer configs (build_ss4d, build_ldnn), at this width."""
    if family == "spiking_ssm":
        # configs/experiment/spikingssm/pminst.yaml's layer (d_state 64, lr 0.001), SDN neuron, dropout 0
        return dict(neuron="sdn", d_state=d_state or 64, dropout=0.0, transposed=True, lr=0.001)
    # configs/experiment/ldnn-ssm-sc.yaml's layer: h = n per head (d_s = H), half_glu1, HiPPO init
    heads = heads or max(1, width // 4)
    d_s = d_state or width
    if width % heads or d_s % heads:
        raise ValueError(f"--heads {heads} must divide the width {width} and the state size {d_s}")
    return dict(
        d_s=d_s, head=heads, bidirectional=False, Lambda_init="hippo", B_init="hippo",
        C_init="trunc_normal", D_init="one", D_value=1, conj_sym=True, keep_d_state=True, d_dt_is_n=True,
        activation=None, acttivation_post="half_glu1", transposed=True, lr=dict(harness.LDNN_LR),
    )  # fmt: skip


def reference_factory(family: str, cache_dir: Path, config: dict):
    """A function width -> one reference layer built with ``config`` (its init draws from the global RNG)."""
    harness = load_harness(cache_dir, family)
    with reference_imports():
        if family == "spiking_ssm":
            harness.use_anchor(str(cache_dir), "spikingssm")
            from models.spike.ss4d import SS4D  # the reference tree, on sys.path now

            layer_class = SS4D
        else:
            layer_class = harness.load_ldnn(str(cache_dir)).SSM
    width_key = "d_model" if family == "spiking_ssm" else "d_input"
    return lambda width: own_memory(layer_class(**{width_key: width}, **config))


def own_memory(layer: nn.Module) -> nn.Module:
    """Give every non-contiguous parameter its own contiguous memory, as ``.cuda()`` does on a GPU.

    DeepLDNN registers ``B.cuda()`` where B is an ``expand``ed view (stride 0 over channel and head); the
    harness's CPU stand-in makes ``.cuda()`` the identity, so the parameter's elements would share memory
    and AdamW's in-place update refuses it. A real ``.cuda()`` copies into fresh contiguous memory; so
    does this (same values, same Parameter object and ``_optim`` hint).
    """
    for p in layer.parameters():
        if not p.is_contiguous():
            p.data = p.data.contiguous()
    return layer


def lindy_layer(family: str, reference: nn.Module, width: int, config: dict, cache_dir: Path, sdn: str):
    """lindy's layer with the reference layer's current weights, through ``lindy.interop``."""
    from lindy.interop import ldnn_from_reference, spikingssm_from_reference

    state = {k: v.detach().clone() for k, v in reference.state_dict().items()}
    if family == "ldnn":
        return ldnn_from_reference(state, d_input=width, **config)
    # the reference neuron's own file (SDNNeuron.ckt_path, beside its neuron.py), unless lindy's is asked for
    sdn_path = None
    if sdn == "reference":
        sdn_path = cache_dir / FAMILIES[family] / "src" / "models" / "spike" / reference.neuron.ckt_path
    return spikingssm_from_reference(state, sdn_path=sdn_path, d_model=width, **config)


# ----------------------------------------------------------------------------------------------------
# the model, built twice
# ----------------------------------------------------------------------------------------------------
class Classifier(nn.Module):
    """Linear encoder -> pre-norm residual sequence layers -> mean over time -> Linear decoder."""

    def __init__(self, layers: list[nn.Module], d_in: int, width: int, classes: int, channels_first: bool):
        super().__init__()
        self.encoder = nn.Linear(d_in, width)
        self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in layers)
        self.layers = nn.ModuleList(layers)
        self.decoder = nn.Linear(width, classes)
        self.channels_first = channels_first  # the references: (B, H, L) in, (y, state) out

    def forward(self, x: Tensor) -> Tensor:
        h = self.encoder(x)  # (B, L, H)
        for norm, layer in zip(self.norms, self.layers):
            z = norm(h)
            z = layer(z.transpose(1, 2))[0].transpose(1, 2) if self.channels_first else layer(z)
            h = h + z  # dropout 0 on the residual branch
        return self.decoder(h.mean(1))


SHARED = ("encoder", "norms", "decoder")


def build_pair(family, cache_dir, *, seed, d_in, width, n_layers, classes, d_state=None, heads=None,
               sdn="reference") -> tuple[Classifier, Classifier, dict]:  # fmt: skip
    """(reference model, lindy model, reference layer config): same shell, same layer weights."""
    config = reference_config(family, width, d_state, heads, load_harness(cache_dir, family))
    make = reference_factory(family, cache_dir, config)
    torch.manual_seed(seed)
    ref = Classifier([make(width) for _ in range(n_layers)], d_in, width, classes, channels_first=True)
    ours_layers = [lindy_layer(family, layer, width, config, cache_dir, sdn) for layer in ref.layers]
    ours = Classifier(ours_layers, d_in, width, classes, channels_first=False)
    for name in SHARED:
        getattr(ours, name).load_state_dict(getattr(ref, name).state_dict())
    return ref, ours, config


def param_groups(model: nn.Module, lr: float, weight_decay: float) -> list[dict]:
    """AdamW groups: hinted (``_optim``) lr and weight decay, else lr; weight decay on Linear/Conv weights."""
    groups: dict[tuple[float, float], list] = {}
    for module in model.modules():
        if isinstance(module, torch.jit.ScriptModule):
            continue  # the reference's TorchScript SDN: used under no_grad, never gets a gradient
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            hint = getattr(p, "_optim", None)
            if hint is not None:
                key = (hint.get("lr", lr), hint.get("weight_decay", 0.0))
            elif isinstance(module, (nn.Linear, nn.Conv1d)) and name == "weight":
                key = (lr, weight_decay)
            else:
                key = (lr, 0.0)
            groups.setdefault(key, []).append(p)
    return [{"params": ps, "lr": k[0], "weight_decay": k[1]} for k, ps in sorted(groups.items())]


def describe_groups(groups: list[dict]) -> list[list]:
    """[[lr, weight decay, number of tensors, number of scalars], ...] for the record."""
    return [
        [g["lr"], g["weight_decay"], len(g["params"]), sum(p.numel() for p in g["params"])] for g in groups
    ]


# ----------------------------------------------------------------------------------------------------
# the start check, training, evaluation
# ----------------------------------------------------------------------------------------------------
def start_check(ref: Classifier, ours: Classifier, x: Tensor, y: Tensor, tol: float) -> dict:
    """Logit agreement (eval and train mode) and shared-gradient agreement on one batch."""
    out = {"tol": tol}
    for mode in ("eval", "train"):
        for m in (ref, ours):
            m.train(mode == "train")
        with torch.no_grad():
            diff = (ref(x) - ours(x)).abs()
        out[f"{mode}_max_abs"] = diff.max().item()
        out[f"{mode}_examples_equal"] = (diff.amax(1) <= tol).double().mean().item()
    grads = []
    for m in (ref, ours):
        m.zero_grad(set_to_none=True)
        F.cross_entropy(m(x), y).backward()
        grads.append({n: p.grad.clone() for n, p in m.named_parameters() if n.split(".")[0] in SHARED})
        m.zero_grad(set_to_none=True)
    out["grad_max_rel"] = max(
        ((grads[0][n] - grads[1][n]).abs().max() / grads[0][n].abs().max().clamp_min(1e-30)).item()
        for n in grads[0]
    )
    out["ok"] = bool(
        out["eval_max_abs"] <= tol and out["train_max_abs"] <= tol and out["grad_max_rel"] <= 1e-3
    )
    return out


def batch_order(n: int, batch: int, steps: int, seed: int) -> Tensor:
    """(steps, batch) indices: shuffled epochs from one generator seeded with ``seed``, back to back."""
    gen = torch.Generator().manual_seed(seed)
    epochs = math.ceil(steps * batch / n)
    return torch.cat([torch.randperm(n, generator=gen) for _ in range(epochs)])[: steps * batch].view(
        steps, batch
    )


def train(model: nn.Module, x: Tensor, y: Tensor, order: Tensor, lr: float, weight_decay: float) -> dict:
    """AdamW over the given batches; the per-step losses (stops at a non-finite loss)."""
    groups = param_groups(model, lr, weight_decay)
    start = time.perf_counter()
    losses = fit(model, torch.optim.AdamW(groups, lr=lr), x, y, order)
    seconds = time.perf_counter() - start
    return {"losses": losses, "wall_s": seconds, "groups": describe_groups(groups)}


def fit(model: nn.Module, opt, x: Tensor, y: Tensor, order: Tensor, before_step=None) -> list[float]:
    """Cross-entropy steps of ``opt`` over the given batches (``before_step(i)`` first, e.g. to set the
    lr); the per-step losses, stopping at a non-finite one."""
    model.train()
    losses = []
    for i, idx in enumerate(order):
        if before_step is not None:
            before_step(i)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if not math.isfinite(losses[-1]):
            break
    return losses


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor, batch: int = 250) -> float:
    model.eval()
    right = sum(
        (model(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum().item() for i in range(0, len(x), batch)
    )
    return right / len(x)


def load_data(stride: int) -> dict[str, Tensor]:
    """smnist_embedded's train and test splits as tensors, every ``stride``-th pixel."""
    from lindy.data.base import build_data

    splits = build_data("smnist_embedded")
    out = {}
    for split in ("train", "test"):
        x, y = getattr(splits, split).tensors
        out[f"x_{split}"], out[f"y_{split}"] = x[:, ::stride].contiguous().float(), y
    return out


def run_seed(family, cache_dir, data, seed, args) -> list[dict]:
    """Both sides at one seed: the start check, then the same training; one record per side."""
    classes = int(data["y_train"].max()) + 1
    ref, ours, config = build_pair(
        family, cache_dir, seed=seed, d_in=data["x_train"].shape[-1], width=args.width, n_layers=args.layers,
        classes=classes, d_state=args.d_state, heads=args.heads, sdn=args.sdn,
    )  # fmt: skip
    order = batch_order(len(data["x_train"]), args.batch, args.steps, seed)
    check = start_check(ref, ours, data["x_train"][order[0]], data["y_train"][order[0]], args.tol)
    print(f"# {family} seed {seed} start check: {json.dumps(check)}", flush=True)
    if not check["ok"]:
        print(
            f"# WARNING: {family} seed {seed}: the two models do not start from the same function", flush=True
        )
    harness = load_harness(cache_dir, family)
    commit = harness.anchor_commit(str(cache_dir), FAMILIES[family])
    tail = min(20, args.steps)
    sdn = args.sdn if family == "spiking_ssm" else None
    rows, curves = [], []
    for side, model in zip(SIDES, (ref, ours)):
        res = train(model, data["x_train"], data["y_train"], order, args.lr, args.weight_decay)
        losses = res["losses"]
        curves.append(losses)
        rows.append(
            dict(
                family=family, side=side, layer=type(model.layers[0]).__name__, seed=seed,
                test_acc=accuracy(model, data["x_test"], data["y_test"]),
                final_train_loss=statistics.fmean(losses[-tail:]), first_loss=losses[0],
                diverged=len(losses) < args.steps or not math.isfinite(losses[-1]),
                loss_curve=[round(v, 4) for v in losses[:: max(1, args.steps // 50)]],
                wall_s=round(res["wall_s"], 1), s_per_step=round(res["wall_s"] / len(losses), 4),
                groups=res["groups"], start_check=check, steps=args.steps, batch=args.batch, lr=args.lr,
                weight_decay=args.weight_decay, width=args.width, layers=args.layers, stride=args.stride,
                length=data["x_train"].shape[1], threads=args.threads, sdn=sdn,
                config={k: v for k, v in config.items() if k != "transposed"}, reference_commit=commit,
                torch=torch.__version__,
            )
        )  # fmt: skip
        print(
            f"# {family} seed {seed} {side}: test acc {rows[-1]['test_acc']:.4f}, final train loss "
            f"{rows[-1]['final_train_loss']:.4f}, {rows[-1]['s_per_step']:.3f} s/step",
            flush=True,
        )
    steps = lockstep(*curves)
    for row in rows:
        row["lockstep_steps"] = steps
    print(f"# {family} seed {seed}: the two sides' losses agree (rel 1e-4) for the first {steps} steps")
    return rows


def lockstep(a: list[float], b: list[float], rel: float = 1e-4) -> int:
    """How many first steps the two loss curves agree to ``rel``: where rounding (or a spike flip) shows."""
    for i, (u, v) in enumerate(zip(a, b)):
        if not abs(u - v) <= rel * max(1.0, abs(u)):
            return i
    return min(len(a), len(b))


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarize(rows: list[dict]) -> list[dict]:
    out = []
    for side in SIDES:
        mine = [r for r in rows if r["side"] == side]
        if not mine:
            continue
        acc, loss = mean_std([r["test_acc"] for r in mine]), mean_std([r["final_train_loss"] for r in mine])
        out.append(
            dict(
                summary=True, family=mine[0]["family"], side=side, layer=mine[0]["layer"],
                seeds=[r["seed"] for r in mine], test_acc_mean=acc[0], test_acc_std=acc[1],
                final_train_loss_mean=loss[0], final_train_loss_std=loss[1],
                s_per_step_mean=statistics.fmean(r["s_per_step"] for r in mine),
                start_checks_ok=all(r["start_check"]["ok"] for r in mine),
            )
        )  # fmt: skip
    return out


def table(summary: list[dict], rows: list[dict]) -> str:
    lines = [
        "| family | side | layer | seeds | test acc (mean ± std) | final train loss (mean ± std) "
        "| test acc per seed | s/step | same start | steps in lockstep |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summary:
        mine = [r for r in rows if r["side"] == s["side"]]
        per_seed = ", ".join(f"{r['test_acc']:.3f}" for r in mine)
        lock = ", ".join(f"{r['lockstep_steps']}/{r['steps']}" for r in mine)
        lines.append(
            f"| {s['family']} | {s['side']} | {s['layer']} | {len(s['seeds'])} "
            f"| {s['test_acc_mean']:.4f} ± {s['test_acc_std']:.4f} "
            f"| {s['final_train_loss_mean']:.4f} ± {s['final_train_loss_std']:.4f} | {per_seed} "
            f"| {s['s_per_step_mean']:.3f} | {'yes' if s['start_checks_ok'] else 'NO'} | {lock} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--family", choices=sorted(FAMILIES), required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3, help="global lr (hinted SSM parameters keep theirs)")
    ap.add_argument("--weight-decay", type=float, default=0.01, help="on Linear/Conv weights only")
    ap.add_argument("--width", type=int, default=64, help="H, the model width")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--d-state", type=int, default=None, help="default: 64 (spiking_ssm), the width (ldnn)")
    ap.add_argument("--heads", type=int, default=None, help="ldnn heads (default width // 4: h = n = 4)")
    ap.add_argument(
        "--sdn",
        choices=["reference", "lindy"],
        default="reference",
        help="spiking_ssm: lindy's neuron with the reference's SDN file (same start) or lindy's own SDN",
    )
    ap.add_argument("--stride", type=int, default=4, help="keep every stride-th pixel (L = 784 / stride)")
    ap.add_argument("--tol", type=float, default=1e-4, help="start check: max |logit difference|")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="", help="also write the JSON lines here")
    ap.add_argument("--cache", default=str(DEFAULT_CACHE), help="the reference harness's .cache folder")
    args = ap.parse_args(argv)
    if min(args.steps, args.batch, args.width, args.layers, args.stride, args.threads) < 1:
        ap.error("--steps, --batch, --width, --layers, --stride and --threads must be >= 1")
    torch.set_num_threads(args.threads)
    cache_dir = Path(args.cache).resolve()
    try:
        load_harness(cache_dir, args.family)
    except ReferenceMissing as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    data = load_data(args.stride)
    rows = [row for seed in args.seeds for row in run_seed(args.family, cache_dir, data, seed, args)]
    summary = summarize(rows)
    if args.out:
        with open(args.out, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows + summary)
    print(table(summary, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
