"""The lssl/* experiments are the LSSL paper's best hyper-parameters (appendix F, table 11); the ldnn/* and
lem/* experiments keep their references' per-parameter lrs, validation split and input dropout."""

import pytest

from lindy.train.config import compose_config, list_experiments

# experiment: (lr, dropout, batch, epochs, depth, H, N, M), as printed in the paper's table 11
TABLE_11 = {
    "lssl/smnist": (0.004, 0.2, 50, 200, 6, 128, 128, 1),
    "lssl/psmnist": (0.001, 0.2, 50, 200, 6, 128, 128, 1),
    "lssl/scifar": (0.02, 0.3, 50, 200, 4, 256, 256, 4),
    "lssl/bidmc_rr": (0.004, 0.1, 32, 500, 6, 128, 128, 1),
    "lssl/bidmc_hr": (0.01, 0.2, 32, 500, 6, 128, 128, 1),
    "lssl/bidmc_spo2": (0.01, 0.1, 32, 500, 6, 128, 128, 1),
    "lssl/sc35": (0.01, 0.2, 16, 50, 4, 256, 128, 2),
}


@pytest.mark.parametrize("experiment", sorted(TABLE_11))
def test_lssl_experiment_is_the_papers_recipe(experiment):
    cfg = compose_config([f"experiment={experiment}"])
    got = (
        cfg.optimizer.lr,
        cfg.model.dropout,
        cfg.loader.batch_size,
        cfg.trainer.max_epochs,
        cfg.model.n_layers,
        cfg.model.d_model,
        cfg.layer.d_state,
        cfg.layer.channels,
    )
    assert got == TABLE_11[experiment]
    assert cfg.optimizer.name == "adam" and cfg.optimizer.weight_decay == 0.0
    if experiment.startswith("lssl/bidmc"):  # BIDMC: a multistep schedule, as UnICORNN
        assert cfg.scheduler.name == "multistep"
    else:  # the lr is cut by 5x when the validation loss stalls
        assert (cfg.scheduler.name, cfg.scheduler.gamma) == ("plateau", 0.2)


@pytest.mark.parametrize("experiment", [e for e in list_experiments() if e.startswith("ldnn/")])
def test_ldnn_lr_hints_are_absolute_as_in_deepldnn(experiment):
    """DeepLDNN's per-parameter lrs are used as given (ldnn/psmnist's C: 4e-3 above the global 1e-3)."""
    assert compose_config([f"experiment={experiment}"]).optimizer.hint_lr == "absolute"


def test_lem_recipes_split_and_input_dropout():
    for experiment in ("lem/smnist", "lem/psmnist"):  # the reference's 57,000 / 3,000 split
        assert round(compose_config([f"experiment={experiment}"]).data.val_fraction * 60000) == 3000
    assert compose_config(["experiment=lem/google12"]).model.input_dropout == 0.03
