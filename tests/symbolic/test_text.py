"""Plain-text titles: LaTeX in the report, Unicode in the terminal, code in neither."""
import pytest

from symbolic.text import check_title, plain


@pytest.mark.parametrize("latex,text", [
    (r"Misalignment bias, $2\times 2$ case", "Misalignment bias, 2×2 case"),
    (r"first-order bound $\beta_{\mathrm{mis}}\le 2\eta/(1-\eta)\,b_r$",
     "first-order bound β_mis ≤ 2η/(1-η) b_r"),
    (r"in $(\varepsilon/\delta)^2$ (Davis--Kahan/Wedin)", "in (ε/δ)² (Davis–Kahan/Wedin)"),
    (r"$P_r(R)\,X^{+}$ is", "P_r(R) X⁺ is"),
    (r"($\Sigma = I$): sharp", "(Σ = I): sharp"),
    (r"$\hat{\Sigma}$ and $\sqrt{n}$", "Σ̂ and √n"),
])
def test_plain(latex, text):
    assert plain(latex) == text


def test_unknown_macro_is_refused_loudly():
    with pytest.raises(ValueError, match=r"unknown LaTeX macro \\frobnicate"):
        plain(r"$\frobnicate x$")


@pytest.mark.parametrize("bad,needle", [
    ("P_r(R) X^+ is the minimiser", "outside math"),
    ("underdetermined (Sigma = I)", "'Sigma'"),
    ("a $x$ and $y", "unbalanced"),
])
def test_check_title_refuses_code_in_print(bad, needle):
    with pytest.raises(ValueError, match=needle):
        check_title(bad, "t")


def test_every_registered_title_is_clean():
    from derivations import registry
    from reports.section import discover_sections

    for der in registry().values():
        check_title(der.title, der.id)
        assert "$" not in der.plain_title and "\\" not in der.plain_title
    for sec in discover_sections().values():
        check_title(sec.title, sec.id)


def test_one_symbol_one_meaning_and_undefined_symbols_fail_the_build():
    import sympy as sp

    from symbolic import registry
    from symbolic.printing import UndefinedSymbolError, latex

    with pytest.raises(ValueError, match="one symbol, one meaning"):
        registry._declare("zz_test_dup", r"\Sigma", "a second meaning of Sigma")
    assert "zz_test_dup" not in registry.REGISTRY
    with pytest.raises(UndefinedSymbolError, match="'h'"):
        latex(sp.Symbol("h") + 1)
    latexes = ["".join(v.latex.split()) for v in registry.REGISTRY.values()]
    assert len(latexes) == len(set(latexes))


def test_long_relations_are_broken_over_lines_not_shrunk():
    import sympy as sp

    from symbolic.printing import relation_display, visible_width
    from symbolic.registry import sym

    d, n, k, sigma = sym("d"), sym("n"), sym("k"), sym("sigma")
    short = relation_display(d, "=", n + 1)
    assert "aligned" not in short
    long = sum((d + i) ** 2 * sigma ** i / (n - d - i) for i in range(1, 9))
    out = relation_display(k, "<=", long, width=40)
    assert out.startswith(r"\begin{aligned}") and out.count(r"\\") >= 3
    assert all(visible_width(line) <= 48 for line in out.split(r"\\"))
    assert r"\le" in out


def test_wide_tables_are_split_with_the_first_column_repeated():
    from reports.context import split_columns

    header = ["id"] + [f"column{j}" for j in range(12)]
    rows = [[f"row{i}"] + [f"{i * j:.6f}" for j in range(12)] for i in range(3)]
    parts = split_columns(header, rows, width=60)
    assert len(parts) > 2
    assert all(h[0] == "id" and all(r[0].startswith("row") for r in rr) for h, rr in parts)
    assert sum(len(h) - 1 for h, _ in parts) == 12
