"""Vibrational spectra from MD time series (pure; numpy/scipy): the vibrational density of states (power spectrum of
the mass-weighted velocity autocorrelation) and the IR spectrum (autocorrelation of the dipole's time derivative).

Both use the Wiener–Khinchin theorem: the Fourier transform of the (biased) autocorrelation of a series equals its
power spectrum ``|x̃(ν)|² / F``. The series is zero-padded to twice its length (so the circular correlation is the
linear one) and may be multiplied by a window first. Frequencies are returned as wavenumbers
``ν̃ = ν / c`` in cm⁻¹ (c = 2.99792458 × 10⁻⁵ cm/fs). Units and normalisations are in
docs/dynamics/vdos.md and docs/dynamics/ir.md.
"""

from __future__ import annotations

import numpy as np
from scipy import fft, integrate, signal

#: Speed of light in cm/fs.
C_CM_PER_FS = 2.99792458e-5
#: Boltzmann constant in cm⁻¹/K (k_B / (h c)).
KB_CM_PER_K = 0.695034800
#: Atoms processed at once by :func:`vdos`.
CHUNK_ATOMS = 128
WINDOWS = ('none', 'hann', 'blackman')


def wavenumbers(n_frames: int, dt_fs: float) -> np.ndarray:
    """The one-sided wavenumber axis (cm⁻¹) of a series of ``n_frames`` at ``dt_fs``, padded to twice its length."""
    return fft.rfftfreq(2 * n_frames, d=dt_fs) / C_CM_PER_FS


def _window(name: str, n: int) -> np.ndarray:
    if name not in WINDOWS:
        raise ValueError(f'window {name!r} is not one of {WINDOWS}')
    if name == 'none':
        return np.ones(n)
    return signal.get_window(name, n, fftbins=False)


def _check_dt(dt_fs) -> float:
    if dt_fs is None or not np.isfinite(dt_fs) or not dt_fs > 0:
        raise ValueError(f'the time step must be a positive number of fs, got {dt_fs}')
    return float(dt_fs)


def power_spectrum(series, dt_fs: float, window: str = 'none') -> tuple[np.ndarray, np.ndarray]:
    """One-sided power spectral density of ``series`` (F, ...) summed over its trailing components.

    Normalised by Parseval so that ``∫ S(ν̃) dν̃`` (cm⁻¹) equals the mean over frames of the squared series (summed
    over components) — for a window, of the windowed series rescaled to the same mean power. Returns
    ``(wavenumbers cm⁻¹, S)``.
    """
    x = np.asarray(series, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    n = x.shape[0]
    if n < 4:
        raise ValueError(f'a spectrum needs at least 4 frames, got {n}')
    dt_fs = _check_dt(dt_fs)
    w = _window(window, n)
    x = x.reshape(n, -1) * (w / np.sqrt(np.mean(w ** 2)))[:, None]
    spectrum = np.sum(np.abs(fft.rfft(x, n=2 * n, axis=0)) ** 2, axis=1)
    return wavenumbers(n, dt_fs), _one_sided(spectrum, n, dt_fs)


def _one_sided(spectrum: np.ndarray, n: int, dt_fs: float) -> np.ndarray:
    """|FFT|² of a series padded to 2n → one-sided density in cm⁻¹ with ∫ S dν̃ = mean square of the series."""
    d_nu = 1.0 / (2 * n * dt_fs * C_CM_PER_FS)  # cm⁻¹ per bin
    density = spectrum / (n * 2 * n) / d_nu
    density[1:] *= 2.0
    if 2 * n % 2 == 0:
        density[-1] /= 2.0
    return density


def vdos(velocities, masses, dt_fs: float, symbols=None, window: str = 'hann') -> dict:
    """Vibrational density of states from the mass-weighted velocity autocorrelation.

    ``velocities`` (F, N, 3) Å/fs, ``masses`` (N,) amu. ``VDOS(ν̃) ∝ Σ_i m_i |ṽ_i(ν̃)|²``, the Fourier transform of
    ``Σ_i m_i <v_i(0)·v_i(t)>``, normalised so that ``∫ VDOS dν̃ = 3N`` (degrees of freedom); partial spectra per
    element share that scale (they add up to the total, each integrates to about 3 N_element at equipartition).
    Returns ``{'wavenumber': cm⁻¹, 'total': (K,), 'per_element': {el: (K,)}, 'vacf': normalised mass-weighted
    velocity autocorrelation (F,), 'time': fs}``.
    """
    v = np.asarray(velocities)
    if v.ndim != 3 or v.shape[2] != 3:
        raise ValueError(f'velocities have shape {v.shape}, expected (frames, atoms, 3)')
    n_frames, n_atoms, _ = v.shape
    m = np.asarray(masses, dtype=float)
    if m.shape != (n_atoms,) or np.any(m <= 0):
        raise ValueError(f'masses must be {n_atoms} positive numbers, got shape {m.shape}')
    dt_fs = _check_dt(dt_fs)
    if n_frames < 4:
        raise ValueError(f'a spectrum needs at least 4 frames, got {n_frames}')
    groups = np.asarray(['all'] * n_atoms if symbols is None else [str(s) for s in symbols])
    if groups.shape != (n_atoms,):
        raise ValueError(f'{groups.size} symbols for {n_atoms} atoms')
    elements = sorted(set(groups))
    w = _window(window, n_frames)
    w = (w / np.sqrt(np.mean(w ** 2))).astype(np.float32)
    raw = {element: np.zeros(n_frames + 1) for element in elements}
    for start in range(0, n_atoms, CHUNK_ATOMS):
        stop = min(start + CHUNK_ATOMS, n_atoms)
        chunk = np.asarray(v[:, start:stop], dtype=np.float32)
        if not np.all(np.isfinite(chunk)):
            raise ValueError(f'velocities hold a non-finite value among atoms {start}..{stop - 1}')
        chunk = chunk * w[:, None, None]
        power = np.sum(np.abs(fft.rfft(chunk, n=2 * n_frames, axis=0)) ** 2, axis=2)  # (K, atoms)
        power = power * m[start:stop][None, :]
        for element in elements:
            selected = groups[start:stop] == element
            if selected.any():
                raw[element] += power[:, selected].sum(axis=1)
    total_raw = sum(raw.values())
    axis = wavenumbers(n_frames, dt_fs)
    total = _one_sided(total_raw, n_frames, dt_fs)
    area = integrate.trapezoid(total, axis)
    if not area > 0:
        raise ValueError('the velocities are all zero: no vibrational density of states')
    scale = 3 * n_atoms / area
    acf = fft.irfft(total_raw, n=2 * n_frames)[:n_frames]
    return {'wavenumber': axis, 'total': total * scale,
            'per_element': {element: _one_sided(raw[element], n_frames, dt_fs) * scale for element in elements},
            'vacf': acf / acf[0], 'time': np.arange(n_frames) * dt_fs}


def quantum_correction(wavenumber, temperature_k: float) -> np.ndarray:
    """Harmonic quantum correction factor ``Q_H(ω) = βħω / (1 − exp(−βħω))`` at wavenumber(s) (cm⁻¹); 1 at ω = 0."""
    if not temperature_k > 0:
        raise ValueError(f'the temperature must be positive, got {temperature_k} K')
    x = np.asarray(wavenumber, dtype=float) / (KB_CM_PER_K * temperature_k)
    out = np.ones_like(x)
    nonzero = x > 0
    out[nonzero] = x[nonzero] / -np.expm1(-x[nonzero])
    return out


def ir_spectrum(dipole, dt_fs: float, temperature_k: float | None = None, correction: str = 'harmonic',
                window: str = 'hann') -> dict:
    """IR absorption lineshape from the autocorrelation of the dipole's time derivative.

    ``dipole`` (F, 3) e·Å; ``μ̇`` by central differences (e·Å/fs). ``correction='harmonic'`` returns
    ``I(ω) = FT<μ̇(0)·μ̇(t)>``, which equals ``ω (1 − e^{−βħω}) · Q_H(ω) · FT<μ(0)·μ(t)>_classical`` — the absorption
    lineshape ``α(ω) n(ω)`` (up to constants) with the harmonic quantum correction factor
    ``Q_H = βħω/(1 − e^{−βħω})`` already applied, temperature-independent in shape. ``correction='none'`` returns
    the uncorrected classical lineshape ``ω (1 − e^{−βħω}) FT<μμ>_classical = I(ω) / Q_H(ω)`` and needs
    ``temperature_k``. Intensity units: (e·Å/fs)² per cm⁻¹, ∫ I dν̃ = <|μ̇|²> for the harmonic form.
    """
    mu = np.asarray(dipole, dtype=float)
    if mu.ndim != 2 or mu.shape[1] != 3:
        raise ValueError(f'dipole has shape {mu.shape}, expected (frames, 3)')
    if not np.all(np.isfinite(mu)):
        raise ValueError('dipole holds a non-finite value (NaN or inf)')
    dt_fs = _check_dt(dt_fs)
    if correction not in ('harmonic', 'none'):
        raise ValueError(f"correction {correction!r} is not 'harmonic' or 'none'")
    if correction == 'none' and temperature_k is None:
        raise ValueError("correction='none' needs temperature_k")
    mu_dot = np.gradient(mu, dt_fs, axis=0)
    axis, intensity = power_spectrum(mu_dot, dt_fs, window=window)
    if correction == 'none':
        intensity = intensity / quantum_correction(axis, temperature_k)
    return {'wavenumber': axis, 'intensity': intensity, 'correction': correction}


def peak_wavenumbers(wavenumber, spectrum, n_peaks: int | None = None, prominence: float = 0.05) -> np.ndarray:
    """Peak positions (cm⁻¹) of a spectrum, refined by a parabola through each maximum and its two neighbours;
    sorted by height (highest first), at most ``n_peaks``. ``prominence`` is relative to the maximum."""
    x = np.asarray(wavenumber, dtype=float)
    y = np.asarray(spectrum, dtype=float)
    indices, _ = signal.find_peaks(y, prominence=prominence * float(np.max(y)))
    indices = indices[np.argsort(y[indices])[::-1]][:n_peaks]
    refined = []
    for k in indices:
        y0, y1, y2 = y[k - 1], y[k], y[k + 1]
        denominator = y0 - 2 * y1 + y2
        shift = 0.5 * (y0 - y2) / denominator if denominator != 0 else 0.0
        refined.append(x[k] + shift * (x[1] - x[0]))
    return np.array(refined)
