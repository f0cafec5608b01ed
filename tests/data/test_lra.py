"""Long Range Arena data: ListOps (reader + generator), Pathfinder (reader + generator), IMDB and AAN.

Readers are tested on small files written here in the release formats; generated data is checked by
independent code (a ListOps evaluator, a flood fill over the Pathfinder image)."""

import random
import statistics
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lindy.data import build_data
from lindy.data.listops import VOCAB, generate_listops, random_expression, write_listops_tsv
from lindy.data.lra_text import byte_tokens
from lindy.data.pathfinder import pathfinder_sample

# ------------------------------------------------------------------------------------------------ ListOps

OPS = {
    "[MIN": min,
    "[MAX": max,
    "[MED": lambda v: int(statistics.median(v)),
    "[SM": lambda v: sum(v) % 10,
}


def evaluate(source: str) -> int:
    """Independent ListOps evaluator: a stack over the tokens, parentheses ignored."""
    stack = []
    for tok in source.split():
        if tok in ("(", ")"):
            continue
        if tok in OPS:
            stack.append([tok])
        elif tok in ("]", "X"):
            op, *args = stack.pop()
            value = OPS[op](args)
            if stack:
                stack[-1].append(value)
            else:
                return value
        else:
            if stack:
                stack[-1].append(int(tok))
            else:
                return int(tok)
    raise ValueError(f"unbalanced expression {source!r}")


def n_tokens(source: str) -> int:
    return sum(tok not in ("(", ")") for tok in source.split())


def decode(x: torch.Tensor) -> str:
    return " ".join(VOCAB[int(t)] for t in x if int(t) != 0)


def test_evaluator_on_hand_written_expressions():
    assert evaluate("( [MAX 2 9 ( [MIN 4 7 ] 0 ) ] )") == 9
    assert evaluate("( ( ( [MED 1 ) 2 ) ] )") == 1  # median 1.5 -> 1, as LRA's int(np.median)
    assert evaluate("[SM 9 9 [MIN 5 8 ] ]") == 3


def test_generated_expressions_follow_lra_rules():
    rows = generate_listops(12, "test-seed")
    assert len({s for s, _ in rows}) == 12  # no duplicates
    for source, value in rows:
        assert 500 < n_tokens(source) < 2000
        assert evaluate(source) == value and 0 <= value <= 9
        assert source.startswith("( ") and source.count("(") == source.count(")")
    # small trees: depth and argument limits hold
    rng = random.Random(3)
    for _ in range(20):
        source, value, count = random_expression(rng, max_depth=3, max_args=3, min_length=0, max_length=100)
        assert count == n_tokens(source) and evaluate(source) == value
        depth, deepest = 0, 0
        for tok in source.split():
            depth += tok in OPS
            depth -= tok == "]"
            deepest = max(deepest, depth)
        assert deepest <= 2  # operators only above max_depth


def test_listops_generated_builder(monkeypatch, tmp_path):
    monkeypatch.setenv("LINDY_CACHE", str(tmp_path))
    opts = dict(n_train=6, n_val=3, n_test=3, seed=1)
    data = build_data("listops_generated", **opts)
    info = data.info
    assert (info.d_input, info.d_output, info.length, info.tokens) == (16, 10, 2000, True)
    assert info.task == "classification" and info.source == "regenerated"
    assert (len(data.train), len(data.val), len(data.test)) == (6, 3, 3)
    sources = set()
    for split in (data.train, data.val, data.test):
        for i in range(len(split)):
            x, y = split[i]
            assert x.shape == (2000,) and x.dtype == torch.int64 and y.dtype == torch.int64
            used = int((x != 0).sum())
            assert 500 < used < 2000 and (x[used:] == 0).all()  # padding only at the end
            assert evaluate(decode(x)) == int(y)
            sources.add(decode(x))
    assert len(sources) == 12  # splits are disjoint
    again = build_data("listops_generated", **opts, cache=False)
    assert torch.equal(again.train.tokens, data.train.tokens)
    assert list(tmp_path.glob("listops_generated-*.safetensors"))  # cached
    other = build_data("listops_generated", **{**opts, "seed": 2}, cache=False)
    assert not torch.equal(other.train.tokens, data.train.tokens)
    bigger = build_data("listops_generated", **{**opts, "n_train": 8}, cache=False)
    assert torch.equal(bigger.test.tokens, data.test.tokens)  # the test set does not depend on n_train


def write_listops_release(root: Path, rows_by_split: dict) -> Path:
    folder = root / "listops"
    for split, rows in rows_by_split.items():
        write_listops_tsv(folder / f"basic_{split}.tsv", rows)
    return folder


def test_listops_reader_reads_release_files(tmp_path, monkeypatch):
    monkeypatch.delenv("LINDY_CACHE", raising=False)
    rows = {
        "train": [("( ( ( [MAX 2 ) 9 ) ] )", 9), ("( ( ( [SM 4 ) ( ( ( [MIN 7 ) 3 ) ] ) ) ] )", 7)],
        "val": [("( ( ( [MED 1 ) 2 ) ] )", 1)],
        "test": [("5", 5), ("( ( ( ( [MIN 8 ) 4 ) 6 ) ] )", 4)],
    }
    write_listops_release(tmp_path, rows)
    data = build_data("listops", root=str(tmp_path))
    assert data.info.source == "real" and data.info.length == 2000 and data.info.d_input == 16
    assert (len(data.train), len(data.val), len(data.test)) == (2, 1, 2)
    x, y = data.train[1]
    assert decode(x) == "[SM 4 [MIN 7 3 ] ]" and int(y) == 7
    assert evaluate(decode(data.test[1][0])) == int(data.test[1][1]) == 4
    # LRA's renamed close bracket "X" reads as "]"
    (tmp_path / "listops" / "basic_val.tsv").write_text("Source\tTarget\n( ( ( [MAX 3 ) 1 ) X )\t3\n")
    assert decode(build_data("listops", root=str(tmp_path), cache=False).val[0][0]) == "[MAX 3 1 ]"
    assert list((tmp_path / "lindy-cache").glob("listops-*.safetensors"))  # cached beside the data


def test_listops_generated_round_trips_through_the_reader(tmp_path):
    rows = generate_listops(4, "round-trip")
    write_listops_release(tmp_path, {"train": rows, "val": rows[:1], "test": rows[1:2]})
    data = build_data("listops", root=str(tmp_path), cache=False)
    for i, (source, value) in enumerate(rows):
        x, y = data.train[i]
        assert decode(x) == " ".join(t for t in source.split() if t not in "()") and int(y) == value


def test_listops_reader_truncates_and_rejects_bad_files(tmp_path):
    write_listops_release(
        tmp_path, {s: [("( ( ( ( [MAX 2 ) 9 ) 4 ) ] )", 9)] for s in ("train", "val", "test")}
    )
    x, _ = build_data("listops", root=str(tmp_path), max_length=3, cache=False).train[0]
    assert decode(x) == "[MAX 2 9"  # first max_length tokens
    with pytest.raises(ValueError, match="data.root is not set"):
        build_data("listops")
    path = tmp_path / "listops" / "basic_test.tsv"
    path.write_text("Source\tTarget\n( [MAX 2 7 ] )\t11\n")
    with pytest.raises(ValueError, match=r"basic_test.tsv line 2: Target must be 0-9"):
        build_data("listops", root=str(tmp_path), cache=False)
    path.write_text("Source\tTarget\n( [MAX 2 [FOO 7 ] )\t1\n")
    with pytest.raises(ValueError, match=r"basic_test.tsv row 1: unknown ListOps token '\[FOO'"):
        build_data("listops", root=str(tmp_path), cache=False)
    path.write_text("Input\tOutput\n5\t5\n")
    with pytest.raises(ValueError, match=r"basic_test.tsv: expected the header row"):
        build_data("listops", root=str(tmp_path), cache=False)
    path.unlink()
    with pytest.raises(FileNotFoundError, match=r"listops/basic_test.tsv"):
        build_data("listops", root=str(tmp_path), cache=False)
    (tmp_path / "listops").rename(tmp_path / "listops-1000")  # the release's own folder name
    write_listops_tsv(tmp_path / "listops-1000" / "basic_test.tsv", [("7", 7)])
    assert int(build_data("listops", root=str(tmp_path), cache=False).test[0][1]) == 7
    with pytest.raises(ValueError, match="n_train must be a positive int, got 0"):
        build_data("listops_generated", n_train=0)
    with pytest.raises(ValueError, match="no tree with max_depth=2"):
        build_data("listops_generated", max_depth=2, n_train=1, n_val=1, n_test=1, cache=False)


# --------------------------------------------------------------------------------------------- Pathfinder


def reachable(mask: np.ndarray, start, radius: int) -> np.ndarray:
    """Pixels of ``mask`` reachable from ``start`` in steps of Chebyshev distance <= radius."""
    seen = np.zeros_like(mask, dtype=bool)
    todo = [tuple(start)]
    seen[tuple(start)] = True
    h, w = mask.shape
    while todo:
        r, c = todo.pop()
        for rr in range(max(0, r - radius), min(h, r + radius + 1)):
            for cc in range(max(0, c - radius), min(w, c + radius + 1)):
                if mask[rr, cc] and not seen[rr, cc]:
                    seen[rr, cc] = True
                    todo.append((rr, cc))
    return seen


@pytest.mark.parametrize("resolution", [32, 64])
def test_generated_pathfinder_connectivity(resolution):
    for i in range(6):
        label = i % 2
        s = pathfinder_sample(np.random.default_rng([resolution, i]), resolution, label)
        assert s.image.shape == (resolution, resolution) and set(np.unique(s.image)) <= {0, 255}
        lit = s.image > 0
        a, b = s.markers
        half = resolution // 32
        for r, c in (a, b):  # markers are lit squares
            assert lit[r - half : r + half + 1, c - half : c + half + 1].all()
        # dashes: the lit image joins the markers through gaps of <= gap pixels exactly when label is 1
        assert reachable(lit, a, s.gap + 1)[tuple(b)] == bool(label)
        # the path mask (undashed) joins them 8-connectedly when label is 1
        path = s.owner == s.owner[tuple(a)]
        assert reachable(path, a, 1)[tuple(b)] == bool(label)
        # contours are dashed, distinct objects stay > gap + 1 apart
        chain = s.contours[0]
        assert 0.5 < lit[chain[:, 0], chain[:, 1]].mean() < 0.9
        for j in range(len(s.contours)):
            near = reachable(s.owner >= 0, s.contours[j][0], s.gap + 1)
            assert set(np.unique(s.owner[near])) == {j}
        assert len(s.contours) >= 4  # two targets and distractors


def test_pathfinder_generated_builder():
    opts = dict(n_train=10, n_val=4, n_test=4, seed=3, cache=False)
    data = build_data("pathfinder_generated", **opts)
    info = data.info
    assert (info.d_input, info.d_output, info.length, info.tokens) == (1, 2, 1024, False)
    assert info.source == "regenerated" and info.task == "classification"
    x, y = data.train[0]
    assert x.shape == (1024, 1) and x.dtype == torch.float32 and set(x.unique().tolist()) <= {0.0, 1.0}
    assert torch.bincount(data.train.labels).tolist() == [5, 5]  # balanced
    again = build_data("pathfinder_generated", **opts)
    assert torch.equal(again.train.pixels, data.train.pixels) and torch.equal(
        again.val.labels, data.val.labels
    )
    other = build_data("pathfinder_generated", **{**opts, "seed": 4})
    assert not torch.equal(other.train.pixels, data.train.pixels)
    assert not torch.equal(data.train.pixels[:4], data.val.pixels)
    with pytest.raises(ValueError, match="resolution must be a multiple of 32"):
        build_data("pathfinder_generated", resolution=48)
    with pytest.raises(ValueError, match="contour_length must be an int >= 2, got 1"):
        build_data("pathfinder_generated", contour_length=1)


def write_png(path: Path, array: np.ndarray, mode: str = "L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(array)
    (img.convert("RGB") if mode == "RGB" else img).save(path)


def make_pathfinder_release(root: Path, resolution=32, difficulty="curv_contour_length_14", batches=(2, 10)):
    """LRA layout: imgs/<n>/sample_<k>.png and text metadata/<n>.npy, lines 'imgs/<n> sample_<k>.png k label
    ...'. Returns the images and labels in reading order (metadata files by number, lines in order)."""
    base = root / f"pathfinder{resolution}" / difficulty
    rng = np.random.default_rng(0)
    images, labels = [], []
    for n in batches:
        lines = []
        for k in range(5):
            image = rng.integers(0, 256, (resolution, resolution), dtype=np.uint8)
            label = int(rng.integers(2))
            write_png(base / "imgs" / str(n) / f"sample_{k}.png", image, "RGB" if k == 3 else "L")
            lines.append(f"imgs/{n} sample_{k}.png {k} {label} 1.0 14 4 5 1 1.5 2\n")
            images.append(image)
            labels.append(label)
        (base / "metadata").mkdir(parents=True, exist_ok=True)
        (base / "metadata" / f"{n}.npy").write_text("".join(lines))
    return base, images, labels


def test_pathfinder_reader_matches_s4_split(tmp_path):
    _, images, labels = make_pathfinder_release(tmp_path, batches=(2, 10))  # 10 sorts after 2 numerically
    data = build_data("pathfinder", root=str(tmp_path), cache=False)
    assert data.info.length == 1024 and data.info.d_input == 1 and data.info.source == "real"
    # S4: random_split of N into (N - 2 floor(0.1 N), floor(0.1 N), floor(0.1 N)) with seed 42
    parts = torch.utils.data.random_split(range(10), [8, 1, 1], generator=torch.Generator().manual_seed(42))
    for split, part in zip((data.train, data.val, data.test), parts):
        assert len(split) == len(part)
        for j, i in enumerate(part.indices):
            x, y = split[j]
            assert x.shape == (1024, 1)
            expected = torch.from_numpy(images[i].reshape(-1, 1).astype(np.float32) / 255)
            torch.testing.assert_close(x, expected)  # the RGB sample reads back as the same gray
            assert int(y) == labels[i]


def test_pathx_resolution_128_and_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("LINDY_CACHE", raising=False)
    make_pathfinder_release(tmp_path, resolution=128, difficulty="curv_baseline", batches=(0,))
    data = build_data("pathfinder", root=str(tmp_path), resolution=128, difficulty="curv_baseline")
    assert data.info.length == 16384 and data.train[0][0].shape == (16384, 1)
    assert len(data.train) + len(data.val) + len(data.test) == 5
    assert list((tmp_path / "lindy-cache").glob("pathfinder128-curv_baseline-*.safetensors"))


def test_pathfinder_reader_errors_name_the_file(tmp_path):
    base, _, _ = make_pathfinder_release(tmp_path, batches=(0,))
    with pytest.raises(ValueError, match="data.root is not set"):
        build_data("pathfinder")
    with pytest.raises(ValueError, match="difficulty must be one of"):
        build_data("pathfinder", root=str(tmp_path), difficulty="hard")
    with pytest.raises(FileNotFoundError, match=r"pathfinder64/curv_contour_length_14/metadata"):
        build_data("pathfinder", root=str(tmp_path), resolution=64)
    (base / "imgs" / "0" / "sample_2.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(ValueError, match=r"imgs/0/sample_2.png: unreadable"):
        build_data("pathfinder", root=str(tmp_path), cache=False)
    (base / "imgs" / "0" / "sample_2.png").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"imgs/0/sample_2.png: image listed in the metadata is missing"
    ):
        build_data("pathfinder", root=str(tmp_path), cache=False)
    write_png(base / "imgs" / "0" / "sample_2.png", np.zeros((16, 16), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"sample_2.png: expected a 32x32 image"):
        build_data("pathfinder", root=str(tmp_path), cache=False)
    (base / "metadata" / "0.npy").write_text("imgs/0 sample_0.png 0\n")
    with pytest.raises(ValueError, match=r"metadata/0.npy line 1: expected"):
        build_data("pathfinder", root=str(tmp_path), cache=False)
    (base / "metadata" / "x.npy").write_text("")
    with pytest.raises(ValueError, match=r"x.npy: metadata files must be named <n>.npy"):
        build_data("pathfinder", root=str(tmp_path), cache=False)


def test_pathfinder_known_empty_release_image_is_skipped(tmp_path):
    base = tmp_path / "pathfinder32" / "curv_baseline"
    write_png(base / "imgs" / "0" / "sample_171.png", np.full((32, 32), 7, dtype=np.uint8))
    (base / "imgs" / "0" / "sample_172.png").write_bytes(b"")  # empty in LRA's release
    (base / "metadata").mkdir(parents=True)
    (base / "metadata" / "0.npy").write_text("imgs/0 sample_171.png 171 1\nimgs/0 sample_172.png 172 0\n")
    data = build_data("pathfinder", root=str(tmp_path), difficulty="curv_baseline", cache=False)
    assert len(data.train) == 1 and int(data.train[0][1]) == 1


# ------------------------------------------------------------------------------------------------ IMDB/AAN


def tokens_of(text: bytes, length: int) -> list[int]:
    """LRA's ByteTextEncoder numbering: byte + 2, then 0 padding."""
    head = [b + 2 for b in text[:length]]
    return head + [0] * (length - len(head))


def make_imdb(root: Path, n=4):
    reviews = {}
    for split in ("train", "test"):
        for label, name in ((0, "neg"), (1, "pos")):
            for i in range(n):
                text = f"{split} {name} review {i}: café ☕ ".encode() * (1 + 3 * i)
                path = root / "aclImdb" / split / name / f"{i}_{7 * label + 1}.txt"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(text)
                reviews[(split, text)] = label
    unsup = root / "aclImdb" / "train" / "unsup"
    unsup.mkdir()
    (unsup / "0_0.txt").write_text("unlabelled")
    return reviews


def test_imdb_bytes_split_and_errors(tmp_path):
    reviews = make_imdb(tmp_path)
    data = build_data("imdb", root=str(tmp_path), max_length=64, val_fraction=0.25, cache=False)
    info = data.info
    assert (info.d_input, info.d_output, info.length, info.tokens) == (258, 2, 64, True)
    assert (len(data.train), len(data.val), len(data.test)) == (6, 2, 8)
    by_tokens = {tuple(tokens_of(text, 64)): (split, y) for (split, text), y in reviews.items()}
    seen = []
    for name, split in (("train", data.train), ("train", data.val), ("test", data.test)):
        for i in range(len(split)):
            x, y = split[i]
            assert x.shape == (64,) and x.dtype == torch.int64
            assert by_tokens[tuple(x.tolist())] == (name, int(y))
            assert x.tolist() in [byte_tokens(t, 64).tolist() for (_, t) in reviews]
            seen.append(tuple(x.tolist()))
    assert len(set(seen)) == 16  # every review once; unsup ignored
    same = build_data("imdb", root=str(tmp_path), max_length=64, val_fraction=0.25, cache=False)
    assert torch.equal(same.val.data, data.val.data)
    lra_rule = build_data("imdb", root=str(tmp_path), max_length=64, val_fraction=0, cache=False)
    assert lra_rule.val is lra_rule.test and len(lra_rule.train) == 8
    with pytest.raises(ValueError, match="val_fraction must be in"):
        build_data("imdb", root=str(tmp_path), val_fraction=1.5)
    for path in (tmp_path / "aclImdb" / "test" / "pos").glob("*.txt"):
        path.unlink()
    with pytest.raises(FileNotFoundError, match=r"aclImdb/test/pos/\*.txt"):
        build_data("imdb", root=str(tmp_path), cache=False)


def make_aan(root: Path):
    rows = {}
    for split, name in (("train", "train"), ("val", "eval"), ("test", "test")):
        lines, rows[split] = [], []
        for i in range(3):
            t1 = f"paper {split} {i} ünïcode ".encode() * (i + 1)
            t2 = f"cited {i} ".encode() * (5 * i + 1)
            label = "1.0" if i % 2 else "0"
            lines.append(b"\t".join([label.encode(), f"id{i}a".encode(), f"id{i}b".encode(), t1, t2]))
            rows[split].append((t1, t2, int(float(label))))
        path = root / "tsv_data" / f"new_aan_pairs.{name}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\n".join(lines) + b"\n")
    return rows


def test_aan_layouts(tmp_path, monkeypatch):
    monkeypatch.delenv("LINDY_CACHE", raising=False)
    rows = make_aan(tmp_path)
    data = build_data("aan", root=str(tmp_path), max_length=40)
    assert (data.info.d_input, data.info.length, data.info.tokens) == (258, 80, True)
    for split, name in ((data.train, "train"), (data.val, "val"), (data.test, "test")):
        assert len(split) == 3
        for i, (t1, t2, label) in enumerate(rows[name]):
            x, y = split[i]
            assert (
                x.shape == (80,) and x.tolist() == tokens_of(t1, 40) + tokens_of(t2, 40) and int(y) == label
            )
    pair = build_data("aan", root=str(tmp_path), max_length=40, layout="pair")
    x, _ = pair.test[2]
    assert pair.info.length == 40 and x.shape == (2, 40)
    assert x[1].tolist() == tokens_of(rows["test"][2][1], 40)
    assert list((tmp_path / "lindy-cache").glob("aan-*.safetensors"))


def test_aan_errors_name_file_and_line(tmp_path):
    make_aan(tmp_path)
    path = tmp_path / "tsv_data" / "new_aan_pairs.eval.tsv"
    path.write_bytes(b"1\tid1\tid2\tonly four columns\n")
    with pytest.raises(ValueError, match=r"new_aan_pairs.eval.tsv line 1: expected 5 tab-separated"):
        build_data("aan", root=str(tmp_path), cache=False)
    path.write_bytes(b"0\ta\tb\tx\ty\nlabel\ta\tb\tx\ty\n")
    with pytest.raises(ValueError, match=r"new_aan_pairs.eval.tsv line 2: label must be 0 or 1"):
        build_data("aan", root=str(tmp_path), cache=False)
    path.unlink()
    with pytest.raises(FileNotFoundError, match=r"new_aan_pairs.eval.tsv"):
        build_data("aan", root=str(tmp_path), cache=False)
    with pytest.raises(ValueError, match="layout must be one of"):
        build_data("aan", root=str(tmp_path), layout="two-tower")


@pytest.mark.parametrize(
    "config", ["listops", "listops_generated", "pathfinder", "pathx", "pathfinder_generated", "imdb", "aan"]
)
def test_configs_name_a_builder_and_its_options(config):
    import inspect

    import yaml

    from lindy.data import DATASETS

    path = Path(__file__).resolve().parents[2] / "src" / "lindy" / "configs" / "data" / f"{config}.yaml"
    cfg = yaml.safe_load(path.read_text())
    builder = DATASETS[cfg.pop("name")]
    params = inspect.signature(builder).parameters
    assert set(cfg) <= set(params)
    for key, value in cfg.items():  # the config's values are the builder's defaults
        assert params[key].default == value or key in ("root", "resolution"), key
