"""What determines a run's result: its configuration fingerprint, and which settings may change on resume.

A run is its resolved config minus two kinds of key:
    WHERE  where it is written and how it was started (run_root, run_dir, resume, overwrite): never compared;
    SAFE   settings that may change when a run is resumed (more steps or epochs, eval / log / checkpoint
           intervals, threads, loader workers, progress and logger output, data.root): compared, and a
           change is recorded in the run's history, never as if it had been there from the start.
Everything else (model, layer, data, optimiser, schedule, seed, batch, precision, device, ...) is the
fingerprint: ``trainer.resume=auto`` only continues a run whose fingerprint is this config's, and a resume
that changes any of it is refused, naming the keys and both values.
"""

from __future__ import annotations

import hashlib
import json

from omegaconf import DictConfig, OmegaConf

WHERE = {"trainer.run_root", "trainer.run_dir", "trainer.resume", "trainer.overwrite"}
SAFE = {
    "trainer.max_epochs",
    "trainer.max_steps",
    "trainer.eval_every_steps",
    "trainer.log_every_steps",
    "trainer.checkpoint_every_steps",
    "trainer.threads",
    "trainer.progress",
    "trainer.tensorboard",
    "trainer.wandb",
    "loader.num_workers",
    "data.root",
}
MISSING = "(absent)"


def flatten(cfg) -> dict:
    """{dotted key: value} of a config (a DictConfig, a dict or YAML text); lists are values."""
    if isinstance(cfg, str):
        cfg = OmegaConf.create(cfg)
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    out: dict = {}

    def walk(node, prefix):
        for k, v in node.items():
            if isinstance(v, dict) and v:
                walk(v, f"{prefix}{k}.")
            else:
                out[f"{prefix}{k}"] = v

    walk(cfg, "")
    return out


def result_keys(flat: dict) -> dict:
    """The keys that determine the result (neither WHERE nor SAFE), sorted."""
    return {k: flat[k] for k in sorted(flat) if k not in WHERE and k not in SAFE and k != "resume_history"}


def fingerprint(cfg) -> str:
    """A short hash of the keys that determine the result."""
    text = json.dumps(result_keys(flatten(cfg)), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def differences(old, new, keys=None) -> dict:
    """{key: (old value, new value)} where two configs differ (restricted to ``keys`` when given)."""
    a, b = flatten(old), flatten(new)
    names = sorted(set(a) | set(b)) if keys is None else sorted(keys)
    return {
        k: (a.get(k, MISSING), b.get(k, MISSING)) for k in names if a.get(k, MISSING) != b.get(k, MISSING)
    }


def split_changes(old, new) -> tuple[dict, dict]:
    """(changes that alter the result, safe changes) between a run's config and this one."""
    changed = {k: v for k, v in differences(old, new).items() if k not in WHERE and k != "resume_history"}
    unsafe = {k: v for k, v in changed.items() if k not in SAFE}
    safe = {k: v for k, v in changed.items() if k in SAFE}
    return unsafe, safe


def describe(changes: dict) -> str:
    """``optimizer.lr: 0.01 (the run) -> 0.02 (now); ...``"""
    return "; ".join(f"{k}: {a!r} (the run) -> {b!r} (now)" for k, (a, b) in changes.items())


def result_overrides(overrides) -> list[str]:
    """The command-line overrides that change what runs (those naming neither WHERE nor SAFE keys);
    ``experiment=`` and ``name=`` name the run already."""
    kept = []
    for o in overrides:
        key = o.split("=", 1)[0].lstrip("+~")
        if key in WHERE or key in SAFE or key in ("experiment", "name") or key.startswith("hydra."):
            continue
        kept.append(o)
    return kept
