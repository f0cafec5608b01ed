"""The processed-tensor cache: hits, versioned misses, changed sources, corrupt files."""

import os

import pytest
import torch

from lindy.data.cache import cache_key, cached_splits, cached_tensors, default_cache_dir


def counting_builder(value):
    calls = []

    def build():
        calls.append(1)
        return {"x": torch.full((3,), float(value))}

    return build, calls


def test_second_call_is_served_from_the_cache(tmp_path):
    build, calls = counting_builder(1)
    a = cached_tensors("toy", {"n": 3}, 1, build, cache_dir=tmp_path)
    b = cached_tensors("toy", {"n": 3}, 1, build, cache_dir=tmp_path)
    assert len(calls) == 1 and torch.equal(a["x"], b["x"])


@pytest.mark.parametrize("change", ["version", "option", "name"])
def test_changed_version_option_or_name_rebuilds(tmp_path, change):
    build, calls = counting_builder(1)
    cached_tensors("toy", {"n": 3}, 1, build, cache_dir=tmp_path)
    name, opts, version = "toy", {"n": 3}, 1
    if change == "version":
        version = 2
    elif change == "option":
        opts = {"n": 4}
    else:
        name = "toy2"
    cached_tensors(name, opts, version, build, cache_dir=tmp_path)
    assert len(calls) == 2


def test_changed_source_file_rebuilds(tmp_path):
    src = tmp_path / "raw.bin"
    src.write_bytes(b"abc")
    k1 = cache_key("toy", {}, 1, [src])
    src.write_bytes(b"abcd")
    os.utime(src, ns=(1, 1))
    assert cache_key("toy", {}, 1, [src]) != k1


def test_corrupt_cache_file_is_rebuilt_with_a_warning(tmp_path):
    build, calls = counting_builder(1)
    cached_tensors("toy", {}, 1, build, cache_dir=tmp_path)
    (path,) = tmp_path.glob("toy-*.safetensors")
    path.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable cache file"):
        out = cached_tensors("toy", {}, 1, build, cache_dir=tmp_path)
    assert len(calls) == 2 and torch.equal(out["x"], torch.ones(3))


def test_write_is_atomic_and_leaves_only_the_entry(tmp_path):
    build, _ = counting_builder(1)
    cached_tensors("toy", {}, 1, build, cache_dir=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [f"toy-{cache_key('toy', {}, 1)}.safetensors"]


def test_unwritable_cache_folder_warns_and_still_returns(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    build, calls = counting_builder(2)
    with pytest.warns(UserWarning, match="cannot write the data cache"):
        out = cached_tensors("toy", {}, 1, build, cache_dir=blocker / "cache")
    assert len(calls) == 1 and torch.equal(out["x"], torch.full((3,), 2.0))


def test_failed_build_of_the_file_leaves_no_temp_file(tmp_path, monkeypatch):
    import safetensors.torch

    def broken(tensors, path):
        with open(path, "wb") as f:
            f.write(b"half")  # a torn file, as a full disk leaves it
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", broken)
    build, _ = counting_builder(1)
    with pytest.warns(UserWarning, match="cannot write the data cache"):
        cached_tensors("toy", {}, 1, build, cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_root_places_the_cache_beside_the_users_files(tmp_path, monkeypatch):
    monkeypatch.delenv("LINDY_CACHE", raising=False)
    build, calls = counting_builder(1)
    cached_tensors("toy", {}, 1, build, root=tmp_path)
    assert len(list((tmp_path / "lindy-cache").glob("toy-*.safetensors"))) == 1
    monkeypatch.setenv("LINDY_CACHE", str(tmp_path / "env"))
    cached_tensors("toy", {}, 1, build, root=tmp_path)
    assert len(list((tmp_path / "env").glob("toy-*.safetensors"))) == 1 and len(calls) == 2


def test_cache_folder_order_lindy_cache_root_xdg_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LINDY_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "lindy"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # not absolute: ignored, as the XDG spec says
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "lindy"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "lindy"
    assert default_cache_dir(tmp_path / "data") == tmp_path / "data" / "lindy-cache"
    assert default_cache_dir("~/data") == tmp_path / "home" / "data" / "lindy-cache"
    monkeypatch.setenv("LINDY_CACHE", str(tmp_path / "env"))
    assert default_cache_dir() == default_cache_dir(tmp_path / "data") == tmp_path / "env"


def test_generated_sets_are_cached_under_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.delenv("LINDY_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    build, calls = counting_builder(2)
    cached_tensors("toy", {}, 1, build)
    assert len(list((tmp_path / "xdg" / "lindy").glob("toy-*.safetensors"))) == 1


def test_cached_splits_builds_in_order_once_and_keys_by_split(tmp_path):
    order = []

    def build_split(split):
        order.append(split)
        return {"x": torch.full((2,), float(len(order))), "y_n": torch.tensor([len(split)])}

    splits = ("test", "val", "train")
    a = cached_splits("toy", {}, 1, build_split, splits, cache_dir=tmp_path)
    b = cached_splits("toy", {}, 1, build_split, splits, cache_dir=tmp_path)
    assert order == ["test", "val", "train"]  # built once, in the order given
    for out in (a, b):
        assert sorted(out) == ["test", "train", "val"] and sorted(out["val"]) == ["x", "y_n"]
        assert torch.equal(out["train"]["x"], torch.full((2,), 3.0)) and int(out["val"]["y_n"]) == 3
    uncached = cached_splits("toy", {}, 1, build_split, ("a",), enabled=False)
    assert list(uncached) == ["a"] and order[-1] == "a" and not list(tmp_path.glob("*.tmp*"))
