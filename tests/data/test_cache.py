"""The processed-tensor cache: hits, versioned misses, changed sources, corrupt files."""

import os

import pytest
import torch

from lindy.data.cache import cache_key, cached_tensors


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
