"""Symbolic layer: the symbol registry, project-specific SymPy nodes, printing and exact checks.

Depends on SymPy only; never imports ``numeric`` evaluation code or ``reports``.
"""
