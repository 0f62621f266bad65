"""Numeric layer: high-precision (mpmath) and Monte Carlo (torch) evaluation.

Imports ``symbolic`` for the expression nodes it evaluates; never imports ``reports``.
"""
