"""Electronic dynamics along a trajectory (pure; numpy/scipy), after Bhati et al. (Cd17Se28 dynamics): statistics of
the HOMO–LUMO gap, pure dephasing by the second-order cumulant, and HOMO–LUMO non-adiabatic couplings from MO
overlaps of consecutive frames.

Pure dephasing (optical response theory, second-order cumulant): with ``δE(t) = E(t) − <E>`` and its
autocorrelation ``C(t) = <δE(0) δE(t)>`` (eV²),

    g(t) = (1/ħ²) ∫₀ᵗ dt₁ ∫₀^{t₁} dt₂ C(t₂),      D(t) = exp(−g(t)),

and the dephasing time τ is the width of a Gaussian ``exp(−t²/(2τ²))`` fitted to D(t). For fluctuations slow on the
scale of τ (static disorder), ``C(t) ≈ C(0) = σ²`` so ``g(t) = σ² t² / (2ħ²)`` and ``τ = ħ/σ`` exactly
(ħ = 0.6582119569 eV·fs: σ = 0.1 eV gives 6.58 fs).

Non-adiabatic coupling (Hammes-Schiffer–Tully finite difference, at the midpoint t + Δt/2):

    d_ij ≈ (<φ_i(t)|φ_j(t+Δt)> − <φ_j(t)|φ_i(t+Δt)>) / (2Δt)   (fs⁻¹),   ħ d_ij in meV.

MO signs are arbitrary in every frame; before the overlaps, each MO of frame t+Δt is multiplied by the sign of its
overlap with the same (already aligned) MO of frame t, so that ``<φ_i(t)|φ_i(t+Δt)> > 0``.
"""

from __future__ import annotations

import numpy as np
from scipy import integrate, optimize

#: ħ in eV·fs (CODATA 2018).
HBAR_EV_FS = 0.6582119569


def _series(gaps, name: str = 'gaps') -> np.ndarray:
    x = np.asarray(gaps, dtype=float)
    if x.ndim != 1:
        raise ValueError(f'{name} must be one series of values, got shape {x.shape}')
    if x.size < 2:
        raise ValueError(f'{name} needs at least 2 values, got {x.size}')
    bad = np.flatnonzero(~np.isfinite(x))
    if bad.size:
        raise ValueError(f'{name} holds a non-finite value (NaN or inf) at index {int(bad[0])}')
    return x


def gap_statistics(gaps, bins: int = 30) -> dict:
    """Mean, standard deviation, extremes and histogram of a gap series (eV) (Bhati et al. Fig. 3a)."""
    x = _series(gaps)
    counts, edges = np.histogram(x, bins=bins)
    return {'mean': float(x.mean()), 'std': float(x.std()), 'min': float(x.min()), 'max': float(x.max()),
            'n': int(x.size), 'hist_counts': counts, 'hist_edges': edges}


def autocorrelation(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Unbiased autocorrelation ``<δx(0) δx(t)>`` of the fluctuation of ``x`` for lags 0..max_lag (FFT)."""
    dx = x - x.mean()
    n = dx.size
    spectrum = np.fft.rfft(dx, n=2 * n)
    acf = np.fft.irfft(np.abs(spectrum) ** 2, n=2 * n)[:max_lag + 1]
    return acf / (n - np.arange(max_lag + 1))


def dephasing(gaps, dt_fs: float, max_time_fs: float | None = None) -> dict:
    """Pure-dephasing function D(t) = exp(−g(t)) of a gap series (eV, every ``dt_fs``) and its Gaussian time.

    ``max_time_fs`` (default: a quarter of the series) bounds the lags used. Returns ``{'time': fs, 'acf': eV²,
    'g': g(t), 'dephasing': D(t), 'tau_fs': Gaussian dephasing time, 'tau_static_fs': ħ/σ, 'std': σ (eV),
    'resolved': whether τ spans at least 3 time steps}``.
    """
    x = _series(gaps)
    if dt_fs is None or not np.isfinite(dt_fs) or not dt_fs > 0:
        raise ValueError(f'the time step must be a positive number of fs, got {dt_fs}')
    max_lag = x.size // 4 if max_time_fs is None else int(round(max_time_fs / dt_fs))
    if not 2 <= max_lag < x.size:
        raise ValueError(f'max_time_fs={max_time_fs} gives {max_lag} lags: need 2..{x.size - 1} for a series of '
                         f'{x.size} values at {dt_fs} fs')
    sigma = float(x.std())
    if sigma == 0:
        raise ValueError('the gap does not fluctuate (standard deviation 0): no dephasing')
    t = np.arange(max_lag + 1) * dt_fs
    acf = autocorrelation(x, max_lag)
    first = integrate.cumulative_trapezoid(acf, t, initial=0.0)
    g = integrate.cumulative_trapezoid(first, t, initial=0.0) / HBAR_EV_FS ** 2
    d = np.exp(-g)
    # Fit the decay down to D = 1e-3 (or all lags if D stays above).
    below = np.flatnonzero(d < 1e-3)
    stop = int(below[0]) + 1 if below.size else d.size
    guess = HBAR_EV_FS / sigma
    (tau,), _ = optimize.curve_fit(lambda tt, s: np.exp(-0.5 * (tt / s) ** 2), t[:stop], d[:stop], p0=[guess])
    tau = abs(float(tau))
    return {'time': t, 'acf': acf, 'g': g, 'dephasing': d, 'tau_fs': tau, 'tau_static_fs': guess, 'std': sigma,
            'resolved': bool(tau >= 3 * dt_fs)}


def mo_overlaps(coefficients, ao_overlap=None, cross_overlap=None) -> np.ndarray:
    """Overlaps ``O[t]_ij = <φ_i(t)|φ_j(t+Δt)>`` (F−1, M, M) of the MOs of consecutive frames, signs aligned.

    ``coefficients`` (F, n_ao, M) MO coefficients (columns are MOs). The AO overlap between frames is
    ``cross_overlap`` (F−1, n_ao, n_ao) ``<χ_μ(t)|χ_ν(t+Δt)>`` when given, else the mean of the same-frame overlaps
    ``ao_overlap`` (F, n_ao, n_ao) of the two frames, else the identity (orthonormal basis). The MO columns of every
    frame are sign-flipped (on a copy) so that each diagonal overlap is positive (see the module docstring).
    """
    c = np.array(coefficients, dtype=float)
    if c.ndim != 3 or c.shape[0] < 2:
        raise ValueError(f'coefficients have shape {c.shape}, expected (frames >= 2, n_ao, n_mo)')
    if not np.all(np.isfinite(c)):
        raise ValueError('coefficients hold a non-finite value (NaN or inf)')
    n_frames, n_ao, _ = c.shape
    if cross_overlap is not None:
        s = np.asarray(cross_overlap, dtype=float)
        if s.shape != (n_frames - 1, n_ao, n_ao):
            raise ValueError(f'cross_overlap has shape {s.shape}, expected {(n_frames - 1, n_ao, n_ao)}')
    elif ao_overlap is not None:
        s_frames = np.asarray(ao_overlap, dtype=float)
        if s_frames.shape != (n_frames, n_ao, n_ao):
            raise ValueError(f'ao_overlap has shape {s_frames.shape}, expected {(n_frames, n_ao, n_ao)}')
        s = 0.5 * (s_frames[1:] + s_frames[:-1])
    else:
        s = np.broadcast_to(np.eye(n_ao), (n_frames - 1, n_ao, n_ao))
    overlaps = np.empty((n_frames - 1, c.shape[2], c.shape[2]))
    for k in range(n_frames - 1):
        o = c[k].T @ s[k] @ c[k + 1]
        signs = np.where(np.diag(o) < 0, -1.0, 1.0)
        c[k + 1] *= signs[None, :]
        overlaps[k] = o * signs[None, :]
    return overlaps


def nac(coefficients, dt_fs: float, i: int, j: int, ao_overlap=None, cross_overlap=None) -> dict:
    """Non-adiabatic coupling d_ij (fs⁻¹) and ħ|d_ij| (meV) between MOs ``i`` and ``j`` (column indices, e.g. HOMO and
    LUMO of a window) at the midpoints of consecutive frames; see :func:`mo_overlaps` for the inputs."""
    if dt_fs is None or not dt_fs > 0:
        raise ValueError(f'the time step must be a positive number of fs, got {dt_fs}')
    o = mo_overlaps(coefficients, ao_overlap=ao_overlap, cross_overlap=cross_overlap)
    n_mo = o.shape[1]
    for name, index in (('i', i), ('j', j)):
        if not 0 <= index < n_mo:
            raise ValueError(f'MO index {name}={index} is outside 0..{n_mo - 1}')
    d = (o[:, i, j] - o[:, j, i]) / (2.0 * dt_fs)
    magnitude = HBAR_EV_FS * np.abs(d) * 1e3
    return {'time': (np.arange(d.size) + 0.5) * dt_fs, 'nac_per_fs': d, 'nac_mev': magnitude,
            'mean_mev': float(magnitude.mean())}


def nac_histogram(nac_mev, bins: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Histogram (counts, edges in meV) of |NAC| values (Bhati et al. Fig. 5c)."""
    values = _series(nac_mev, 'nac_mev')
    return np.histogram(values, bins=bins)
