"""Sharp (asymptotic) excess risk of LoRA's global minimiser, and FFT's exact risk, in closed form.

THEORY.md section 4.3.  After whitening, LoRA truncates a *spiked* matrix: signal ``M`` plus
i.i.d. Gaussian noise.  Normalised as ``Y = X_s + Z/sqrt(N)`` (``m x N``, ``m <= N``,
``beta = m/N``), a signal singular value ``x > beta^(1/4)`` produces an observed singular value
``sqrt((x + 1/x)(x + beta/x))`` and squared cosines ``(x^4 - beta)/(x^4 + beta x^2)`` (the
``m`` side) and ``(x^4 - beta)/(x^4 + x^2)`` (the ``N`` side)  (Benaych-Georges & Nadakuditi 2012;
Gavish & Donoho 2014 -- *literature*, and checked by simulation in
``derivations/theorems/lora_sharp.py``).  Per component, in units of the normalised matrix, the
squared error of keeping a detected spike is ``1 + beta + 3 beta/x^2``, of dropping it ``x^2``,
of keeping a pure-noise direction ``(1 + sqrt(beta))^2`` in the limit (at finite size: the
Marchenko-Pastur *classical locations* -- the ``j``-th kept noise direction sits at the MP
quantile of upper-tail mass ``(j - 1/2)/m``).

Mapping to the regression (``numeric.estimators.lora_over`` / ``lora_under``):

* over (``n >= d``):  the matrix is ``M + G`` (``k x d``), ``M = Delta* S^{1/2}``; ``N = max(k, d)``,
  ``x_i = sqrt(n) sigma_i(Delta* Sigma^{1/2}) / (sigma sqrt(N))``; the risk maps the error ``D``
  through ``S^{-1/2} Sigma^{1/2}`` on the ``d`` side;
* under (``n < d``, ``Sigma = I``): the matrix is ``M + E`` (``k x n``), ``M = Delta* X``;
  ``N = max(k, n)``, ``x_i = sqrt(n) sigma_i(Delta*) / (sigma sqrt(N))``; the error maps through
  ``X^+`` on the ``n`` side, plus the FFT bias ``(1 - n/d) ||Delta*||_F^2``.

The map on the *sample side* (``d`` over, ``n`` under) weights two kinds of direction
differently, and this module keeps them apart (``mapping="split"``, the default):

* a **signal** direction (the sample-side singular vector of ``M``) has weight ``1/n`` over
  (``b^T Sigma b / b^T S b``) and ``1/d`` under (``v^T P v / v^T X X^T v``): in risk units one unit
  of normalised error costs ``sigma^2 N / n`` resp. ``sigma^2 N / d``; so a dropped spike costs
  exactly ``sigma_i^2(Delta* Sigma^{1/2})`` over and ``(n/d) sigma_i^2`` under, as in THEORY;
* a **noise** direction (independent of ``X``) has weight ``tr(Sigma S^{-1})/d -> 1/(n - d - 1)``
  (inverse Wishart) resp. ``tr((X^T X)^{-1})/n -> 1/(d - n - 1)``: the variance scale
  ``sigma^2 N/(n - d - 1)`` resp. ``sigma^2 N/(d - n - 1)``.

A kept spike's error ``1 + beta + 3 beta/x^2`` splits into its part along the signal direction on
the sample side and the part orthogonal to it (both exact consequences of the spiked formulas;
see ``_keep_split``).  ``mapping="theory"`` instead charges the whole kept error at the noise
scale, which is THEORY.md's first-order mapping; the two agree as ``n/d -> infinity``
(over) resp. ``d/n -> infinity`` (under) but differ at finite aspect ratios -- the
simulation in ``tests/numeric/test_sharp.py`` decides between them.

Everything here is an **asymptotic approximation** (proportional limit, fixed spikes) except
``fft_risk``, which is the exact finite-sample expectation (THEORY 3).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from .errors import InputError

MAPPINGS = ("split", "theory")


# ------------------------------------------------------------------------------- the spiked model
def keep_threshold(beta) -> float:
    """``x*`` with ``x*^2 = [(1 + beta) + sqrt(beta^2 + 14 beta + 1)]/2``: keep a spike iff ``x > x*``.

    It is the positive root of ``x^4 - (1 + beta) x^2 - 3 beta``, i.e. where the keep cost
    ``1 + beta + 3 beta/x^2`` equals the drop cost ``x^2``.
    """
    beta = _check_beta(beta)
    return math.sqrt(((1 + beta) + math.sqrt(beta * beta + 14 * beta + 1)) / 2)


def _check_beta(beta) -> float:
    try:
        beta = float(beta)
    except (TypeError, ValueError):
        raise InputError(f"beta must be a number in (0, 1], got {beta!r}") from None
    if not (0 < beta <= 1):
        raise InputError(f"beta = m/N must lie in (0, 1], got {beta}")
    return beta


def _keep_split(x: float, beta: float, sample_side: str) -> tuple[float, float]:
    """Keep cost of a detected spike split into (along the sample-side signal vector, orthogonal).

    With ``v`` the true and ``v_hat = c v + v_perp`` the observed singular vector on the sample
    side, the error ``y u_hat v_hat^T - x u v^T = (y c u_hat - x u) v^T + y u_hat v_perp^T``:
    ``along = y^2 c^2 - 2 x y c_m c_N + x^2`` and ``orth = y^2 (1 - c^2)``, where ``c`` is that side's
    cosine.  Substituting the spiked formulas:

    * sample side = ``N`` side: ``along = beta (1 + 1/x^2 - beta/x^4)``, ``orth = (1 + beta/x^2)^2``;
    * sample side = ``m`` side: ``along = 1 + beta/x^2 - beta/x^4``, ``orth = beta (1 + 1/x^2)^2``;

    both sum to ``1 + beta + 3 beta/x^2``.
    """
    x2, x4 = x * x, x ** 4
    if sample_side == "N":
        return beta * (1 + 1 / x2 - beta / x4), (1 + beta / x2) ** 2
    return 1 + beta / x2 - beta / x4, beta * (1 + 1 / x2) ** 2


def spike_components(x, beta) -> dict:
    """Per-spike quantities of the normalised spiked model (units of ``Y = X_s + Z/sqrt(N)``).

    Returns ``detected`` (``x > beta^(1/4)``), ``observed_sv`` (the limit of the corresponding
    observed singular value; the bulk edge ``1 + sqrt(beta)`` when undetected), ``cos2_m`` and
    ``cos2_N`` (squared cosines on the ``m`` (smaller) and ``N`` (larger) side; 0 undetected),
    ``err_keep`` (squared error when the component is kept: ``1 + beta + 3 beta/x^2`` detected,
    ``x^2 + (1 + sqrt(beta))^2`` undetected), ``err_drop`` (``x^2``), ``keep_pays``
    (``err_keep < err_drop``, equivalently ``x > x*``) and ``threshold`` (``x*``).
    """
    beta = _check_beta(beta)
    x = float(x)
    if not (math.isfinite(x) and x >= 0):
        raise InputError(f"a signal singular value must be finite and >= 0, got {x}")
    edge = 1 + math.sqrt(beta)
    detected = x > beta ** 0.25
    if detected:
        x2, x4 = x * x, x ** 4
        obs = math.sqrt((x + 1 / x) * (x + beta / x))
        c2m = (x4 - beta) / (x4 + beta * x2)
        c2n = (x4 - beta) / (x4 + x2)
        keep = 1 + beta + 3 * beta / x2
    else:
        obs, c2m, c2n = edge, 0.0, 0.0
        keep = x * x + edge ** 2
    drop = x * x
    return {"x": x, "beta": beta, "detected": detected, "observed_sv": obs, "cos2_m": c2m,
            "cos2_N": c2n, "err_keep": keep, "err_drop": drop, "keep_pays": keep < drop,
            "threshold": keep_threshold(beta)}


# ------------------------------------------------------------------------- Marchenko-Pastur
@lru_cache(maxsize=64)
def _mp_tail_table(beta: float, points: int = 20001):
    """Upper-tail mass of the Marchenko-Pastur law (ratio ``beta``, variance 1) on a grid.

    Density ``sqrt((b - t)(t - a)) / (2 pi beta t)`` on ``[a, b] = [(1 -+ sqrt(beta))^2]``; with
    ``t = a + (b - a)(1 + cos th)/2`` the tail integral from ``b`` (``th = 0``) is smooth in ``th``
    and the trapezoid rule is accurate to ~1e-9 on this grid.
    """
    a, b = (1 - math.sqrt(beta)) ** 2, (1 + math.sqrt(beta)) ** 2
    h = (b - a) / 2
    th = np.linspace(0.0, math.pi, points)
    c = np.cos(th)
    t = a + h * (1 + c)
    # (b - t)(t - a) = h^2 sin^2 th ;  dt = h sin th dth  ->  integrand h^2 sin^2 th / (2 pi beta t)
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.where(t > 0, h * h * (1 - c) * (1 + c) / (2 * math.pi * beta * np.where(t > 0, t, 1)),
                     h * (1 - c) / (2 * math.pi * beta))          # a = 0 (beta = 1) at th = pi
    tail = np.concatenate(([0.0], np.cumsum((f[1:] + f[:-1]) / 2 * np.diff(th))))
    return tail / tail[-1], t


def mp_upper_quantile(beta, mass) -> np.ndarray:
    """``t`` with MP upper-tail mass ``mass`` (array-like in [0, 1]): the classical location."""
    beta = _check_beta(beta)
    tail, t = _mp_tail_table(beta)
    return np.interp(np.asarray(mass, dtype=float), tail, t)


def mp_noise_levels(beta, m: int, count: int, quantiles: bool = True) -> np.ndarray:
    """Squared singular values of the top ``count`` noise directions of an ``m x N`` normalised
    noise matrix: MP classical locations (upper-tail mass ``(j - 1/2)/m``), or the edge."""
    if count <= 0:
        return np.zeros(0)
    if not quantiles:
        return np.full(count, (1 + math.sqrt(beta)) ** 2)
    j = np.arange(1, count + 1)
    return mp_upper_quantile(beta, (j - 0.5) / m)


# ------------------------------------------------------------------------------- the regression
def _regime(d, n, regime):
    if regime is None:
        return "over" if n >= d else "under"
    key = str(regime).lower()
    if key in ("over", "overdetermined"):
        return "over"
    if key in ("under", "underdetermined"):
        return "under"
    raise InputError(f"regime must be 'over' or 'under' (or None to infer), got {regime!r}")


def _check_dims(d, k, n, sigma):
    for name, v in (("d", d), ("k", k), ("n", n)):
        if int(v) != v or v < 1:
            raise InputError(f"{name} must be a positive integer, got {v!r}")
    if not (math.isfinite(float(sigma)) and sigma > 0):
        raise InputError(f"sigma must be a positive number, got {sigma!r}")


def _check_sv(sv, d, k):
    vals = [float(v) for v in (sv if sv is not None else ())]
    if any(not math.isfinite(v) or v < 0 for v in vals):
        raise InputError(f"singular values must be finite and non-negative, got {vals}")
    if len(vals) > min(d, k):
        raise InputError(f"{len(vals)} singular values given but the shift is {k}x{d}: at most "
                         f"min(d, k) = {min(d, k)}")
    return sorted(vals, reverse=True)


def geometry(d, k, n, regime=None) -> dict:
    """The spiked-model geometry of the regression: ``N``, ``m``, ``beta``, which side carries
    the data, and the two risk scales per unit of normalised error (over ``sigma^2``)."""
    reg = _regime(d, n, regime)
    if reg == "over":
        if not n > d + 1:
            raise InputError(f"overdetermined sharp risk needs n > d + 1 (inverse-Wishart mean), "
                             f"got n = {n}, d = {d}")
        sample, other = d, k
        noise_unit, signal_unit = 1.0 / (n - d - 1), 1.0 / n
    else:
        if not d > n + 1:
            raise InputError(f"underdetermined sharp risk needs d > n + 1, got d = {d}, n = {n}")
        sample, other = n, k
        noise_unit, signal_unit = 1.0 / (d - n - 1), 1.0 / d
    N, m = max(sample, other), min(sample, other)
    return {"regime": reg, "N": N, "m": m, "beta": m / N,
            "sample_side": "N" if sample >= other else "m",
            "noise_unit": noise_unit, "signal_unit": signal_unit}


def _normalise(vals, n, sigma, N) -> list[float]:
    return [math.sqrt(n) * s / (float(sigma) * math.sqrt(N)) for s in vals]


def normalised_spikes(d, k, n, sigma, sv, regime=None) -> list[float]:
    """``x_i = sqrt(n) sigma_i / (sigma sqrt(N))`` for the given singular values (descending)."""
    g = geometry(d, k, n, regime)
    return _normalise(_check_sv(sv, d, k), n, sigma, g["N"])


def lora_risk_sharp(d, k, n, sigma, sv, r, *, regime=None, noise_quantiles=True,
                    mapping="split", keep_extra=None, noise_shift=1) -> dict:
    """Sharp asymptotic expected excess risk of LoRA's global minimiser at rank ``r``.

    ``sv``: singular values of ``Delta* Sigma^{1/2}`` (overdetermined) or of ``Delta*``
    (underdetermined, where ``Sigma = I`` is assumed).  Returns ``risk = bias + variance`` with
    ``bias`` the cost of the signal not captured (dropped and undetected spikes; plus
    ``(1 - n/d)||Delta*||_F^2`` under) and ``variance`` the cost of the kept components (spikes and
    pure-noise directions), ``kept_spikes``, ``kept_noise``, per-component ``components``,
    ``regime``, ``N``, ``beta`` and the normalised spikes ``x``.

    ``keep_extra`` (a function ``(x, beta) -> float`` added to every kept spike's error, e.g.
    ``-beta/x^2`` for a keep cost ``1 + beta + 2 beta/x^2``) and ``noise_shift`` (the ``1`` in
    ``n - d - 1`` / ``d - n - 1``) exist only so that the audit can run deliberately wrong
    variants (negative controls, whose code supplies them); leave them at their defaults.
    """
    _check_dims(d, k, n, sigma)
    if mapping not in MAPPINGS:
        raise InputError(f"mapping must be one of {MAPPINGS}, got {mapping!r}")
    if int(r) != r or not 1 <= r <= min(d, k):
        raise InputError(f"r must satisfy 1 <= r <= min(d, k) = {min(d, k)}, got r = {r}")
    g = geometry(d, k, n, regime)
    vals = _check_sv(sv, d, k)
    N, m, beta, side = g["N"], g["m"], g["beta"], g["sample_side"]
    s2 = float(sigma) ** 2
    gap = (n - d) if g["regime"] == "over" else (d - n)
    noise_scale = s2 * N / (gap - noise_shift)
    signal_scale = s2 * N * g["signal_unit"]
    kept_scale = noise_scale if mapping == "theory" else None
    r_eff = min(int(r), m)                      # P_r of an m x N matrix has rank <= m
    if r_eff == m and keep_extra is None and noise_shift == 1 and mapping == "split":
        # P_r is the identity: LoRA *is* FFT, and FFT's risk is exact (THEORY 3).  The
        # per-component accounting below assumes r << m and would overcount here.
        fnorm2 = sum(v * v for v in vals)
        if g["regime"] == "under":
            exact = fft_risk(d, k, n, sigma, fnorm2=fnorm2)
            bias = (1 - n / d) * fnorm2
        else:
            exact = fft_risk(d, k, n, sigma)
            bias = 0.0
        xs = _normalise(vals, n, sigma, N)
        return {"risk": exact, "bias": bias, "variance": exact - bias, "kept_spikes":
                sum(1 for x_ in xs if x_ > beta ** 0.25), "kept_noise": m - sum(
                    1 for x_ in xs if x_ > beta ** 0.25), "components": [], "regime": g["regime"],
                "N": N, "m": m, "beta": beta, "x": xs, "sample_side": side,
                "noise_scale": noise_scale, "signal_scale": signal_scale, "mapping": mapping,
                "noise_quantiles": bool(noise_quantiles), "exact": True}
    xs = _normalise(vals, n, sigma, N)
    bias = (1 - n / d) * sum(v * v for v in vals) if g["regime"] == "under" else 0.0
    variance = 0.0
    components = []
    kept_spikes = 0
    for i, (s, x) in enumerate(zip(vals, xs)):
        if s == 0:
            continue
        info = spike_components(x, beta)
        keep = info["detected"] and kept_spikes < r_eff
        row = {"kind": "spike", "index": i + 1, "sv": s, "x": x, "detected": info["detected"],
               "observed_sv": info["observed_sv"], "cos2_m": info["cos2_m"],
               "cos2_N": info["cos2_N"], "kept": keep, "keep_pays": info["keep_pays"]}
        if keep:
            kept_spikes += 1
            x2 = x * x
            err = info["err_keep"]          # the keep cost of spike_components (tied to SymPy)
            if keep_extra is not None:      # a negative control's variant
                err += keep_extra(x, beta)
            if kept_scale is not None:
                cost_sig, cost_noise = 0.0, kept_scale * err
            else:
                along, orth = _keep_split(x, beta, side)
                if keep_extra is not None:
                    orth += keep_extra(x, beta)
                cost_sig, cost_noise = signal_scale * along, noise_scale * orth
            variance += cost_sig + cost_noise
            row.update(err=err, risk=cost_sig + cost_noise)
        else:
            # the drop cost of spike_components (tied to SymPy): x^2 at the signal scale,
            # = sigma_i^2 over, (n/d) sigma_i^2 under
            cost = signal_scale * info["err_drop"]
            bias += cost
            row.update(err=info["err_drop"], risk=cost)
        components.append(row)
    kept_noise = r_eff - kept_spikes
    levels = mp_noise_levels(beta, m, kept_noise, noise_quantiles)
    for j, lam in enumerate(levels):
        cost = noise_scale * float(lam)
        variance += cost
        components.append({"kind": "noise", "index": j + 1, "err": float(lam), "risk": cost,
                           "kept": True})
    return {"risk": bias + variance, "bias": bias, "variance": variance,
            "kept_spikes": kept_spikes, "kept_noise": kept_noise, "components": components,
            "regime": g["regime"], "N": N, "m": m, "beta": beta, "x": xs,
            "sample_side": side, "noise_scale": noise_scale, "signal_scale": signal_scale,
            "mapping": mapping, "noise_quantiles": bool(noise_quantiles), "exact": False}


def fft_risk(d, k, n, sigma, fnorm2=None) -> float:
    """Exact finite-sample expected excess risk of full fine-tuning (THEORY 3, Gaussian design).

    Over (``n >= d``; needs ``n > d + 1``; any ``Sigma``): ``sigma^2 k d/(n - d - 1)``.  Under
    (``n < d``; needs ``d > n + 1`` and ``Sigma = I``): ``(1 - n/d) fnorm2 + sigma^2 k n/(d - n - 1)``
    with ``fnorm2 = ||Delta*||_F^2`` (required).
    """
    _check_dims(d, k, n, sigma)
    s2 = float(sigma) ** 2
    if n >= d:
        if not n > d + 1:
            raise InputError(f"FFT overdetermined risk needs n > d + 1, got n = {n}, d = {d}")
        return s2 * k * d / (n - d - 1)
    if not d > n + 1:
        raise InputError(f"FFT underdetermined risk needs d > n + 1, got d = {d}, n = {n}")
    if fnorm2 is None:
        raise InputError("the underdetermined FFT risk needs fnorm2 = ||Delta*||_F^2")
    if not (math.isfinite(float(fnorm2)) and fnorm2 >= 0):
        raise InputError(f"fnorm2 must be a non-negative number, got {fnorm2!r}")
    return (1 - n / d) * float(fnorm2) + s2 * k * n / (d - n - 1)


def effective_threshold(d, k, n, regime=None) -> float:
    """The keep threshold in the regression at finite aspect ratio (``mapping="split"``).

    Keeping a detected spike costs ``along/w_s + orth/w_n`` against ``x^2/w_s`` for dropping it,
    with ``w_s = n`` (over) / ``d`` (under) the signal weight and ``w_n = n - d - 1`` / ``d - n - 1``
    the noise weight; so keep iff ``x^2 > along(x) + rho * orth(x)``, ``rho = w_s/w_n >= 1``.  The
    root is unique on ``x >= 1`` (there the gap is increasing and negative at ``x = 1``); for
    ``rho = 1`` it is ``keep_threshold(beta)``, the asymptotic ``x*`` of THEORY 4.3, which the
    regression reaches only as ``n/d -> infinity`` (over) resp. ``d/n -> infinity`` (under).
    """
    g = geometry(d, k, n, regime)
    rho = g["noise_unit"] / g["signal_unit"]
    beta, side = g["beta"], g["sample_side"]

    def gap(x):
        along, orth = _keep_split(x, beta, side)
        return x * x - along - rho * orth

    lo, hi = 1.0, 2.0
    while gap(hi) <= 0:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if gap(mid) <= 0 else (lo, mid)
    return hi


def optimal_rank(d, k, n, sigma, sv, regime=None, mapping="split") -> int:
    """Optimal LoRA rank: the number of spikes above the keep threshold (at least 1).

    ``mapping="split"`` (default) uses the regression's threshold at the given aspect ratio
    (``effective_threshold``); ``mapping="theory"`` the asymptotic ``x*`` of THEORY 4.3, which
    keeps spikes that do not pay at finite ``n/d`` (see ``tests/numeric/test_sharp.py``).
    """
    _check_dims(d, k, n, sigma)
    if mapping not in MAPPINGS:
        raise InputError(f"mapping must be one of {MAPPINGS}, got {mapping!r}")
    g = geometry(d, k, n, regime)
    xs = normalised_spikes(d, k, n, sigma, sv, regime)
    thr = keep_threshold(g["beta"]) if mapping == "theory" else effective_threshold(d, k, n, regime)
    # at most len(sv) <= min(d, k) spikes (_check_sv): no further cap is needed
    return max(1, sum(1 for x in xs if x > thr))


def lora_risk_curve(d, k, n, sigma, sv, ranks=None, **kw) -> list[dict]:
    """``lora_risk_sharp`` for each rank (default ``1..min(d, k)``), for figures and argmins."""
    ranks = ranks or range(1, min(d, k) + 1)
    return [dict(r=r, **{key: v for key, v in lora_risk_sharp(d, k, n, sigma, sv, r, **kw).items()
                         if key in ("risk", "bias", "variance", "kept_spikes", "kept_noise")})
            for r in ranks]
