"""Cutout geometry, geodesic interpolation and orbital measures of :mod:`aiida_qdtraps.analysis.cutout`."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from scipy.spatial.transform import Rotation

from aiida_qdtraps.analysis import cutout

TETRAHEDRAL_ANGLE = np.degrees(np.arccos(-1 / 3))


def _angles(atoms: Atoms) -> np.ndarray:
    v = atoms.positions[1:] - atoms.positions[0]
    v /= np.linalg.norm(v, axis=1)[:, None]
    i, j = np.triu_indices(4, 1)
    return np.degrees(np.arccos(np.clip(np.einsum('ij,ij->i', v[i], v[j]), -1, 1)))


def seesaw(a_deg: float, b_deg: float, d: float = 2.261, centre='P', ligand='Li') -> Atoms:
    """Tetrahedral centre with Li1-P-Li2 = a in the xz plane and Li3-P-Li4 = b in the yz plane (Td: a = b = 109.47)."""
    a, b = np.radians(a_deg) / 2, np.radians(b_deg) / 2
    v = np.array([(np.sin(a), 0, np.cos(a)), (-np.sin(a), 0, np.cos(a)), (0, np.sin(b), -np.cos(b)),
                  (0, -np.sin(b), -np.cos(b))])
    return Atoms(centre + ligand * 4, positions=np.vstack([np.zeros(3), d * v]))


@pytest.fixture
def distorted_inp():
    """P with four In at 2.54, 2.60, 2.70, 2.54 Å in a see-saw-like distortion, plus two far F atoms; shifted."""
    base = seesaw(135.0, 115.0, 1.0)
    lengths = np.array([2.54, 2.60, 2.70, 2.54])
    positions = np.vstack([np.zeros(3), base.positions[1:] * lengths[:, None], [[8.0, 0, 0], [0, 8.0, 0]]])
    return Atoms('PIn4F2', positions=positions + [1.0, -2.0, 3.0])


def test_cutout_keeps_directions_and_sets_the_distance(distorted_inp):
    piece = cutout.make_cutout(distorted_inp, 0)
    assert piece.get_chemical_symbols() == ['P', 'Li', 'Li', 'Li', 'Li']
    assert np.allclose(piece.positions[0], 0)
    assert np.allclose(np.linalg.norm(piece.positions[1:], axis=1), cutout.PLI4_DISTANCE)
    original = distorted_inp[[0, *piece.info['neighbours']]]
    assert np.allclose(_angles(piece), _angles(original), atol=1e-10)
    assert sorted(np.round(_angles(piece), 6)) == pytest.approx(sorted([135.0, 115.0] + [
        float(a) for a in _angles(seesaw(135.0, 115.0))[[1, 2, 3, 4]]]), abs=1e-6)
    assert piece.info['charge'] == 1 and piece.info['centre'] == 0
    assert piece.info['neighbours'][0] in (1, 4)  # nearest first (2.54 Å)
    assert piece.info['neighbours'][-1] == 3  # 2.70 Å


def test_cutout_can_keep_bond_stretches(distorted_inp):
    piece = cutout.make_cutout(distorted_inp, 0, replacement='Na', distance=2.8, reference_length=2.54, charge=0)
    lengths = np.linalg.norm(piece.positions[1:], axis=1)
    assert np.allclose(sorted(lengths), sorted(2.8 * np.array([2.54, 2.60, 2.70, 2.54]) / 2.54))
    assert piece.get_chemical_symbols()[1:] == ['Na'] * 4 and piece.info['charge'] == 0


def test_cutout_refuses_a_centre_that_is_not_four_coordinate(distorted_inp):
    three = distorted_inp[[0, 1, 2, 3, 5, 6]]
    with pytest.raises(ValueError, match=r'atom 0 \(P\) is 3-coordinate, not 4-coordinate'):
        cutout.make_cutout(three, 0)
    with pytest.raises(ValueError, match=r'atom 5 \(F\) is 0-coordinate'):
        cutout.make_cutout(distorted_inp, 5)
    with pytest.raises(ValueError, match='centre 9 is not an atom index'):
        cutout.make_cutout(distorted_inp, 9)


def test_ideal_tetrahedron_and_kabsch_alignment():
    ideal = cutout.ideal_tetrahedron(distance=2.3)
    assert np.allclose(_angles(ideal), TETRAHEDRAL_ANGLE)
    assert np.allclose(np.linalg.norm(ideal.positions[1:], axis=1), 2.3)
    # a rotated tetrahedron with its ligands in another order: the aligned reference lands on it atom by atom
    rotation = Rotation.from_euler('zyx', [40, -25, 70], degrees=True).as_matrix()
    target = Atoms('PLi4', positions=(ideal.positions @ rotation.T)[[0, 3, 1, 4, 2]] + [0.5, 0.5, 0.5])
    reference = cutout.aligned_reference(target)
    assert np.allclose(reference.positions, target.positions, atol=1e-10)
    # a distorted cutout: the reference is ideal, at the mean bond length, and close to the cutout
    distorted = seesaw(150.0, 115.0)
    reference = cutout.aligned_reference(distorted)
    assert np.allclose(_angles(reference), TETRAHEDRAL_ANGLE)
    assert np.linalg.norm(reference.positions - distorted.positions, axis=1).max() < 0.8


def test_interpolation_runs_from_the_reference_to_the_cutout():
    end = seesaw(160.0, 120.0)
    start = cutout.aligned_reference(end)
    frames = cutout.interpolate(start, end, 7)
    assert len(frames) == 7 and [f.info['frame'] for f in frames] == list(range(7))
    assert np.allclose(frames[-1].positions, end.positions, atol=1e-8)
    assert np.allclose(_angles(frames[0]), TETRAHEDRAL_ANGLE, atol=1e-6)
    widest = [_angles(f).max() for f in frames]
    assert np.all(np.diff(widest) > 0) and widest[-1] == pytest.approx(160.0, abs=1e-6)
    bond = np.array([np.linalg.norm(f.positions[1:] - f.positions[0], axis=1) for f in frames])
    assert np.abs(bond - 2.261).max() < 0.05  # the geodesic keeps P-Li near its length, unlike a Cartesian line
    assert len(cutout.interpolate(start, end, 2)) == 2


@pytest.mark.parametrize('n', [1, 0, -3])
def test_interpolation_needs_two_frames(n):
    with pytest.raises(ValueError, match=f'at least 2 frames.*n_frames={n}'):
        cutout.interpolate(seesaw(120, 100), seesaw(130, 100), n)


def test_interpolation_needs_the_same_atoms():
    with pytest.raises(ValueError, match='different atoms'):
        cutout.interpolate(seesaw(120, 100), seesaw(130, 100, ligand='Na'), 3)


def test_homo_splitting():
    assert cutout.homo_splitting([-10.0, -8.0, -9.0, -8.5]) == pytest.approx(0.75)
    assert cutout.homo_splitting([-5.0, -5.0, -5.0]) == 0.0
    with pytest.raises(ValueError, match='at least three'):
        cutout.homo_splitting([-1.0, -2.0])


LABELS = ['0 P 3s', '0 P 3px', '0 P 3py', '0 P 3pz', '0 P 4px', '0 P 4py', '0 P 4pz', '1 Li 2s', '1 Li 2px',
          '1 Li 2py', '1 Li 2pz']
AO_ATOM = np.array([0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1])


def test_p_orientation_of_a_pure_p_orbital():
    n = np.array([1.0, 2.0, -2.0]) / 3.0
    coefficients = np.zeros(11)
    coefficients[0] = 0.3  # an s admixture does not tilt the axis
    coefficients[1:4] = 0.8 * n
    coefficients[4:7] = -0.2 * n  # outer shell of opposite sign
    coefficients[8:11] = [1.0, 0, 0]  # p on another atom is ignored
    axis = cutout.p_orientation(coefficients, AO_ATOM, LABELS, 0)
    assert cutout.orientation_cosine(axis, n) == pytest.approx(1.0, abs=1e-12)
    overlap = np.eye(11)
    overlap[1, 4] = overlap[4, 1] = overlap[2, 5] = overlap[5, 2] = overlap[3, 6] = overlap[6, 3] = 0.5
    axis = cutout.p_orientation(coefficients, AO_ATOM, LABELS, 0, overlap=overlap)
    assert cutout.orientation_cosine(axis, n) == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError, match='atom 1 has no complete p shells'):
        cutout.p_orientation(coefficients, AO_ATOM, LABELS[:8] + ['1 Li 2py', '1 Li 2pz', '1 Li 2s'], 1)


def test_internal_frame_makes_orientations_rotation_invariant():
    ideal = cutout.ideal_tetrahedron()
    assert np.allclose(cutout.internal_frame(ideal.positions[0], ideal.positions[1:]), np.eye(3), atol=1e-12)
    geometry = seesaw(140.0, 115.0)
    rotation = Rotation.from_euler('xyz', [10, 80, -35], degrees=True).as_matrix()
    n = np.array([0.0, 0.6, 0.8])
    frame = cutout.internal_frame(geometry.positions[0], geometry.positions[1:])
    frame_rotated = cutout.internal_frame(geometry.positions[0], geometry.positions[1:] @ rotation.T)
    assert np.allclose(frame @ n, frame_rotated @ (rotation @ n), atol=1e-12)


def test_orientation_cosine_is_sign_invariant():
    assert cutout.orientation_cosine([1, 0, 0], [-1, 0, 0]) == pytest.approx(1.0)
    assert cutout.orientation_cosine([1, 0, 0], [1, 1, 0]) == pytest.approx(np.sqrt(0.5))
    assert cutout.orientation_cosine([0, 0, 2], [3, 0, 0]) == pytest.approx(0.0)


def test_orientation_is_defined_only_for_a_lone_homo_and_a_single_mo_trap():
    assert cutout.orientation_defined(np.array([-7.9, -8.6, -8.9])) == (True, '')
    defined, note = cutout.orientation_defined(np.array([-8.3196, -8.3196, -8.3196]))
    assert not defined and '0.0 meV apart' in note
    assert not cutout.orientation_defined(np.array([-8.0, -8.005, -8.3]))[0]  # 5 meV < 10 meV
    defined, note = cutout.orientation_defined(np.array([-7.9, -8.6, -8.9]), trap_mos=2)
    assert not defined and 'mixture of 2 MOs' in note


def test_sphere_fractions():
    points = np.array([[0.0, 0, 0], [1.0, 0, 0], [5.0, 0, 0], [9.0, 0, 0]])
    weights = np.array([1.0, 1.0, 2.0, 1.0])
    density = np.array([1.0, 1.0, 1.0, 0.0])
    fractions = cutout.sphere_fractions(points, weights, density, np.array([[0.0, 0, 0], [5.0, 0, 0]]),
                                        np.array([1.5, 0.5]))
    assert fractions == pytest.approx([0.5, 0.5])
    assert cutout.covalent_radius('Li') == pytest.approx(1.28)
