"""Two CPU processes (gloo) end with the same weights as one process with the same global batch."""

import torch

from lindy.train.checkpoint import load_checkpoint


def test_two_process_ddp_matches_one_process(tiny, tmp_path, lindy_cli):
    args = [*tiny, "model.dropout=0.0", "trainer.max_epochs=1", "trainer.max_steps=4"]
    lindy_cli([*args, f"trainer.run_dir={tmp_path / 'one'}"], check=True)
    launcher = ["-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533"]
    lindy_cli([*args, f"trainer.run_dir={tmp_path / 'two'}"], launcher=launcher, check=True)
    one = load_checkpoint(tmp_path / "one" / "last.pt")
    two = load_checkpoint(tmp_path / "two" / "last.pt")
    assert one["progress"]["step"] == two["progress"]["step"] == 4
    for name, tensor in one["model"].items():
        torch.testing.assert_close(two["model"][name], tensor, rtol=1e-5, atol=1e-6, msg=name)
