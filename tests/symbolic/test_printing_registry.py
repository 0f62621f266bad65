import sympy as sp

from symbolic.ops import Expect, Frob2, PInv, TruncSVD
from symbolic.printing import latex, relation_latex
from symbolic.registry import REGISTRY, notation_table, sym


def test_registry_names_print_as_declared():
    assert latex(sym("Delta")) == r"\Delta^*"
    assert latex(sym("sigma")) == r"\sigma"
    assert r"\hat\Delta_F" in latex(sym("DeltaF") - sym("Delta"))


def test_project_nodes():
    X, E = sym("X"), sym("E")
    assert latex(Frob2(E)) == r"\left\lVert E \right\rVert_F^2"
    assert latex(PInv(X)) == "X^{+}"
    assert latex(TruncSVD(E, sym("r"))) == r"P_{r}\!\left(E\right)"
    assert latex(Expect(Frob2(E), E)).startswith(r"\mathbb{E}_{E}")
    assert relation_latex(sym("d"), "<=", sym("n")) == r"d \le n"


def test_notation_table_covers_registry_once():
    rows = notation_table()
    assert len(rows) == len(REGISTRY)
    assert len({r["name"] for r in rows}) == len(rows)
    assert all(r["meaning"] for r in rows)


def test_matrix_shapes_from_registry():
    X = sym("X")
    assert X.shape == (sym("d"), sym("n"))
    assert isinstance(sp.Trace(X.T * X), sp.Trace)


def test_terms_print_in_reading_order():
    d, n = sym("d"), sym("n")
    assert latex(n - d - 1) == "n - d - 1"
    assert latex(1 - n / d) == r"1 - \frac{n}{d}"
    assert latex(sym("DeltaF") - sym("Delta")) == r"\hat\Delta_F - \Delta^*"
