"""README's figures that come from the test tables are those tables' sizes."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bad_input_figure_is_the_size_of_the_two_tables(script_loader):
    trainer = script_loader(ROOT / "tests/train/test_trainer_bad_inputs.py", "_readme_check_trainer")
    data = script_loader(ROOT / "tests/data/test_data_bad_inputs.py", "_readme_check_data")
    readme = (ROOT / "README.md").read_text()
    figure = re.search(r"(\d+) bad inputs tried in two parametrised tables", readme)
    assert figure, "README lost its bad-input figure"
    assert int(figure.group(1)) == len(trainer.ROWS) + len(data.CASES)
    assert f"{len(trainer.ROWS)} trainer and command-line cases" in readme
    assert f"{len(data.CASES)} data, data-CLI" in readme


def test_results_table_has_a_row_for_every_shipped_experiment():
    """README's Results table names each experiment config in a row's first cell (measured, or why not)."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("\n## Results") : readme.index("\n## ", readme.index("\n## Results") + 1)]
    first_cells = [line.split("|")[1] for line in section.splitlines() if line.startswith("| ")]
    named = {name for cell in first_cells for name in re.findall(r"`([\w.]+/[\w.]+)`", cell)}
    configs = ROOT / "src/lindy/configs/experiment"
    shipped = {str(p.relative_to(configs).with_suffix("")) for p in configs.rglob("*.yaml")}
    assert shipped - named == set(), f"experiments without a row in README's Results table: {shipped - named}"
    assert named - shipped == set(), f"README's Results table names unknown experiments: {named - shipped}"
