"""Errors of a frozen DeePMD model on labelled frames (``qdtraps mlff test``)."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read

from aiida_qdtraps.analysis.mlff_test import frame_labels, model_errors, predict


def test_model_errors_remove_the_energy_offset():
    # two 2-atom frames: model energies 1 eV above the reference on each (0.5 eV/atom offset, removed), one force
    # component 0.3 eV/Å off out of 12 -> RMSE sqrt(0.09 / 12)
    reference_f = [np.zeros((2, 3)), np.zeros((2, 3))]
    model_f = [np.zeros((2, 3)), np.zeros((2, 3))]
    model_f[1][0, 2] = 0.3
    errors = model_errors([1.0, 3.0], model_f, [0.0, 2.0], reference_f, [2, 2])
    assert errors['force_rmse_eV_A'] == pytest.approx(np.sqrt(0.09 / 12))
    assert errors['energy_rmse_meV_atom'] == pytest.approx(0.0, abs=1e-9)
    assert errors['energy_offset_meV_atom'] == pytest.approx(500.0)
    assert errors['frames'] == 2
    # per-atom energy errors of +1 and -1 meV about the offset give 1 meV/atom
    errors = model_errors([0.002, -0.002], reference_f, [0.0, 0.0], reference_f, [2, 2])
    assert errors['energy_rmse_meV_atom'] == pytest.approx(1.0)


def test_frame_labels_name_what_is_missing():
    atoms = Atoms('H2', positions=[[0, 0, 0], [0, 0, 0.74]])
    with pytest.raises(ValueError, match='frame 0 has no energy and forces'):
        frame_labels([atoms])
    atoms.calc = SinglePointCalculator(atoms, energy=-1.0, forces=np.full((2, 3), np.nan))
    with pytest.raises(ValueError, match='non-finite'):
        frame_labels([atoms])
    with pytest.raises(ValueError, match='no frames'):
        frame_labels([])


def test_predict_knows_the_model_type_map(data_dir):
    model = str(data_dir / 'deepmd' / 'model_in4pf9_fast.pth')
    atoms = read(data_dir / 'deepmd' / 'in4pf9_relaxed_fast.xyz')
    energies, forces = predict(model, [atoms])
    assert energies.shape == (1,) and forces[0].shape == (14, 3) and np.isfinite(forces[0]).all()
    # a rigid translation of an isolated cluster changes neither energy nor forces
    moved = atoms.copy()
    moved.translate([0.3, -0.2, 0.1])
    energies_moved, forces_moved = predict(model, [moved])
    assert energies_moved[0] == pytest.approx(energies[0], abs=1e-6)
    assert forces_moved[0] == pytest.approx(forces[0], abs=1e-6)
    with pytest.raises(ValueError, match=r"element\(s\) \['Cl'\] that the model does not know"):
        predict(model, [Atoms('InCl', positions=[[0, 0, 0], [2.4, 0, 0]])])
