"""Model parameters: one table of names, types, defaults and meanings; parsing and validation.

This is the single place where the parameters accepted by ``--set NAME=VALUE`` are declared.
Unknown names, values of the wrong type and values outside their range are refused with an
``InputError`` naming the parameter (the command line exits with status 2).

List values are comma separated; ``v*m`` repeats ``v`` ``m`` times, so a three-level spectrum of
a 300-dimensional covariance is ``cov_eigs=4*100,1*100,0.25*100``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

from .errors import InputError


@dataclass(frozen=True)
class Params:
    d: int = 6            # input dimension
    k: int = 3            # output dimension
    n: int = 24           # number of downstream samples
    r: int = 1            # LoRA rank (1 <= r <= min(d, k))
    sigma: float = 1.0    # label-noise standard deviation (> 0)
    # singular values of the task shift Delta*; its singular vectors are Haar random from the
    # seed; at most min(d, k) values, zeros allowed (s = number of non-zero values)
    shift_sv: tuple = (3.0, 2.0, 1.0)
    # eigenvalues of Sigma, with a Haar-random eigenbasis from the seed; empty = identity
    cov_eigs: tuple = field(default=())
    seed: int = 0         # seed of the instance (singular vectors, eigenbasis)
    # --- LoRA's fitting covariance C (misalignment, THEORY 5); needs Sigma = I (by whitening,
    # a general Sigma maps to this case with Delta* Sigma^{1/2}).  All at their defaults: no C.
    # eigenvalues of C in the basis of Delta*'s right singular vectors sorted by decreasing
    # singular value (aligned); empty = identity
    fit_eigs: tuple = field(default=())
    cov_angle: float = 0.0   # rotation of C's eigenbasis in the plane (v_r, v_{r+1}), radians
    coupling: float = 0.0    # off-diagonal coupling of C between v_r and v_{r+1} (before rotation)

    @property
    def has_fit_cov(self) -> bool:
        """True when the fitting covariance C is specified (any misalignment parameter set)."""
        return bool(self.fit_eigs) or self.cov_angle != 0 or self.coupling != 0

    @property
    def s(self) -> int:
        return sum(1 for v in self.shift_sv if v != 0)

    @property
    def isotropic(self) -> bool:
        return not self.cov_eigs or all(e == 1 for e in self.cov_eigs)

    @property
    def eigs(self) -> tuple:
        return tuple(self.cov_eigs) if self.cov_eigs else (1.0,) * self.d

    @property
    def fit(self) -> tuple:
        """Eigenvalues of the fitting covariance ``C`` (``fit_eigs``; empty = the identity)."""
        return tuple(self.fit_eigs) if self.fit_eigs else (1.0,) * self.d

    def as_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["shift_sv"] = list(self.shift_sv)
        out["cov_eigs"] = list(self.cov_eigs)
        out["fit_eigs"] = list(self.fit_eigs)
        return out


_INT_PARAMS = {"d", "k", "n", "r", "seed"}
_FLOAT_PARAMS = {"sigma", "cov_angle", "coupling"}
_LIST_PARAMS = {"shift_sv", "cov_eigs", "fit_eigs"}
PARAM_NAMES = tuple(f.name for f in fields(Params))


def _parse_list(name: str, text: str) -> tuple:
    out: list[float] = []
    if not text.strip():
        raise InputError(f"{name}: empty value; give comma-separated numbers, or leave the "
                         "parameter out for its default")
    for i, tok in enumerate(t.strip() for t in text.split(",")):
        if not tok:
            raise InputError(f"{name}: item {i + 1} of {text!r} is empty (a stray comma?)")
        try:
            if "*" in tok:
                v, m = tok.split("*", 1)
                count = int(m)
                if count < 1:
                    raise ValueError
                out.extend([float(v)] * count)
            else:
                out.append(float(tok))
        except ValueError:
            raise InputError(f"{name}: cannot read {tok!r} as a number or 'value*count'") from None
    return tuple(out)


def parse_value(name: str, text):
    if name not in PARAM_NAMES:
        raise InputError(f"unknown parameter {name!r}; known: {', '.join(PARAM_NAMES)}")
    if not isinstance(text, str):
        return text
    if name in _INT_PARAMS:
        try:
            return int(text)
        except ValueError:
            raise InputError(f"{name} must be an integer, got {text!r}") from None
    if name in _FLOAT_PARAMS:
        try:
            return float(text)
        except ValueError:
            raise InputError(f"{name} must be a number, got {text!r}") from None
    return _parse_list(name, text)


def parse_assignments(items, base: Params | None = None) -> Params:
    """``["d=4", "shift_sv=3,2"]`` -> validated ``Params`` (starting from ``base``)."""
    values = {}
    for item in items or []:
        if "=" not in item:
            raise InputError(f"--set expects NAME=VALUE, got {item!r}")
        name, text = item.split("=", 1)
        name = name.strip()
        if name in values:
            raise InputError(f"parameter {name!r} is set twice")
        values[name] = parse_value(name, text.strip())
    return make_params(base, **values)


def make_params(base: Params | None = None, **values) -> Params:
    for name in values:
        if name not in PARAM_NAMES:
            raise InputError(f"unknown parameter {name!r}; known: {', '.join(PARAM_NAMES)}")
    for name in _LIST_PARAMS & values.keys():
        values[name] = tuple(float(v) for v in values[name])
    p = replace(base or Params(), **values)
    validate(p)
    return p


# Magnitudes outside this range square or multiply into overflow/underflow in float64 (risks
# are sums of squares times dimensions); such values are refused rather than computed as inf/0.
MAGNITUDE = (1e-30, 1e30)
# Covariances more ill-conditioned than this cannot be whitened/inverted reliably in float64.
MAX_CONDITION = 1e12


def _check_magnitude(name: str, values, zero_ok: bool) -> None:
    lo, hi = MAGNITUDE
    for v in values:
        if v == 0 and zero_ok:
            continue
        if not lo <= abs(v) <= hi:
            raise InputError(f"{name} = {v:g} is outside the supported range [{lo:g}, {hi:g}] "
                             "(its squares would overflow or underflow in float64)")


def _check_condition(name: str, eigs) -> None:
    cond = max(eigs) / min(eigs)
    if cond > MAX_CONDITION:
        raise InputError(f"{name}: condition number {cond:.3g} exceeds {MAX_CONDITION:g}; "
                         "such a covariance cannot be inverted reliably in float64")


def validate(p: Params) -> None:
    if not isinstance(p.seed, int) or p.seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {p.seed!r}")
    for name in ("d", "k", "n"):
        if not isinstance(getattr(p, name), int) or getattr(p, name) < 1:
            raise InputError(f"{name} must be a positive integer, got {getattr(p, name)!r}")
    if not 1 <= p.r <= min(p.d, p.k):
        raise InputError(f"r must satisfy 1 <= r <= min(d, k) = {min(p.d, p.k)}, got r = {p.r}")
    if not (math.isfinite(p.sigma) and p.sigma > 0):
        raise InputError(f"sigma must be a positive number, got {p.sigma}")
    _check_magnitude("sigma", [p.sigma], zero_ok=False)
    if len(p.shift_sv) > min(p.d, p.k):
        raise InputError(f"shift_sv has {len(p.shift_sv)} values but Delta* is {p.k}x{p.d}: "
                         f"at most min(d, k) = {min(p.d, p.k)} singular values")
    if any(not math.isfinite(v) or v < 0 for v in p.shift_sv):
        raise InputError(f"shift_sv must be non-negative finite numbers, got {list(p.shift_sv)}")
    _check_magnitude("shift_sv", p.shift_sv, zero_ok=True)
    if p.cov_eigs:
        if len(p.cov_eigs) != p.d:
            raise InputError(f"cov_eigs must list d = {p.d} eigenvalues (use v*m to repeat), "
                             f"got {len(p.cov_eigs)}")
        if any(not math.isfinite(v) or v <= 0 for v in p.cov_eigs):
            raise InputError("cov_eigs: the covariance must be symmetric positive definite, "
                             f"but an eigenvalue is <= 0 or not finite: {min(p.cov_eigs)}")
        _check_magnitude("cov_eigs", p.cov_eigs, zero_ok=False)
        _check_condition("cov_eigs", p.cov_eigs)
    if p.has_fit_cov:
        _validate_fit_cov(p)


def _validate_fit_cov(p: Params) -> None:
    """The misalignment parameters (fit_eigs, cov_angle, coupling): see ``Params``."""
    if not p.isotropic:
        raise InputError("fit_eigs/cov_angle/coupling describe LoRA's fitting covariance C "
                         "relative to an isotropic population: leave cov_eigs empty (Sigma = I); "
                         "a general Sigma reduces to this case with Delta* Sigma^{1/2}")
    if p.fit_eigs:
        if len(p.fit_eigs) != p.d:
            raise InputError(f"fit_eigs must list d = {p.d} eigenvalues (use v*m to repeat), "
                             f"got {len(p.fit_eigs)}")
        if any(not math.isfinite(v) or v <= 0 for v in p.fit_eigs):
            raise InputError("fit_eigs: the fitting covariance must be symmetric positive "
                             f"definite, but an eigenvalue is <= 0 or not finite: {min(p.fit_eigs)}")
        _check_magnitude("fit_eigs", p.fit_eigs, zero_ok=False)
        _check_condition("fit_eigs", p.fit_eigs)
    for name in ("cov_angle", "coupling"):
        if not math.isfinite(getattr(p, name)):
            raise InputError(f"{name} must be a finite number, got {getattr(p, name)}")
    if abs(p.coupling) > MAGNITUDE[1]:
        raise InputError(f"coupling = {p.coupling:g} is outside the supported range")
    if (p.cov_angle != 0 or p.coupling != 0) and p.r >= p.d:
        raise InputError(f"cov_angle/coupling mix the directions v_r and v_(r+1): need r < d, "
                         f"got r = {p.r}, d = {p.d}")
    if p.coupling != 0:
        eigs = p.fit
        lo, hi = eigs[p.r - 1], eigs[p.r]
        if p.coupling ** 2 >= lo * hi:
            raise InputError(f"coupling = {p.coupling} makes the fitting covariance indefinite: "
                             f"need coupling^2 < fit_eigs[r-1] * fit_eigs[r] = {lo * hi:g}")
