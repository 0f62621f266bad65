"""Plain-text (Unicode) forms of the short LaTeX strings used as titles.

Titles are written once, in LaTeX, for the report; the terminal (``lora-audit list``, progress
lines) gets ``plain(title)``.  Only a small, explicit subset of LaTeX is understood: an unknown
macro raises ``ValueError`` naming it (add it to ``MACROS``), so no title is ever printed half
converted.  ``check_title`` refuses titles that would leak code into print: ``_`` or ``^``
outside math mode, or bare Greek names (``Sigma = I``) where a symbol is meant.
"""
from __future__ import annotations

import re

MACROS = {
    "times": "×", "le": "≤", "leq": "≤", "ge": "≥", "geq": "≥", "ne": "≠", "neq": "≠",
    "to": "→", "infty": "∞", "approx": "≈", "sim": "~", "cdot": "·", "pm": "±",
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "Delta": "Δ", "varepsilon": "ε",
    "epsilon": "ε", "eta": "η", "kappa": "κ", "lambda": "λ", "mu": "μ", "rho": "ρ",
    "varrho": "ϱ", "hat": "\u0302", "sigma": "σ", "Sigma": "Σ", "tau": "τ", "theta": "θ", "omega": "ω", "ell": "ℓ",
    "lVert": "‖", "rVert": "‖", "|": "‖", "lvert": "|", "rvert": "|", "sqrt": "√",
    ",": " ", ";": " ", " ": " ", "quad": " ", "&": "&", "%": "%", "$": "$", "_": "_",
    "emph": "", "textbf": "", "mathbb": "", "mathrm": "", "mathbf": "", "mathcal": "", "operatorname": "",
    "text": "", "hat": "\u0302", "tilde": "\u0303", "bar": "\u0304", "top": "ᵀ", "perp": "⊥",
    "dots": "…", "ldots": "…",
}
# macros whose braced argument is kept as is (the macro itself adds nothing or a mark after it)
_WRAPPERS = {"mathbb", "emph", "textbf", "mathrm", "mathbf", "mathcal", "operatorname", "text"}
_ACCENTS = {"hat", "tilde", "bar"}
_RELATIONS = {"le", "leq", "ge", "geq", "ne", "neq", "approx", "to", "sim"}
_SUP = str.maketrans("0123456789+-()T", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁽⁾ᵀ")
_GREEK_WORDS = re.compile(r"\b(Sigma|sigma|Delta|beta|eta|epsilon|varepsilon|delta|kappa|lambda)\b")


def _group(s: str, i: int) -> tuple[str, int]:
    """The braced group (or single character) starting at ``s[i]``; returns (content, next)."""
    if i < len(s) and s[i] == "{":
        depth, j = 0, i
        while j < len(s):
            depth += {"{": 1, "}": -1}.get(s[j], 0)
            if depth == 0:
                return s[i + 1:j], j + 1
            j += 1
        raise ValueError(f"unbalanced braces in {s!r}")
    if i < len(s) and s[i] == "\\":
        m = re.match(r"\\([A-Za-z]+|.)", s[i:])
        return s[i:i + m.end()], i + m.end()
    return s[i:i + 1], i + 1


def plain(latex: str) -> str:
    """``r"Misalignment bias, $2\\times 2$ case"`` -> ``"Misalignment bias, 2×2 case"``."""
    out, i, s = [], 0, str(latex)
    while i < len(s):
        c = s[i]
        if c == "$":
            i += 1
        elif c == "\\":
            m = re.match(r"\\([A-Za-z]+|.)", s[i:])
            name = m.group(1)
            i += m.end()
            if name not in MACROS:
                raise ValueError(f"plain(): unknown LaTeX macro \\{name} in {latex!r}; "
                                 "add it to symbolic/text.py MACROS")
            if name in _WRAPPERS or name in _ACCENTS or name == "sqrt":
                while i < len(s) and s[i] == " ":
                    i += 1
                arg, i = _group(s, i)
                inner = plain(arg)
                out.append(inner + MACROS[name] if name in _ACCENTS else
                           (MACROS[name] + (inner if len(inner) == 1 else f"({inner})")
                            if name == "sqrt" else inner))
            elif name in _RELATIONS:
                out.append(f" {MACROS[name]} ")
            else:
                out.append(MACROS[name])
                if name.isalpha() and i < len(s) and s[i] == " ":
                    i += 1                     # the space that ends a control word
        elif c in "^_":
            arg, i = _group(s, i + 1)
            text = plain(arg)
            if c == "^" and all(ch in "0123456789+-()T" for ch in text):
                out.append(text.translate(_SUP))
            else:
                out.append(c + (text if len(text) == 1 else f"({text})" if c == "^" else text))
        elif c in "{}":
            i += 1
        elif s.startswith("---", i):
            out.append("—")
            i += 3
        elif s.startswith("--", i):
            out.append("–")
            i += 2
        elif c == "~":
            out.append(" ")
            i += 1
        else:
            out.append(c)
            i += 1
    text = re.sub(r"\s*=\s*", " = ", "".join(out))
    return re.sub(r" {2,}", " ", text).strip()


def check_title(latex: str, where: str) -> None:
    """Refuse a title that would print code: raises ``ValueError`` naming ``where``."""
    outside = re.sub(r"\$[^$]*\$", " ", latex)
    if "$" in outside:
        raise ValueError(f"{where}: unbalanced $ in title {latex!r}")
    if re.search(r"(?<!\\)[_^]", outside):
        raise ValueError(f"{where}: title {latex!r} has _ or ^ outside math mode (code in print); "
                         "write the mathematics in $...$")
    m = _GREEK_WORDS.search(outside)
    if m:
        raise ValueError(f"{where}: title {latex!r} spells the symbol {m.group(1)!r} in words; "
                         f"write $\\{m.group(1)}$")
    plain(latex)
