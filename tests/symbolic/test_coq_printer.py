"""The Coq printer: every construct it knows, and a loud refusal of every other one."""
import pytest
import sympy as sp

from symbolic.coq import CoqPrintError, coq, coq_name, domain_conditions, sqrt_atoms, sqrt_groups
from symbolic.ops import Frob2
from symbolic.registry import sym

x, y = sp.symbols("x y", positive=True)
n, d = sym("n"), sym("d")


@pytest.mark.parametrize("expr,text", [
    (x, "x"),
    (sp.Integer(3), "3"),
    (sp.Integer(-3), "(- 3)"),
    (sp.Rational(3, 4), "(3 / 4)"),
    (sp.Rational(-3, 4), "(- (3 / 4))"),
    (x + y, "x + y"),
    (x - y, "x - y"),
    (-x, "(- x)"),
    (2 * x * y, "2 * x * y"),
    (x / y, "x / y"),
    (x / (2 * y), "x / (2 * y)"),
    (x ** 3, "x ^ 3"),
    (1 / x ** 2, "1 / x ^ 2"),
    (1 / x, "1 / x"),
    (sp.sqrt(x), "sqrt x"),
    (x ** sp.Rational(3, 2), "(sqrt x) ^ 3"),
    (1 / sp.sqrt(x + 1), "1 / sqrt (x + 1)"),
    (sp.Abs(x - y), "Rabs (x - y)"),
    (sp.Min(x, y), "(Rmin x y)"),
    (sp.Max(x, y), "(Rmax x y)"),
    (sp.exp(x), "exp x"),
    (sp.log(x), "ln x"),
    (sp.pi, "PI"),
    (sp.E, "(exp 1)"),
])
def test_prints_each_construct(expr, text):
    assert coq(expr) == text


@pytest.mark.parametrize("rel,text", [
    (sp.Eq(x, y, evaluate=False), "x = y"),
    (sp.Ne(x, y, evaluate=False), "x <> y"),
    (sp.Lt(x, y, evaluate=False), "x < y"),
    (sp.Le(x, y, evaluate=False), "x <= y"),
    (sp.Gt(x, y, evaluate=False), "x > y"),
    (sp.Ge(x, y, evaluate=False), "x >= y"),
    (sp.And(sp.Lt(0, x - y), sp.Le(x, 1)), None),
    (sp.Equivalent(sp.Gt(x, 1), sp.Gt(y, 1)), "(x > 1) <-> (y > 1)"),
])
def test_prints_relations(rel, text):
    out = coq(rel)
    if text is None:
        assert "/\\" in out and "x <= 1" in out
    else:
        assert out == text


def test_sqrt_products_print_as_one_replaceable_group():
    e = 3 * x * sp.sqrt(x + 1) / sp.sqrt(y)
    assert coq(e) == "3 * x * (sqrt (x + 1) / sqrt y)", coq(e)
    assert sqrt_groups(e) == [sp.sqrt(x + 1) / sp.sqrt(y)]
    assert set(sqrt_atoms(e)) == {x + 1, y}


def test_domain_conditions_name_denominators_and_radicands():
    conds = domain_conditions(d / (n - d - 1) + sp.sqrt(n - d))
    assert ("nonzero", n - d - 1) in conds and ("nonneg", n - d) in conds


def test_reserved_and_odd_names_are_prefixed():
    assert coq_name("R") == "v_R" and coq_name("sqrt") == "v_sqrt"
    assert coq_name("lam_top") == "lam_top"
    assert coq(sp.Symbol("S") + 1) == "v_S + 1"


@pytest.mark.parametrize("expr,what", [
    (sp.Float(0.5) * x, "floating-point"),
    (x ** y, "power"),
    (x ** sp.Rational(1, 3), "power"),
    (sp.Function("f")(x), "f"),
    (Frob2(sp.MatrixSymbol("A", 2, 2)), "Frob2"),
    (sp.MatrixSymbol("A", 2, 2), "MatrixSymbol"),
    (sp.Sum(x, (y, 1, 3)), "Sum"),
    (sp.sin(x), "sin"),
])
def test_refuses_unknown_constructs_loudly(expr, what):
    with pytest.raises(CoqPrintError, match=what):
        coq(expr)
