"""The rigid-motion soundness kernel: perturbations, comparisons, the one-line format and the verdict."""

from __future__ import annotations

import math
import pathlib

import numpy as np
import pytest

from aiida_qdtraps.analysis.soundness import (
    Point,
    compare_points,
    parse_soundness_line,
    read_point,
    rigid_motions,
    rotation_matrix,
    soundness_line,
    verdict,
)


def test_rotation_matrix_is_a_proper_rotation():
    matrix = rotation_matrix((1, 2, 3), 17.0)
    assert np.allclose(matrix @ matrix.T, np.eye(3)) and math.isclose(np.linalg.det(matrix), 1.0)
    axis = np.array([1, 2, 3]) / np.sqrt(14)
    assert np.allclose(matrix @ axis, axis)  # the axis stays put
    assert math.isclose(np.degrees(np.arccos((np.trace(matrix) - 1) / 2)), 17.0)
    with pytest.raises(ValueError, match='non-zero 3-vector'):
        rotation_matrix((0, 0, 0), 10)


def test_rigid_motions_keep_distances_and_move_the_cluster():
    rng = np.random.default_rng(1)
    positions = rng.normal(size=(6, 3)) * 2
    distances = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    motions = rigid_motions(positions)
    assert set(motions) == {'translation', 'translation_small', 'rotation'}
    for moved, rotation in motions.values():
        assert np.allclose(np.linalg.norm(moved[:, None] - moved[None], axis=-1), distances)
        assert not np.allclose(moved, positions)
    moved, rotation = motions['rotation']
    assert np.allclose(moved.mean(0), positions.mean(0))  # about the centroid
    assert np.allclose((positions - positions.mean(0)) @ rotation.T + positions.mean(0), moved)


def test_compare_points_turns_the_reference_forces_with_the_rotation():
    rotation = rotation_matrix((0, 0, 1), 90.0)
    forces = np.array([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]])
    reference = Point(energy=-10.0, forces=forces, homo=-5.0, lumo=-2.0)
    exact = Point(energy=-10.0, forces=forces @ rotation.T, homo=-5.0, lumo=-2.0)
    values = compare_points(reference, exact, rotation)
    assert values['max_dF_Ha_bohr'] < 1e-12 and values['dE_mHa'] == 0 and values['dgap_meV'] == 0
    # the same forces unrotated are wrong by the full force in two components
    assert math.isclose(compare_points(reference, Point(-10.0, forces), rotation)['max_dF_Ha_bohr'], 1.0)
    noisy = Point(energy=-10.0005, forces=forces + [[0.0, 0.0, 3e-3], [0.0, 0.0, 0.0]], homo=-5.002, lumo=-1.995)
    values = compare_points(reference, noisy)
    assert math.isclose(values['max_dF_Ha_bohr'], 3e-3) and math.isclose(values['net_force_Ha_bohr'], 3e-3)
    assert math.isclose(values['dE_mHa'], -0.5, abs_tol=1e-9)
    assert math.isclose(values['dhomo_meV'], -2.0, abs_tol=1e-9)
    assert math.isclose(values['dlumo_meV'], 5.0, abs_tol=1e-9)
    assert math.isclose(values['dgap_meV'], 7.0, abs_tol=1e-9)
    missing = compare_points(Point(-1.0), Point(-1.0))
    assert math.isnan(missing['max_dF_Ha_bohr']) and math.isnan(missing['dgap_meV'])
    with pytest.raises(ValueError, match='shape'):
        compare_points(reference, Point(-10.0, np.zeros((3, 3))))


def test_line_round_trip_and_verdict():
    values = {'max_dF_Ha_bohr': 3.1e-4, 'max_force_criterion': 4.5e-4, 'dE_mHa': -0.25, 'dgap_meV': float('nan'),
              'dhomo_meV': 6.5, 'dlumo_meV': 0.4, 'net_force_Ha_bohr': 2e-5, 'seconds': 81.26}
    line = soundness_line('translation', values)
    assert line.startswith('translation max_dF_Ha_bohr=3.10e-04 max_force_criterion=4.50e-04 dE_mHa=-0.250 '
                           'dgap_meV=nan')
    name, parsed = parse_soundness_line(line + '  # a comment')
    assert name == 'translation' and parsed['seconds'] == 81.3 and math.isnan(parsed['dgap_meV'])
    assert verdict(parsed, n_atoms=14) == ['max_dF_Ha_bohr 3.10e-04 > 0.5 x MAX_FORCE 4.50e-04',
                                           '|dhomo_meV| 6.50 > 5.0']
    assert verdict({**parsed, 'dE_mHa': 2.0, 'max_dF_Ha_bohr': 1e-4, 'dhomo_meV': 0.0}, n_atoms=14) == [
        '|dE_mHa| 2.000 > 0.1 x 14 atoms']
    with pytest.raises(ValueError, match='not a soundness line'):
        parse_soundness_line('baseline')
    with pytest.raises(ValueError, match="dE_mHa='x'"):
        parse_soundness_line('baseline dE_mHa=x')


DATA = pathlib.Path(__file__).parents[1] / 'data' / 'cp2k' / 'soundness'


def test_read_point_on_recorded_gapw_outputs():
    """The recorded GAPW In4PF9 points: a translation and a rotation change forces by < 1.3e-4 Ha/bohr."""
    folder = DATA / 'in4pf9_gapw_dzvp_300ry'
    baseline = read_point((folder / 'baseline.out').read_text())
    assert baseline.forces.shape == (14, 3)
    assert baseline.energy == pytest.approx(-450.085362131, abs=1e-8)
    assert baseline.homo is None  # no MO energies printed in a relax-stage point
    motions = rigid_motions(np.zeros((14, 3)))
    lines = {}
    for name in ('translation', 'rotation'):
        point = read_point((folder / f'{name}.out').read_text(), seconds=1.0)
        values = compare_points(baseline, point, motions[name][1])
        values.update(max_force_criterion=4.5e-3, seconds=point.seconds)
        lines[name] = soundness_line(name, values)
        assert verdict(values, n_atoms=14) == []
    _, translation = parse_soundness_line(lines['translation'])
    _, rotation = parse_soundness_line(lines['rotation'])
    assert translation['max_dF_Ha_bohr'] == pytest.approx(7.29e-5, rel=0.01)
    assert rotation['max_dF_Ha_bohr'] == pytest.approx(1.22e-4, rel=0.01)
    assert abs(translation['dE_mHa']) < 0.01
    # the same outputs, compared without turning the reference forces, show the rotation
    unturned = compare_points(baseline, read_point((folder / 'rotation.out').read_text()))
    assert unturned['max_dF_Ha_bohr'] > 50 * rotation['max_dF_Ha_bohr']


def test_read_point_on_recorded_pbe0_outputs():
    """The recorded `fast` PBE0 points: HOMO/LUMO from the printed MO energies; the rotation's line as printed."""
    folder = DATA / 'in4pf9_pbe0_fast'
    baseline = read_point((folder / 'baseline.out').read_text())
    assert baseline.forces is None  # an ENERGY run
    assert baseline.lumo - baseline.homo == pytest.approx(5.01784431, abs=1e-6)  # eV, CP2K's "MO| Band gap"
    rotated = read_point((folder / 'rotation.out').read_text(), seconds=182.1)
    values = compare_points(baseline, rotated, rigid_motions(np.zeros((14, 3)))['rotation'][1])
    assert values['dgap_meV'] == pytest.approx(0.874, abs=0.002)
    assert values['dhomo_meV'] == pytest.approx(0.393, abs=0.002)
    assert values['dlumo_meV'] == pytest.approx(1.268, abs=0.002)
    assert values['dE_mHa'] == pytest.approx(-0.317, abs=0.001)
    assert math.isnan(values['max_dF_Ha_bohr'])
    assert verdict(values, n_atoms=14) == []
    # a gap change above 5 meV is a broken bound, named
    broken = verdict({**values, 'dgap_meV': 6.0}, n_atoms=14)
    assert len(broken) == 1 and 'gap' in broken[0]


def test_read_point_refuses_unconverged_and_unfinished_outputs():
    failed = (pathlib.Path(__file__).parents[1] / 'data' / 'cp2k' / 'failed' / 'scf_not_converged.out').read_text()
    with pytest.raises(ValueError, match='SCF did not converge'):
        read_point(failed)
    text = (DATA / 'in4pf9_gapw_dzvp_300ry' / 'baseline.out').read_text()
    with pytest.raises(ValueError, match='did not finish'):
        read_point(text[:len(text) // 2])
