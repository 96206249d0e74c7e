"""The house: model/'s subpackages depend on each other one way, and model/ knows no GUI."""
from __future__ import annotations

import re
from pathlib import Path

MODEL = Path(__file__).resolve().parents[1] / "model"
IMPORT = re.compile(r"^\s*(?:from|import) ([\w.]+)", re.M)


def _imports(package: Path) -> set[str]:
    return {name for file in package.rglob("*.py") for name in IMPORT.findall(file.read_text())}


def test_model_subpackages_form_no_cycle():
    packages = sorted(p.name for p in MODEL.iterdir() if (p / "__init__.py").is_file())
    assert {"core", "network", "data", "training", "tracking", "evaluation"} <= set(packages)
    deps = {p: {n.split(".")[1] for n in _imports(MODEL / p) if n.startswith("model.") and n.split(".")[1] != p}
            for p in packages}
    order = []

    def visit(package, path=()):
        assert package not in path, f"import cycle: {' -> '.join(path + (package,))}"
        if package in order:
            return
        for dependency in sorted(deps[package]):
            visit(dependency, path + (package,))
        order.append(package)

    for package in packages:
        visit(package)
    assert deps["core"] == set()  # the foundations import nothing above them
    assert [p.name for p in MODEL.glob("*.py")] == ["__init__.py"]  # every module sits in its room


def test_model_imports_no_qt_and_no_gui():
    names = _imports(MODEL)
    assert not {n for n in names if n.split(".")[0] in ("PyQt5", "pyqtgraph", "hnse_gui", "hnse_cli")}
