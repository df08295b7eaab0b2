"""Bulk crystals, formal charges and bond geometry of the QD materials.

Pure functions on numpy / :class:`ase.Atoms`; no AiiDA import. Units: lengths in Å, charges in e.

Lattice convention: every crystal comes from :func:`ase.build.bulk` (cation at the origin, cubic axes), so on a
zincblende lattice the bonds of a cation point along :data:`TETRAHEDRAL` and those of an anion along
``-TETRAHEDRAL``; on a rock-salt lattice every atom bonds along ``±x, ±y, ±z``. All builder functions keep the
cubic axes (they only translate), which is what lets vacancies, shells and reconstructions find missing bonds.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.data import atomic_numbers, covalent_radii

#: Bulk crystals: structure type, cation, anion, lattice constant (Å, room-temperature literature values).
MATERIALS: dict[str, tuple[str, str, str, float]] = {
    'InP': ('zincblende', 'In', 'P', 5.869),
    'GaP': ('zincblende', 'Ga', 'P', 5.451),
    'InAs': ('zincblende', 'In', 'As', 6.058),
    'CdSe': ('zincblende', 'Cd', 'Se', 6.077),
    'CdS': ('zincblende', 'Cd', 'S', 5.825),
    'ZnSe': ('zincblende', 'Zn', 'Se', 5.668),
    'ZnS': ('zincblende', 'Zn', 'S', 5.409),
    'PbS': ('rocksalt', 'Pb', 'S', 5.936),
    'PbSe': ('rocksalt', 'Pb', 'Se', 6.124),
}

#: Formal oxidation states used for charge balance (H is a proton on an anion dangling bond, as in Bhati et al.).
FORMAL_CHARGES: dict[str, int] = {
    'In': 3, 'Ga': 3, 'Cd': 2, 'Zn': 2, 'Pb': 2, 'Cs': 1,
    'P': -3, 'As': -3, 'Se': -2, 'S': -2,
    'F': -1, 'Cl': -1, 'Br': -1, 'I': -1, 'H': 1,
}

CATIONS = frozenset(m[1] for m in MATERIALS.values())
ANIONS = frozenset(m[2] for m in MATERIALS.values())

#: Unit vectors of the four zincblende cation → anion bonds (anion → cation bonds are their negatives).
TETRAHEDRAL = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) / np.sqrt(3)
#: Unit vectors of the six rock-salt bonds.
OCTAHEDRAL = np.vstack([np.eye(3), -np.eye(3)])


def check_material(material: str) -> tuple[str, str, str, float]:
    """``(structure, cation, anion, lattice constant in Å)`` of ``material``; ValueError naming the known ones."""
    if material not in MATERIALS:
        raise ValueError(f'unknown material {material!r}; known: {sorted(MATERIALS)}')
    return MATERIALS[material]


def lattice_constant_of(material: str, lattice_constant: float | None = None) -> float:
    """The cubic lattice constant (Å): ``lattice_constant`` when given (must be positive), else the literature one."""
    a0 = check_material(material)[3]
    a = float(a0 if lattice_constant is None else lattice_constant)
    if not a > 0:
        raise ValueError(f'lattice constant must be positive, got {lattice_constant!r}')
    return a


def bulk_crystal(material: str, lattice_constant: float | None = None) -> Atoms:
    """Return the conventional cubic cell of ``material`` (a key of :data:`MATERIALS`)."""
    kind, cation, anion, _ = check_material(material)
    return bulk(f'{cation}{anion}', kind, a=lattice_constant_of(material, lattice_constant), cubic=True)


def nearest_neighbour_distance(material: str, lattice_constant: float | None = None) -> float:
    """Cation–anion bond length of the bulk crystal (Å)."""
    kind = check_material(material)[0]
    a = lattice_constant_of(material, lattice_constant)
    return a * np.sqrt(3) / 4 if kind == 'zincblende' else a / 2


def bulk_coordination(kind: str) -> int:
    """Number of nearest neighbours in the bulk: 4 (zincblende) or 6 (rock salt)."""
    return 4 if kind == 'zincblende' else 6


def bond_length(a: str, b: str) -> float:
    """A typical bond length (Å) between elements ``a`` and ``b``: :data:`LIGAND_BOND_LENGTHS` or covalent radii."""
    return LIGAND_BOND_LENGTHS.get((a, b), LIGAND_BOND_LENGTHS.get((b, a), float(
        covalent_radii[atomic_numbers[a]] + covalent_radii[atomic_numbers[b]])))


#: Typical cation–ligand and anion–H bond lengths (Å) used to place ligands; fallback: sum of covalent radii.
LIGAND_BOND_LENGTHS: dict[tuple[str, str], float] = {
    ('In', 'F'): 2.05, ('In', 'Cl'): 2.40, ('In', 'Br'): 2.55, ('In', 'I'): 2.75,
    ('Ga', 'F'): 1.85, ('Ga', 'Cl'): 2.20, ('Ga', 'Br'): 2.35, ('Ga', 'I'): 2.55,
    ('Cd', 'F'): 2.15, ('Cd', 'Cl'): 2.45, ('Cd', 'Br'): 2.60, ('Cd', 'I'): 2.80,
    ('Zn', 'F'): 1.95, ('Zn', 'Cl'): 2.25, ('Zn', 'Br'): 2.40, ('Zn', 'I'): 2.60,
    ('Pb', 'F'): 2.30, ('Pb', 'Cl'): 2.65, ('Pb', 'Br'): 2.80, ('Pb', 'I'): 3.00,
    ('In', 'O'): 2.15, ('Ga', 'O'): 1.95, ('Cd', 'O'): 2.25, ('Zn', 'O'): 2.05, ('Pb', 'O'): 2.40,
    ('P', 'H'): 1.42, ('As', 'H'): 1.52, ('S', 'H'): 1.34, ('Se', 'H'): 1.47,
}
