"""Numerical soundness of an electronic-structure protocol: what a rigid motion of the QD changes. No AiiDA import.

A rigid translation or rotation of an isolated QD changes nothing physical: the energy, the HOMO/LUMO energies and the
magnitudes of the forces are invariant, and the forces rotate with the QD. Whatever changes is numerical error of the
method, in CP2K mostly the "egg-box" of its real-space grid. :func:`rigid_motions` makes the perturbed geometries,
:func:`compare_points` measures the changes and :func:`soundness_line` prints them in the one-line format of
``benchmarks/protocol_soundness.py``, which :func:`parse_soundness_line` reads back.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

#: The default translation (Å): not a multiple of any grid spacing a protocol uses.
DEFAULT_SHIFT = (0.07, 0.05, 0.03)
#: A second, smaller translation, so that two shift sizes are sampled.
DEFAULT_SHIFT_SMALL = (0.021, -0.013, 0.034)
#: The default rotation: 17 degrees about the (1, 2, 3) axis through the centroid.
DEFAULT_AXIS = (1.0, 2.0, 3.0)
DEFAULT_ANGLE = 17.0


def rotation_matrix(axis, degrees: float) -> np.ndarray:
    """The 3×3 matrix of a rotation by ``degrees`` about ``axis`` (Rodrigues' formula)."""
    axis = np.asarray(axis, dtype=float)
    norm = np.linalg.norm(axis)
    if axis.shape != (3,) or norm == 0:
        raise ValueError(f'rotation axis must be a non-zero 3-vector, got {axis!r}')
    axis = axis / norm
    angle = math.radians(degrees)
    cross = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    return np.eye(3) + math.sin(angle) * cross + (1 - math.cos(angle)) * cross @ cross


def rigid_motions(positions: np.ndarray, shift=DEFAULT_SHIFT, shift_small=DEFAULT_SHIFT_SMALL, axis=DEFAULT_AXIS,
                  angle: float = DEFAULT_ANGLE) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The perturbed geometries: ``{name: (positions, rotation)}`` for ``translation``, ``translation_small`` and
    ``rotation`` (about the centroid). ``rotation`` is the matrix the forces of the reference must be turned by."""
    positions = np.asarray(positions, dtype=float)
    centroid = positions.mean(axis=0)
    matrix = rotation_matrix(axis, angle)
    return {
        'translation': (positions + np.asarray(shift, dtype=float), np.eye(3)),
        'translation_small': (positions + np.asarray(shift_small, dtype=float), np.eye(3)),
        'rotation': ((positions - centroid) @ matrix.T + centroid, matrix),
    }


@dataclass
class Point:
    """One single point: total energy (Ha), forces (n, 3) in Ha/bohr or None, HOMO/LUMO (eV) or None, wall time (s)."""

    energy: float
    forces: np.ndarray | None = None
    homo: float | None = None
    lumo: float | None = None
    seconds: float | None = None


def read_point(text: str, seconds: float | None = None) -> Point:
    """A :class:`Point` from a CP2K main output (ENERGY or ENERGY_FORCE; HOMO/LUMO where ``&MO`` energies with
    occupations and at least one empty orbital are printed). Energy and forces are read in the layout of CP2K up to
    2024.x and in that of 2025.1 on (:func:`~aiida_qdtraps.parsers.cp2k_files.parse_total_energy`,
    :func:`~aiida_qdtraps.parsers.cp2k_files.parse_forces`).

    :raises ValueError: if CP2K did not finish or its SCF did not converge: such a point says nothing about the grid.
    """
    from aiida_qdtraps.parsers.cp2k_files import homo_lumo, parse_forces, parse_mo_eigenvalues, parse_total_energy

    if 'PROGRAM ENDED AT' not in text:
        raise ValueError('CP2K did not finish; the end of its output:\n' + text[-2000:])
    if 'SCF run NOT converged' in text:
        raise ValueError('the SCF did not converge: the point says nothing about the grid')
    energy = parse_total_energy(text)
    if energy is None:
        raise ValueError('no "ENERGY| Total FORCE_EVAL" line in the CP2K output')
    homo = lumo = None
    blocks = parse_mo_eigenvalues(text)
    if 'alpha' in blocks:
        energies, occupations = blocks['alpha'][:, 0], blocks['alpha'][:, 1]
        if (occupations <= 1e-3).any():
            index_homo, index_lumo = homo_lumo(energies, occupations)
            homo, lumo = float(energies[index_homo]), float(energies[index_lumo])
    return Point(energy=energy, forces=parse_forces(text), homo=homo, lumo=lumo, seconds=seconds)


def _difference(a: float | None, b: float | None, scale: float) -> float:
    return float('nan') if a is None or b is None else (b - a) * scale


def compare_points(reference: Point, perturbed: Point, rotation: np.ndarray | None = None) -> dict:
    """What a rigid motion changed.

    :param rotation: the matrix the QD was rotated by (identity for a translation); the reference forces are turned
        by it before they are compared.
    :returns: ``max_dF_Ha_bohr`` (largest change of a force component), ``net_force_Ha_bohr`` (largest component of
        the perturbed point's total force, zero for an exact method), ``dE_mHa``, ``dhomo_meV``, ``dlumo_meV``,
        ``dgap_meV``; NaN where a quantity is missing.
    """
    rotation = np.eye(3) if rotation is None else np.asarray(rotation)
    if reference.forces is not None and perturbed.forces is not None:
        if reference.forces.shape != perturbed.forces.shape:
            raise ValueError(f'force arrays differ in shape: {reference.forces.shape} != {perturbed.forces.shape}')
        max_df = float(np.abs(perturbed.forces - reference.forces @ rotation.T).max())
        net = float(np.abs(perturbed.forces.sum(axis=0)).max())
    else:
        max_df = net = float('nan')
    gap_ref = None if reference.homo is None or reference.lumo is None else reference.lumo - reference.homo
    gap = None if perturbed.homo is None or perturbed.lumo is None else perturbed.lumo - perturbed.homo
    return {
        'max_dF_Ha_bohr': max_df,
        'net_force_Ha_bohr': net,
        'dE_mHa': _difference(reference.energy, perturbed.energy, 1000.0),
        'dhomo_meV': _difference(reference.homo, perturbed.homo, 1000.0),
        'dlumo_meV': _difference(reference.lumo, perturbed.lumo, 1000.0),
        'dgap_meV': _difference(gap_ref, gap, 1000.0),
    }


#: The keys of a soundness line, in print order.
LINE_KEYS = ('max_dF_Ha_bohr', 'max_force_criterion', 'dE_mHa', 'dgap_meV', 'dhomo_meV', 'dlumo_meV',
             'net_force_Ha_bohr', 'seconds')


def soundness_line(name: str, values: dict) -> str:
    """``<name> max_dF_Ha_bohr=<x> max_force_criterion=<y> dE_mHa=<z> dgap_meV=<w> ... seconds=<s>``.

    The reference point's line is named ``baseline`` and carries zeros for the changes.
    """
    def fmt(key, value):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return f'{key}=nan'
        if key in ('max_dF_Ha_bohr', 'max_force_criterion', 'net_force_Ha_bohr'):
            return f'{key}={value:.2e}'
        if key == 'seconds':
            return f'{key}={value:.1f}'
        return f'{key}={value:.3f}'

    return ' '.join([name] + [fmt(key, values.get(key)) for key in LINE_KEYS])


_PAIR = re.compile(r'(\w+)=(\S+)')


def parse_soundness_line(line: str) -> tuple[str, dict[str, float]]:
    """Read a line of :func:`soundness_line` back: ``(name, {key: float})``; ``nan`` reads as NaN.

    :raises ValueError: if the line has no ``key=value`` pairs or a value is not a number.
    """
    parts = line.split(maxsplit=1)
    if len(parts) < 2 or not _PAIR.search(parts[1]):
        raise ValueError(f'not a soundness line: {line!r}')
    values = {}
    for key, value in _PAIR.findall(parts[1]):
        try:
            values[key] = float(value)
        except ValueError as exc:
            raise ValueError(f'{key}={value!r} is not a number in {line!r}') from exc
    return parts[0], values


def verdict(values: dict, energy_per_atom_mha: float = 0.1, n_atoms: int | None = None,
            level_mev: float = 5.0) -> list[str]:
    """The bounds a perturbation line breaks (empty when it is sound): force change ≤ half the relax criterion,
    energy change ≤ ``energy_per_atom_mha`` × atoms, HOMO / LUMO / gap change ≤ ``level_mev``. Missing values (NaN) are
    not judged."""
    broken = []
    criterion = values.get('max_force_criterion', float('nan'))
    df = values.get('max_dF_Ha_bohr', float('nan'))
    if not math.isnan(df) and not math.isnan(criterion) and df > 0.5 * criterion:
        broken.append(f'max_dF_Ha_bohr {df:.2e} > 0.5 x MAX_FORCE {criterion:.2e}')
    de = values.get('dE_mHa', float('nan'))
    if n_atoms and not math.isnan(de) and abs(de) > energy_per_atom_mha * n_atoms:
        broken.append(f'|dE_mHa| {abs(de):.3f} > {energy_per_atom_mha} x {n_atoms} atoms')
    for key in ('dhomo_meV', 'dlumo_meV', 'dgap_meV'):
        value = values.get(key, float('nan'))
        if not math.isnan(value) and abs(value) > level_mev:
            broken.append(f'|{key}| {abs(value):.2f} > {level_mev}')
    return broken
