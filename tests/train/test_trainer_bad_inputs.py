"""Every bad input in one table: the override(s), the exit code, and a regex the message must match.

Rows run ``lindy train`` (or ``lindy eval``) in this process (fast: nothing trains, every row fails first),
each into its own empty run folder; no row may train, write a checkpoint, or end in a traceback.
README's "N bad inputs tried" figure is ``len(ROWS)``.
"""

import re

import pytest
import torch
from omegaconf import OmegaConf

from lindy.train.checkpoint import save_atomic
from lindy.train.cli import eval_main, train_main
from lindy.train.config import compose_config

BAD_EXPERIMENT = "# @package _global_\nname: bad/{part}\n{part}:\n  {key}: 3\n"

# (overrides, exit code, regex); "eval" first runs ``lindy eval {ckpt} ...`` instead of ``lindy train``
ROWS = [
    # trainer values
    (["trainer.grad_clip=-1"], 2, r"trainer\.grad_clip must be >= 0\.0, got -1"),
    (["trainer.grad_clip=inf"], 2, r"trainer\.grad_clip must be a finite number"),
    (["trainer.max_steps=0"], 2, r"trainer\.max_steps must be a positive int, got 0"),
    (["trainer.max_steps=-1"], 2, r"trainer\.max_steps must be a positive int, got -1"),
    (["trainer.max_steps=abc"], 2, r"trainer\.max_steps must be a positive int, got 'abc'"),
    (["trainer.max_epochs=0"], 2, r"trainer\.max_epochs must be a positive int, got 0"),
    (["trainer.max_epochs=-3"], 2, r"trainer\.max_epochs must be a positive int"),
    (["trainer.precision=fp64"], 2, r"trainer\.precision must be one of \['fp32', 'bf16', 'fp16'\]"),
    (["trainer.accumulate=0"], 2, r"trainer\.accumulate must be a positive int, got 0"),
    (["trainer.accumulate=2.5"], 2, r"trainer\.accumulate must be a positive int, got 2\.5"),
    (["trainer.accumulate=9"], 2, r"trainer\.accumulate must be <= the 8 examples each process gets"),
    (["trainer.log_every_steps=0"], 2, r"trainer\.log_every_steps must be a positive int, got 0"),
    (["trainer.eval_every_steps=0"], 2, r"trainer\.eval_every_steps must be a positive int"),
    (["trainer.checkpoint_every_steps=-2"], 2, r"trainer\.checkpoint_every_steps must be a positive int"),
    (["trainer.threads=0"], 2, r"trainer\.threads must be a positive int, got 0"),
    (["trainer.device=tpu"], 2, r"trainer\.device must be auto, cpu, cuda"),
    (["trainer.progress=maybe"], 2, r"trainer\.progress must be auto, true or false"),
    (["trainer.tensorboard=maybe"], 2, r"trainer\.tensorboard must be true or false"),
    (["trainer.deterministic=1"], 2, r"trainer\.deterministic must be true or false"),
    (["trainer.overwrite=yes"], 2, r"trainer\.overwrite must be true or false"),
    (["trainer.wandb=5"], 2, r"trainer\.wandb must be null or a dict"),
    (["trainer.resume=5"], 2, r"trainer\.resume must be never, auto or the path of a last\.pt"),
    (["trainer.resume={tmp}/missing.pt"], 2, r"trainer\.resume: checkpoint .*missing\.pt does not exist"),
    # loader and seed
    (["loader.batch_size=0"], 2, r"loader\.batch_size must be a positive int, got 0"),
    (["loader.batch_size=-8"], 2, r"loader\.batch_size must be a positive int, got -8"),
    (["loader.batch_size=abc"], 2, r"loader\.batch_size must be a positive int, got 'abc'"),
    (["loader.batch_size=1000"], 2, r"64 examples, fewer than loader\.batch_size=1000"),
    (["loader.eval_batch_size=0"], 2, r"loader\.eval_batch_size must be a positive int"),
    (["loader.num_workers=-1"], 2, r"loader\.num_workers must be an int >= 0, got -1"),
    (["seed=abc"], 2, r"seed must be an int >= 0, got 'abc'"),
    (["seed=-1"], 2, r"seed must be an int >= 0, got -1"),
    # optimiser and schedule
    (["optimizer.lr=abc"], 2, r"optimizer\.lr must be a finite number, got 'abc'"),
    (["optimizer.lr=0"], 2, r"optimizer\.lr must be > 0"),
    (["optimizer.lr=nan"], 2, r"optimizer\.lr must be a finite number, got nan"),
    (["optimizer.weight_decay=-0.1"], 2, r"optimizer\.weight_decay must be >= 0\.0, got -0\.1"),
    (["optimizer.betas=[0.9,1.5]"], 2, r"optimizer\.betas must be two numbers in \[0, 1\)"),
    (["optimizer.betas=0.9"], 2, r"optimizer\.betas must be two numbers in \[0, 1\)"),
    (["optimizer.name=sgd", "optimizer.momentum=-1"], 2, r"optimizer\.momentum must be >= 0\.0"),
    (["optimizer.name=lion"], 2, r"optimizer\.name must be one of \['adamw', 'adam', 'sgd'\]"),
    (["scheduler.name=linear"], 2, r"scheduler\.name must be one of \['constant', 'cosine'"),
    (["scheduler.warmup_steps=-1"], 2, r"scheduler\.warmup_steps must be an int >= 0, got -1"),
    (["scheduler=multistep", "scheduler.gamma=0"], 2, r"scheduler\.gamma must be > 0"),
    (["scheduler=multistep", "scheduler.milestones=[0]"], 2, r"scheduler\.milestones must be a positive int"),
    (
        ["scheduler=multistep", "scheduler.unit=batch"],
        2,
        r"scheduler\.unit must be one of \['step', 'epoch'\]",
    ),
    (["scheduler=plateau", "scheduler.gamma=2"], 2, r"scheduler\.gamma must be < 1 for the plateau"),
    (["scheduler=plateau", "scheduler.patience=-1"], 2, r"scheduler\.patience must be an int >= 0"),
    # unknown keys: command line (with and without Hydra's +), experiment files
    (
        ["trainer.max_epoch=3"],
        2,
        r"unknown config key 'trainer\.max_epoch'.*did you mean 'trainer\.max_epochs'",
    ),
    (
        ["+trainer.max_epoch=3"],
        2,
        r"'trainer\.max_epoch' \(on the command line\); did you mean 'trainer\.max_epochs'",
    ),
    (["+optimizer.lrr=0.1"], 2, r"did you mean 'optimizer\.lr'"),
    (["+loader.batchsize=4"], 2, r"did you mean 'loader\.batch_size'"),
    (["+scheduler.warmup=4"], 2, r"did you mean 'scheduler\.warmup_steps'"),
    (["+seedd=1"], 2, r"unknown config key 'seedd'.*did you mean 'seed'"),
    (["+model.d_modle=4"], 2, r"did you mean 'model\.d_model'"),
    (["+layer.d_stat=4"], 2, r"did you mean 'layer\.d_state'"),
    (["+data.lenght=4"], 2, r"did you mean 'data\.length'"),
    (
        ["experiment=bad/trainer"],
        2,
        r"'trainer\.max_epoch' \(in the config files of experiment=bad/trainer\).*'trainer\.max_epochs'",
    ),
    (
        ["experiment=bad/optimizer"],
        2,
        r"'optimizer\.lrr' \(in the config files of experiment=bad/optimizer\).*'optimizer\.lr'",
    ),
    (
        ["experiment=bad/loader"],
        2,
        r"'loader\.batchsize' \(in the config files of experiment=bad/loader\).*'loader\.batch_size'",
    ),
    (["experiment=s4d/smnist_embeded"], 2, r"s4d/smnist_embedded"),
    # run folders and checkpoints
    (["trainer.run_dir={nonempty}"], 2, r"run folder .*nonempty is not empty \(it holds notes\.txt\)"),
    (["trainer.run_dir={finished}", "trainer.resume=auto"], 2, r"holds a finished run \(summary\.json\)"),
    (
        ["trainer.run_dir={changed}", "trainer.resume=auto"],
        2,
        r"optimizer\.lr: 0\.02 \(the run\) -> 0\.01 \(now\)",
    ),
    (["trainer.resume={corrupt}"], 2, r"corrupt\.pt is corrupt: the checksum of its contents does not match"),
    # lindy eval overrides
    (["eval", "trainer.max_epoch=3"], 2, r"'trainer\.max_epoch' \(a lindy eval override\); did you mean"),
    (["eval", "+optimizer.lrr=1"], 2, r"unknown config key 'optimizer\.lrr'.*did you mean 'optimizer\.lr'"),
    (["eval", "loader.eval_batch_size=0"], 2, r"loader\.eval_batch_size must be a positive int, got 0"),
    (["eval", "data.root"], 2, r"overrides are key=value, got 'data\.root'"),
]


@pytest.fixture(scope="module")
def places(tiny, tmp_path_factory):
    """Folders and checkpoints that some rows point at."""
    root = tmp_path_factory.mktemp("places")
    for part, key in (("trainer", "max_epoch"), ("optimizer", "lrr"), ("loader", "batchsize")):
        path = root / "search" / "experiment" / "bad" / f"{part}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(BAD_EXPERIMENT.format(part=part, key=key))
    (root / "nonempty").mkdir()
    (root / "nonempty" / "notes.txt").write_text("a user's file")
    (root / "finished").mkdir()
    (root / "finished" / "summary.json").write_text("{}")
    (root / "finished" / "last.pt").write_bytes(b"")
    config = OmegaConf.to_yaml(compose_config([*tiny, "optimizer.lr=0.02"]), resolve=True)
    (root / "changed").mkdir()
    save_atomic({"config": config, "progress": {"step": 3}}, root / "changed" / "last.pt")
    weights = torch.arange(256, dtype=torch.float32)
    save_atomic({"config": config, "model": {"w": weights}}, root / "corrupt.pt")
    data = bytearray((root / "corrupt.pt").read_bytes())
    data[data.find(weights.numpy().tobytes()) + 99] ^= 1  # one bit of one weight: finite garbage
    (root / "corrupt.pt").write_bytes(bytes(data))
    save_atomic({"config": config, "model": {}}, root / "ckpt.pt")
    return root


def _ids():
    return [" ".join(row[0])[:60] for row in ROWS]


@pytest.mark.parametrize(("overrides", "code", "message"), ROWS, ids=_ids())
def test_bad_input_fails_clearly(overrides, code, message, tiny, places, tmp_path, capsys, isolated):
    subs = {"tmp": tmp_path, **{p.name.split(".")[0]: p for p in places.iterdir()}}
    args = [o.format(**subs) for o in overrides]
    if args[0] == "eval":
        got = eval_main([str(places / "ckpt.pt"), *args[1:]])
    else:
        search = f"hydra.searchpath=[file://{places / 'search'}]"
        run = (
            []
            if any(a.startswith("trainer.run_dir=") for a in args)
            else [f"trainer.run_dir={tmp_path / 'r'}"]
        )
        got = train_main([*tiny, search, *run, *args])
    err = capsys.readouterr().err
    assert got == code, err
    assert re.search(message, err, re.S), err
    assert "Traceback" not in err
    assert not list(tmp_path.rglob("*.pt")), "a bad input must not train"


def test_the_table_is_the_readme_figure():
    assert len(ROWS) >= 60  # README quotes the count (tests/test_readme.py checks it)
