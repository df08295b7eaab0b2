"""Gap statistics, cumulant dephasing (τ = ħ/σ for static fluctuations) and HOMO–LUMO NAC of a two-level model."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_qdtraps.analysis.gap_dynamics import (
    HBAR_EV_FS,
    autocorrelation,
    dephasing,
    gap_statistics,
    mo_overlaps,
    nac,
    nac_histogram,
)


def test_gap_statistics():
    gaps = np.array([1.9, 2.0, 2.1, 2.0])
    stats = gap_statistics(gaps, bins=3)
    assert stats['mean'] == pytest.approx(2.0)
    assert stats['std'] == pytest.approx(np.sqrt(0.005))
    assert stats['hist_counts'].sum() == 4 and (stats['min'], stats['max']) == (1.9, 2.1)


@pytest.mark.parametrize('sigma', [0.05, 0.1, 0.2])
def test_static_fluctuations_dephase_in_hbar_over_sigma(sigma):
    # A gap oscillating far slower (period 20 ps) than the dephasing: C(t) ≈ σ² over the decay, so τ = ħ/σ.
    dt, n = 0.5, 160_000  # 80 ps: four whole periods, so the series' standard deviation is exactly σ
    t = np.arange(n) * dt
    gaps = 2.0 + sigma * np.sqrt(2) * np.cos(2 * np.pi * t / 20_000.0)
    result = dephasing(gaps, dt, max_time_fs=200.0)
    assert result['std'] == pytest.approx(sigma, rel=1e-4)
    assert result['tau_fs'] == pytest.approx(HBAR_EV_FS / sigma, rel=0.02)
    assert result['resolved']
    t_lag = result['time'][:40]
    np.testing.assert_allclose(result['dephasing'][:40], np.exp(-0.5 * (t_lag * sigma / HBAR_EV_FS) ** 2),
                               rtol=0.02, atol=1e-6)


def test_white_noise_dephases_exponentially_not_as_a_gaussian():
    # δ-correlated noise: C(t) = σ² only at t = 0, so g(t) grows linearly (≈ σ² Δt t / 2ħ²): far slower decay
    # than the static case's σ² t² / 2ħ².
    rng = np.random.default_rng(0)
    gaps = 2.0 + 0.1 * rng.normal(size=20_000)
    result = dephasing(gaps, 1.0, max_time_fs=400.0)
    assert result['tau_fs'] > 3 * HBAR_EV_FS / 0.1


def test_autocorrelation_of_a_cosine():
    x = np.cos(0.1 * np.arange(10_000))
    acf = autocorrelation(x, 20)
    np.testing.assert_allclose(acf, 0.5 * np.cos(0.1 * np.arange(21)), atol=2e-3)


@pytest.mark.parametrize('gaps, message', [([2.0, np.nan, 2.1], 'non-finite value .* index 1'),
                                           ([2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0], 'does not fluctuate'),
                                           ([[2.0, 2.1]], 'one series')])
def test_bad_gap_series_are_refused(gaps, message):
    with pytest.raises(ValueError, match=message):
        dephasing(gaps, 1.0, max_time_fs=2.0)


def _two_level(omega: float, dt: float, n: int, flips=None):
    """MO coefficients (n, 2, 2) of two orbitals rotating at ``omega`` (rad/fs) in an orthonormal basis."""
    theta = omega * np.arange(n) * dt + 0.4
    c = np.zeros((n, 2, 2))
    c[:, 0, 0], c[:, 1, 0] = np.cos(theta), np.sin(theta)
    c[:, 0, 1], c[:, 1, 1] = -np.sin(theta), np.cos(theta)
    if flips is not None:
        c *= flips[:, None, :]
    return c


def test_two_level_rotation_gives_its_rate_whatever_the_mo_signs():
    omega, dt, n = 0.01, 1.0, 50  # rad/fs: ħω = 6.58 meV
    exact = -np.sin(omega * dt) / dt  # finite-difference value; → −ω as Δt → 0
    result = nac(_two_level(omega, dt, n), dt, 0, 1)
    np.testing.assert_allclose(result['nac_per_fs'], exact, rtol=1e-12)
    assert result['mean_mev'] == pytest.approx(HBAR_EV_FS * omega * 1e3, rel=1e-4)
    flips = np.random.default_rng(1).choice([-1.0, 1.0], size=(n, 2))
    flipped = nac(_two_level(omega, dt, n, flips), dt, 0, 1)
    np.testing.assert_allclose(np.abs(flipped['nac_per_fs']), np.abs(exact), rtol=1e-12)
    # Aligned to the first frame's signs, the coupling is the unflipped one times that frame's sign product.
    np.testing.assert_allclose(flipped['nac_per_fs'], exact * flips[0, 0] * flips[0, 1], rtol=1e-12)
    counts, edges = nac_histogram(result['nac_mev'], bins=5)
    assert counts.sum() == n - 1


def test_overlaps_use_the_ao_overlap():
    # Non-orthogonal basis: C normalised in the metric S, the diagonal overlaps are 1 for a static orbital.
    s = np.array([[1.0, 0.3], [0.3, 1.0]])
    c = np.linalg.inv(np.linalg.cholesky(s)).T  # C^T S C = 1
    o = mo_overlaps(np.repeat(c[None], 3, axis=0), ao_overlap=np.repeat(s[None], 3, axis=0))
    np.testing.assert_allclose(o, np.repeat(np.eye(2)[None], 2, axis=0), atol=1e-12)
    with pytest.raises(ValueError, match='ao_overlap has shape'):
        mo_overlaps(np.repeat(c[None], 3, axis=0), ao_overlap=s)
    with pytest.raises(ValueError, match='MO index j=2'):
        nac(np.repeat(c[None], 3, axis=0), 1.0, 0, 2)
