"""``relax_with_model``: ASE BFGS with a real frozen DeePMD model (recorded,
``tests/data/deepmd/model_in4pf9_fast.pth``).

The model is model 1 of a real ``fast`` active-learning run on relaxed In4PF9 (see tests/data/deepmd/README.md).
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from ase.io import read

from aiida_qdtraps.analysis.mlff_relax import ensemble_deviation, prerelax_verdict, relax_with_model

DATA = pathlib.Path(__file__).parents[1] / 'data' / 'deepmd'


@pytest.fixture
def rattled_qd():
    atoms = read(DATA / 'in4pf9_relaxed_fast.xyz')
    atoms.positions += np.random.default_rng(0).normal(0, 0.05, atoms.positions.shape)
    return atoms


def test_relax_with_model_lowers_the_model_energy(rattled_qd):
    result = relax_with_model(rattled_qd, str(DATA / 'model_in4pf9_fast.pth'), fmax=0.05, steps=30, maxstep=0.05)
    energies, fmax = np.array(result['energies']), np.array(result['fmax'])
    assert result['n_steps'] >= 1 and len(energies) == result['n_steps'] + 1  # the start and every BFGS step
    assert np.all(np.isfinite(energies)) and energies[-1] < energies[0]
    assert np.all(np.isfinite(fmax)) and result['converged'] == (fmax[-1] < 0.05)
    moved = np.linalg.norm(result['positions'] - rattled_qd.positions, axis=1)
    assert result['max_displacement'] == pytest.approx(moved.max())
    assert 0 < moved.max() <= 0.05 * (result['n_steps'] + 1)  # maxstep caps each step


@pytest.mark.parametrize('kwargs', [{'fmax': 0}, {'steps': 0}, {'maxstep': -1}])
def test_relax_with_model_refuses_bad_settings(rattled_qd, kwargs):
    with pytest.raises(ValueError, match='need fmax > 0'):
        relax_with_model(rattled_qd, str(DATA / 'model_in4pf9_fast.pth'), **kwargs)


def test_a_poor_model_slides_away_and_is_not_used():
    """The CI-sized model has no minimum near the DFT one: from the DFT-relaxed QD, BFGS lowers the model energy while
    the model's largest force grows, and the verdict keeps the input geometry."""
    atoms = read(DATA / 'in4pf9_relaxed_fast.xyz')
    result = relax_with_model(atoms, str(DATA / 'model_in4pf9_fast.pth'), fmax=0.05, steps=20, maxstep=0.05)
    assert not result['converged'] and result['energies'][-1] < result['energies'][0]
    assert result['fmax'][-1] > result['fmax'][0]
    accepted, reason = prerelax_verdict(result, max_move=1.0)
    assert not accepted and reason.startswith('not converged in 20 BFGS steps')


def test_ensemble_deviation_of_two_models():
    """Zero for two copies of one model; the CI-sized model and the reference model disagree on the older relaxed
    In4PF9 by far more than the reference run's own ensemble does at its DFT minimum (0.04 eV/Å, docs/mlff.md)."""
    atoms = read(DATA / 'in4pf9_relaxed_fast.xyz')
    reference = str(DATA.parent / 'mlff' / 'in4pf9' / 'model.pth')
    poor = str(DATA / 'model_in4pf9_fast.pth')
    assert ensemble_deviation(atoms, [reference, reference]) == pytest.approx(0, abs=1e-9)
    assert ensemble_deviation(atoms, [reference, poor]) > 0.2
    with pytest.raises(ValueError, match='at least two models, got 1'):
        ensemble_deviation(atoms, [reference])


def test_prerelax_verdict():
    converged = {'converged': True, 'n_steps': 7, 'fmax': [1.0, 0.01], 'max_displacement': 0.3}
    assert prerelax_verdict(converged, 1.0) == (True, 'converged in 7 BFGS steps, largest move 0.3 Å')
    assert prerelax_verdict(converged, 1.0, 0.05, 0.2) == (
        True, 'converged in 7 BFGS steps, largest move 0.3 Å, ensemble force deviation 0.05 eV/Å')
    assert prerelax_verdict(converged, 1.0, 0.6, 0.2) == (
        False, 'the ensemble force deviation at the end, 0.6 eV/Å, is above max_deviation 0.2 eV/Å')
    assert prerelax_verdict(converged, 0.2) == (False, 'an atom moved 0.3 Å > max_move 0.2 Å')
    assert not prerelax_verdict({**converged, 'converged': False}, 1.0)[0]
