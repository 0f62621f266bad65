"""Long formulas named in parts, wide tables wrapped, checker summaries tidied (issue 15)."""
import sympy as sp

from reports.context import column_spec, named_display, tidy_summary
from symbolic.printing import NamedPart, name_parts, visible_width


def _unname(expr, defs_by_symbol):
    """Substitute every name by its definition until none is left."""
    for _ in range(len(defs_by_symbol) + 1):
        expr = expr.xreplace(defs_by_symbol)
    return expr


def test_second_order_statement_is_named_in_parts_and_states_the_same_relation():
    from derivations.theorems import misalign_bounds as mb

    st, names = mb.second.statement, mb.second.extra.display_names
    (lhs, rhs), defs = name_parts([st.lhs, st.rhs], names)
    syms = {s._tex: s for s in (lhs.free_symbols | rhs.free_symbols) | {
        x for _, e in defs for x in e.free_symbols} if isinstance(s, NamedPart)}
    back = {syms[tex]: expr for tex, expr in defs if tex in syms}
    assert [tex for tex, _ in defs] == ["h", r"\delta_+", r"\bar K", r"\omega"]
    assert sp.simplify(_unname(lhs, back) - st.lhs) == 0
    assert sp.simplify(_unname(rhs, back) - st.rhs) == 0
    shown, where = named_display(st.lhs, st.rel, st.rhs, names)
    plain = named_display(st.lhs, st.rel, st.rhs)[0]
    assert visible_width(shown) < 60 < visible_width(plain)       # one short line, not pages
    assert len(where) == 4


def test_a_name_the_display_does_not_use_is_not_defined():
    x, y = sp.symbols("x y", positive=True)
    (e,), defs = name_parts([x + 1], [("q", "q", y ** 2 + 1)])
    assert e == x + 1 and defs == []
    (e,), defs = name_parts([x * (y ** 2 + 1)], [("q", "q", y ** 2 + 1)])
    assert [t for t, _ in defs] == ["q"] and e != x * (y ** 2 + 1)


def test_wide_columns_wrap_and_narrow_ones_do_not():
    spec = column_spec(["parameters", "z"], [["$d=3$, " * 12, "0.5"]])
    assert spec.count("p{") == 1 and spec.endswith("l@{}")
    assert "p{" not in column_spec(["a", "b"], [["1", "2"]])


def test_equal_range_ends_print_once_and_real_ranges_stay():
    assert tidy_summary("halving divides the gap by 1.000-1.000 (x)") == \
        "halving divides the gap by 1.000 (x)"
    assert tidy_summary("ratio 1.0-2.0") == "ratio 1.0-2.0"
    assert tidy_summary("seed 11-112") == "seed 11-112"


def test_sympy_code_in_a_summary_is_not_printed():
    assert tidy_summary("lhs - rhs = Fnorm2*n*(-d + n)/d**2") == "lhs - rhs is not identically 0"
    assert tidy_summary("lhs - rhs = 0") == "lhs - rhs = 0"
