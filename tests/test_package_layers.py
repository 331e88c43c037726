"""The package's layers: shared pieces below, recommendation on top, no import going back up;
and small modules.

``retrieval`` (search, lexical scoring, fusion, cached encoding) serves mining, training,
evaluation and recommendation, so it imports none of them; mining, training and evaluation
never import ``recommend``. Imports inside functions count too. A module over
``MAX_MODULE_LINES`` lines is doing more than one job: split it by job.
"""

import ast
from pathlib import Path

import pytest

import melscribe_torch

PACKAGE_DIR = Path(melscribe_torch.__file__).parent

MAX_MODULE_LINES = 400

# part of the package -> the parts it must not import
FORBIDDEN = {
    "evaluation": {"recommend"},
    "mining": {"recommend"},
    "training": {"recommend"},
    "retrieval": {"evaluation", "mining", "training", "recommend", "pipeline", "teacher", "labeling"},
}


def imported_modules(path: Path, package_dir: Path = PACKAGE_DIR) -> set[str]:
    """Dotted names of every module ``path`` imports (absolute and relative, at any depth)."""
    # relative imports start from the file's package (for __init__.py, the package itself)
    here = ["melscribe_torch", *path.relative_to(package_dir).with_suffix("").parts][:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.add(module)
            # `from .. import recommend` imports a subpackage by name
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def layer_violations(package_dir: Path = PACKAGE_DIR) -> list[str]:
    out = []
    for part, banned in FORBIDDEN.items():
        for path in sorted((package_dir / part).rglob("*.py")):
            for module in sorted(imported_modules(path, package_dir)):
                pieces = module.split(".")
                if pieces[0] == "melscribe_torch" and len(pieces) > 1 and pieces[1] in banned:
                    out.append(f"{path.relative_to(package_dir)} imports {module}")
    return out


def test_no_import_goes_back_up_the_layers():
    assert layer_violations() == []


@pytest.mark.parametrize(
    "line",
    [
        "from ..recommend.index import load_index",
        "from .. import recommend",
        "import melscribe_torch.recommend.cli",
        "from melscribe_torch.recommend import Recommender",
    ],
)
def test_the_scan_finds_a_backwards_import_even_inside_a_function(tmp_path, line):
    (tmp_path / "mining").mkdir()
    (tmp_path / "mining" / "planted.py").write_text(f"def mine():\n    {line}\n")
    found = layer_violations(tmp_path)
    assert found and all(v.startswith("mining/planted.py imports melscribe_torch.recommend") for v in found)


def test_the_scan_lets_imports_down_the_layers_pass(tmp_path):
    (tmp_path / "mining").mkdir()
    (tmp_path / "mining" / "fine.py").write_text("from ..retrieval import exact_topk\nfrom . import lexical\n")
    assert layer_violations(tmp_path) == []


def long_modules(package_dir: Path = PACKAGE_DIR, limit: int = MAX_MODULE_LINES) -> list[str]:
    """``"<module>: <n> lines"`` for every module under ``package_dir`` longer than ``limit``."""
    counts = {
        path.relative_to(package_dir).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in sorted(package_dir.rglob("*.py"))
    }
    return [f"{name}: {lines} lines" for name, lines in counts.items() if lines > limit]


def test_no_module_is_over_the_line_limit():
    assert long_modules() == []


def test_the_line_count_finds_a_long_module_at_any_depth(tmp_path):
    (tmp_path / "recommend").mkdir()
    (tmp_path / "recommend" / "big.py").write_text("x = 1\n" * (MAX_MODULE_LINES + 1))
    (tmp_path / "small.py").write_text("x = 1\n" * MAX_MODULE_LINES)
    assert long_modules(tmp_path) == [f"recommend/big.py: {MAX_MODULE_LINES + 1} lines"]
