"""``qdtraps mlff test``: a frozen model on labelled frames from an extended xyz file."""

from __future__ import annotations

import re

import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write
from click.testing import CliRunner

from aiida_qdtraps import profile as project_profile
from aiida_qdtraps.analysis.mlff_test import predict
from aiida_qdtraps.cli import cli


@pytest.fixture(autouse=True)
def _keep_test_profile(monkeypatch):
    """In-process invocations must not point aiida at the project folder."""
    monkeypatch.setattr(project_profile, 'activate', lambda: None)


def test_mlff_test_prints_the_errors(data_dir, tmp_path):
    """Frames labelled with the model's own predictions, one force component 0.42 eV/Å off and energies 0.1 eV
    above: force RMSE 0.42 / sqrt(2 frames × 42 components), energy RMSE 0 after the offset (0.1 eV / 14 atoms)."""
    model = data_dir / 'deepmd' / 'model_in4pf9_fast.pth'
    base = read(data_dir / 'deepmd' / 'in4pf9_relaxed_fast.xyz')
    frames = [base.copy(), base.copy()]
    frames[1].positions[3] += [0.05, 0.0, -0.03]
    energies, forces = predict(str(model), frames)
    for k, atoms in enumerate(frames):
        reference = forces[k].copy()
        if k == 1:
            reference[2, 0] -= 0.42
        atoms.calc = SinglePointCalculator(atoms, energy=energies[k] - 0.1, forces=reference)
    path = tmp_path / 'frames.extxyz'
    write(path, frames, format='extxyz')
    result = CliRunner().invoke(cli, ['mlff', 'test', str(model), str(path)])
    assert result.exit_code == 0, result.output
    values = dict(re.findall(r'(\w+)=([-\d.]+)', result.output))
    assert float(values['force_rmse_eV_A']) == pytest.approx(0.42 / np.sqrt(2 * 42), abs=1e-4)
    assert float(values['energy_rmse_meV_atom']) == pytest.approx(0.0, abs=1e-3)
    assert float(values['energy_offset_meV_atom']) == pytest.approx(100.0 / 14, abs=1e-3)
    assert values['frames'] == '2'


def test_mlff_test_refuses_frames_without_labels(data_dir, tmp_path):
    path = tmp_path / 'bare.xyz'
    write(path, read(data_dir / 'deepmd' / 'in4pf9_relaxed_fast.xyz'), format='extxyz')
    result = CliRunner().invoke(cli, ['mlff', 'test', str(data_dir / 'deepmd' / 'model_in4pf9_fast.pth'), str(path)])
    assert result.exit_code != 0
    assert 'frame 0 has no energy and forces' in result.output


@pytest.mark.parametrize('system', ['in4pf9', 'cd6se4oac4'])
def test_the_shipped_models_on_their_independent_held_out_frames(data_dir, tmp_path, system):
    """The shipped force fields (docs/mlff.md: In4PF9 on PBE labels, Cd6Se4(OAc)4 on GFN1-xTB labels) on frames of a
    CP2K MD they never saw: within the targets stated in docs/mlff.md (0.10 eV/Å, 2 meV/atom), with a parity plot."""
    folder = data_dir / 'mlff' / system
    parity = tmp_path / 'parity.png'
    result = CliRunner().invoke(cli, ['mlff', 'test', str(folder / 'model.pth'), str(folder / 'heldout.extxyz'),
                                      '--parity', str(parity)])
    assert result.exit_code == 0, result.output
    assert parity.read_bytes()[:4] == b'\x89PNG'
    values = dict(re.findall(r'(\w+)=([-\d.]+)', result.output))
    frames = read(folder / 'heldout.extxyz', index=':')
    assert int(values['frames']) == len(frames) >= 15
    assert float(values['force_rmse_eV_A']) <= 0.10
    assert float(values['energy_rmse_meV_atom']) <= 2.0
    # The frames are labels of an MD at 300 K (energies within 0.07 eV/atom of each other), not the model's own
    # predictions.
    energies = np.array([a.get_potential_energy() / len(a) for a in frames])
    assert np.ptp(energies) < 0.07
    assert float(values['force_rmse_eV_A']) > 1e-3
