"""README's figures that come from the test tables are those tables' sizes."""

import importlib.util
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(f"_readme_check_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses in the module look themselves up there
    spec.loader.exec_module(module)
    return module


def test_bad_input_figure_is_the_size_of_the_two_tables():
    trainer = _load(ROOT / "tests/train/test_trainer_bad_inputs.py")
    data = _load(ROOT / "tests/data/test_data_bad_inputs.py")
    readme = (ROOT / "README.md").read_text()
    figure = re.search(r"(\d+) bad inputs tried in two parametrised tables", readme)
    assert figure, "README lost its bad-input figure"
    assert int(figure.group(1)) == len(trainer.ROWS) + len(data.CASES)
    assert f"{len(trainer.ROWS)} trainer and command-line cases" in readme
    assert f"{len(data.CASES)} data, data-CLI" in readme
