"""``lindy._atomic.atomic_write``: the new file gets the permissions a plain write would give it."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from lindy._atomic import atomic_write, atomic_write_text


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask():
    """Set the process umask for one test and restore it."""
    saved = os.umask(0o022)
    yield os.umask
    os.umask(saved)


def _private_writer(tmp):
    # what safetensors does: the file is created 0o600 whatever the umask
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, b"weights")
    os.close(fd)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize(
    ("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)], ids=["022", "077", "002"]
)
def test_new_file_mode_follows_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    path = atomic_write(tmp_path / "model.safetensors", _private_writer)
    assert _mode(path) == mode and path.read_bytes() == b"weights"
    assert _mode(atomic_write_text(tmp_path / "config.json", "{}")) == mode


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_replacing_a_file_keeps_its_mode(tmp_path, umask):
    path = tmp_path / "last.pt"
    path.write_bytes(b"old")
    os.chmod(path, 0o640)
    atomic_write(path, lambda tmp: torch.save({"w": torch.ones(1)}, tmp))
    assert _mode(path) == 0o640 and torch.load(path)["w"].item() == 1.0


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_safetensors_export_is_readable_by_others(tmp_path, umask):
    from safetensors.torch import save_file

    path = atomic_write(tmp_path / "model.safetensors", lambda tmp: save_file({"w": torch.ones(2)}, str(tmp)))
    assert _mode(path) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


def test_failed_write_leaves_no_temp_file_and_names_the_file(tmp_path):
    def fail(tmp):
        tmp.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match=r"could not write .*out\.bin: No space left"):
        atomic_write(tmp_path / "out.bin", fail)
    assert list(tmp_path.iterdir()) == []
