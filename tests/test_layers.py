"""The dependency direction symbolic -> numeric -> derivations -> reports, enforced on the source:
no module of ``symbolic/`` imports ``numeric``, ``derivations`` or ``reports``; no module of
``numeric/`` imports ``derivations`` or ``reports`` (at module level or inside a function)."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"symbolic": {"numeric", "derivations", "reports"},
             "numeric": {"derivations", "reports"}}


def imported_packages(path: Path) -> set[str]:
    """Top-level packages ``path`` imports (absolute imports; relative ones stay inside)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_lower_layers_never_import_higher_ones(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert len(files) > 3, f"no modules found under {package}/"
    bad = {str(f.relative_to(ROOT)): sorted(imported_packages(f) & FORBIDDEN[package])
           for f in files}
    assert {f: p for f, p in bad.items() if p} == {}


def test_the_scan_sees_an_import_inside_a_function(tmp_path):
    """Negative control: a lazy import of ``reports`` in a function body is found."""
    f = tmp_path / "m.py"
    f.write_text("import numpy\n\ndef g():\n    from reports.sensitivity_figures import x\n"
                 "    import derivations.cli\n    from . import sibling\n")
    assert imported_packages(f) == {"numpy", "reports", "derivations"}
