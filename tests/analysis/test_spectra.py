"""VDOS and IR spectra of analytic motions: peaks at the imposed frequencies, normalisations, corrections."""

from __future__ import annotations

import numpy as np
import pytest
from ase.data import atomic_masses, atomic_numbers
from scipy.integrate import trapezoid

from aiida_qdtraps.analysis.spectra import (
    C_CM_PER_FS,
    ir_spectrum,
    peak_wavenumbers,
    power_spectrum,
    quantum_correction,
    vdos,
)

DT = 0.5  # fs
N_FRAMES = 8192


def _omega(wavenumber_cm: float) -> float:
    """Angular frequency (rad/fs) of a wavenumber (cm⁻¹)."""
    return 2 * np.pi * wavenumber_cm * C_CM_PER_FS


def test_harmonic_diatomic_peak_and_partial_spectra():
    # CO-like diatomic vibrating at 2143 cm⁻¹ about its centre of mass: v_C m_C = −v_O m_O.
    t = np.arange(N_FRAMES) * DT
    m = np.array([atomic_masses[atomic_numbers['C']], atomic_masses[atomic_numbers['O']]])
    relative = 0.02 * _omega(2143.0) * np.cos(_omega(2143.0) * t)  # d(r_O − r_C)/dt along x
    v = np.zeros((N_FRAMES, 2, 3))
    v[:, 0, 0] = -relative * m[1] / m.sum()
    v[:, 1, 0] = relative * m[0] / m.sum()
    result = vdos(v, m, DT, symbols=['C', 'O'])
    peak = peak_wavenumbers(result['wavenumber'], result['total'], n_peaks=1)[0]
    assert peak == pytest.approx(2143.0, rel=0.01)
    assert trapezoid(result['total'], result['wavenumber']) == pytest.approx(6.0)
    # Mass-weighted kinetic energy is shared as m_O : m_C between C and O.
    area = {el: trapezoid(result['per_element'][el], result['wavenumber']) for el in ('C', 'O')}
    assert area['C'] / area['O'] == pytest.approx(m[1] / m[0], rel=1e-6)
    np.testing.assert_allclose(result['per_element']['C'] + result['per_element']['O'], result['total'])
    # The mass-weighted VACF of one cosine is cos(ωt) (biased estimate: × (1 − t/T)).
    k = 5
    expected = np.cos(_omega(2143.0) * k * DT)
    assert result['vacf'][k] == pytest.approx(expected, abs=0.02)


def test_three_mode_molecule_gives_its_three_frequencies():
    # A bent triatomic: three normal modes (orthonormal in mass-weighted coordinates) at 1595, 3657 and 3756 cm⁻¹.
    rng = np.random.default_rng(0)
    masses = np.array([15.999, 1.008, 1.008])
    modes_cm = np.array([1595.0, 3657.0, 3756.0])
    q, _ = np.linalg.qr(rng.normal(size=(9, 3)))  # orthonormal mass-weighted displacement vectors
    t = np.arange(N_FRAMES) * DT
    phases = rng.uniform(0, 2 * np.pi, 3)
    amplitude = np.array([1.0, 0.8, 0.6]) * 0.05
    mw_velocity = sum(-amplitude[k] * _omega(modes_cm[k]) * np.sin(_omega(modes_cm[k]) * t + phases[k])[:, None]
                      * q[:, k][None] for k in range(3))  # (F, 9), √amu·Å/fs
    v = mw_velocity.reshape(N_FRAMES, 3, 3) / np.sqrt(masses)[None, :, None]
    result = vdos(v, masses, DT, symbols=['O', 'H', 'H'])
    peaks = np.sort(peak_wavenumbers(result['wavenumber'], result['total'], n_peaks=3))
    np.testing.assert_allclose(peaks, modes_cm, rtol=0.01)
    # Each mode's weight is its mass-weighted kinetic energy ∝ (A ω)²: the band areas follow.
    axis = result['wavenumber']
    areas = [trapezoid(np.where(np.abs(axis - nu) < 40, result['total'], 0), axis) for nu in modes_cm]
    weights = (amplitude * modes_cm) ** 2
    np.testing.assert_allclose(np.array(areas) / sum(areas), weights / weights.sum(), rtol=0.03)


def test_vdos_refuses_bad_inputs():
    with pytest.raises(ValueError, match='velocities have shape'):
        vdos(np.zeros((10, 3)), [1.0, 1.0, 1.0], 1.0)
    with pytest.raises(ValueError, match='non-finite'):
        vdos(np.full((10, 1, 3), np.nan), [1.0], 1.0)
    with pytest.raises(ValueError, match='time step'):
        vdos(np.ones((10, 1, 3)), [1.0], 0.0)
    with pytest.raises(ValueError, match="window 'gauss'"):
        vdos(np.ones((10, 1, 3)), [1.0], 1.0, window='gauss')


def test_power_spectrum_obeys_parseval():
    x = np.random.default_rng(3).normal(size=(1000, 2))
    axis, s = power_spectrum(x, 1.0)
    d_nu = axis[1] - axis[0]
    assert s.sum() * d_nu == pytest.approx(np.mean(np.sum(x ** 2, axis=1)), rel=1e-10)


def test_ir_peaks_at_the_dipole_frequencies_with_harmonic_weights():
    t = np.arange(N_FRAMES) * DT
    nu = np.array([1400.0, 1580.0])
    a = np.array([0.3, 0.1])  # e·Å
    mu = np.zeros((N_FRAMES, 3))
    mu[:, 0] = a[0] * np.cos(_omega(nu[0]) * t)
    mu[:, 2] = a[1] * np.sin(_omega(nu[1]) * t + 0.3)
    result = ir_spectrum(mu, DT, window='hann')
    axis = result['wavenumber']
    peaks = np.sort(peak_wavenumbers(axis, result['intensity'], n_peaks=2))
    np.testing.assert_allclose(peaks, nu, rtol=0.01)
    areas = np.array([trapezoid(np.where(np.abs(axis - n) < 40, result['intensity'], 0), axis) for n in nu])
    # FT<μ̇μ̇>: a band of amplitude a at ω weighs (a ω)²/2 (finite differences lower ω² by sinc² ≲ 0.3 % here).
    assert areas[0] / areas[1] == pytest.approx((a[0] * nu[0]) ** 2 / (a[1] * nu[1]) ** 2, rel=0.02)
    classical = ir_spectrum(mu, DT, temperature_k=300.0, correction='none', window='hann')
    ratio = classical['intensity'][1:] / result['intensity'][1:]
    np.testing.assert_allclose(ratio, 1 / quantum_correction(axis[1:], 300.0))


def test_quantum_correction_limits():
    # βħω = 1 at 208.5 cm⁻¹ and 300 K: Q = 1/(1 − e⁻¹); Q → 1 at ω → 0 and → βħω at high ω.
    assert quantum_correction(0.6950348 * 300.0, 300.0) == pytest.approx(1 / (1 - np.exp(-1)))
    assert quantum_correction(np.array([0.0]), 300.0)[0] == 1.0
    assert quantum_correction(20850.0, 300.0) == pytest.approx(100.0, rel=1e-3)


def test_ir_needs_three_components_and_a_temperature_without_correction():
    with pytest.raises(ValueError, match=r'dipole has shape \(10,\)'):
        ir_spectrum(np.zeros(10), 1.0)
    with pytest.raises(ValueError, match='needs temperature_k'):
        ir_spectrum(np.zeros((10, 3)), 1.0, correction='none')
