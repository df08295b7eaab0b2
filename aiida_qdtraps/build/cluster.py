"""Small QD models carved from bulk crystals and passivated with X-type ligands.

Pure functions on :class:`ase.Atoms`; no AiiDA import. This is the foundation's minimal builder (a sphere
carved around an atom or an interstitial site, X-type passivation to an exact charge); the full builder
(shapes, vacancies, core@shell) extends it.

Units: lengths in Å, charges in e.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.data import atomic_numbers, covalent_radii
from scipy.spatial import cKDTree

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

#: Formal oxidation states used for charge balance.
FORMAL_CHARGES: dict[str, int] = {
    'In': 3, 'Ga': 3, 'Cd': 2, 'Zn': 2, 'Pb': 2,
    'P': -3, 'As': -3, 'Se': -2, 'S': -2,
    'F': -1, 'Cl': -1, 'Br': -1, 'I': -1, 'H': -1,
}

#: Typical cation–ligand bond lengths (Å) used to place X-type ligands; fallback: sum of covalent radii.
LIGAND_BOND_LENGTHS: dict[tuple[str, str], float] = {
    ('In', 'F'): 2.05, ('In', 'Cl'): 2.40, ('Ga', 'F'): 1.85, ('Ga', 'Cl'): 2.20,
    ('Cd', 'Cl'): 2.45, ('Zn', 'Cl'): 2.25, ('Pb', 'Cl'): 2.65,
}


@dataclass(frozen=True)
class QdReport:
    """Summary of a built QD."""

    formula: str
    n_atoms: int
    net_charge: int
    diameter: float
    coordination: dict[str, dict[int, int]]


def bulk_crystal(material: str, lattice_constant: float | None = None) -> Atoms:
    """Return the conventional cubic cell of ``material`` (a key of :data:`MATERIALS`)."""
    if material not in MATERIALS:
        raise ValueError(f'unknown material {material!r}; known: {sorted(MATERIALS)}')
    kind, cation, anion, a0 = MATERIALS[material]
    a = float(lattice_constant or a0)
    if a <= 0:
        raise ValueError(f'lattice constant must be positive, got {a!r}')
    return bulk(f'{cation}{anion}', kind, a=a, cubic=True)


def nearest_neighbour_distance(material: str, lattice_constant: float | None = None) -> float:
    """Cation–anion bond length of the bulk crystal (Å)."""
    kind, _, _, a0 = MATERIALS[material]
    a = float(lattice_constant or a0)
    return a * np.sqrt(3) / 4 if kind == 'zincblende' else a / 2


def carve_sphere(material: str, diameter: float, center: str = 'anion', lattice_constant: float | None = None,
                 min_core_bonds: int = 2) -> Atoms:
    """Carve a spherical core of ``diameter`` (Å) from the bulk crystal.

    :param center: ``'anion'`` or ``'cation'`` (centred on an atom) or ``'interstitial'`` (centre of the
        conventional cell's empty tetrahedral/octahedral site).
    :param min_core_bonds: atoms with fewer core bonds are pruned iteratively (use 1 for the smallest
        molecular clusters, where every cation has a single bond to the central anion).
    """
    if diameter <= 0:
        raise ValueError(f'diameter must be positive, got {diameter!r}')
    kind, cation, anion, _ = MATERIALS.get(material, (None,) * 4)
    if kind is None:
        raise ValueError(f'unknown material {material!r}; known: {sorted(MATERIALS)}')
    cell = bulk_crystal(material, lattice_constant)
    a = cell.cell[0, 0]
    reps = int(np.ceil(diameter / a)) + 2
    crystal = cell.repeat((2 * reps, 2 * reps, 2 * reps))
    crystal.translate(-reps * a * np.ones(3))
    symbols = np.array(crystal.get_chemical_symbols())
    pos = crystal.positions
    if center in ('anion', 'cation'):
        element = anion if center == 'anion' else cation
        candidates = np.where(symbols == element)[0]
        origin = pos[candidates[np.argmin(np.linalg.norm(pos[candidates], axis=1))]]
    elif center == 'interstitial':
        origin = np.array([0.5, 0.5, 0.5]) * a if kind == 'zincblende' else np.array([0.25, 0.25, 0.25]) * a
    else:
        raise ValueError(f"center must be 'anion', 'cation' or 'interstitial', got {center!r}")
    inside = np.linalg.norm(pos - origin, axis=1) <= diameter / 2 + 1e-6
    core = crystal[inside]
    core.translate(-origin)
    core.pbc = False
    core.set_cell(np.zeros((3, 3)))
    bond = nearest_neighbour_distance(material, lattice_constant)
    while len(core):
        n_bonds = _bond_counts(core.positions, 1.1 * bond)
        keep = n_bonds >= min_core_bonds
        if keep.all():
            break
        core = core[keep]
    if len(core) == 0:
        raise ValueError(f'no atoms left after pruning a {diameter} Å {material} sphere; increase the diameter')
    return core


def _bond_counts(positions: np.ndarray, cutoff: float) -> np.ndarray:
    tree = cKDTree(positions)
    pairs = tree.query_pairs(cutoff, output_type='ndarray')
    return np.bincount(pairs.ravel(), minlength=len(positions))


def missing_bond_sites(core: Atoms, material: str, lattice_constant: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Directions of the bulk bonds each core cation has lost.

    :returns: ``(atom_indices, unit_vectors)``, one row per missing cation bond.
    """
    kind, cation, _, _ = MATERIALS[material]
    bond = nearest_neighbour_distance(material, lattice_constant)
    if kind == 'zincblende':
        tet = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) / np.sqrt(3)
    else:
        tet = np.vstack([np.eye(3), -np.eye(3)])
    tree = cKDTree(core.positions)
    owners, vectors = [], []
    for i, atom in enumerate(core):
        if atom.symbol != cation:
            continue
        neighbours = [j for j in tree.query_ball_point(atom.position, 1.1 * bond) if j != i]
        bonds = core.positions[neighbours] - atom.position
        # The cation's bond set is one of ±tet; pick the sign matching its existing bonds.
        directions = tet
        if kind == 'zincblende' and len(bonds):
            directions = tet if np.sum(bonds @ tet.T > 0.9 * bond) >= np.sum(bonds @ (-tet).T > 0.9 * bond) else -tet
        for d in directions:
            if not any(np.dot(b, d) > 0.9 * bond for b in bonds):
                owners.append(i)
                vectors.append(d)
    return np.array(owners, dtype=int), np.array(vectors).reshape(-1, 3)


def farthest_point_order(points: np.ndarray, n: int, groups: np.ndarray | None = None) -> list[int]:
    """Pick ``n`` of ``points`` greedily, each as far as possible from those already picked.

    With ``groups`` (e.g. the atom owning each site) a point is only eligible while its group holds the
    fewest picks, so picks spread evenly over groups first and over space second. Deterministic: starts
    from the point farthest from the centroid, ties broken by index.
    """
    if n > len(points) or n < 0:
        raise ValueError(f'cannot pick {n} of {len(points)} sites')
    groups = np.zeros(len(points), dtype=int) if groups is None else np.asarray(groups)
    chosen: list[int] = []
    dist = np.round(np.linalg.norm(points - points.mean(0), axis=1), 6) if len(points) else np.zeros(0)
    counts = {g: 0 for g in np.unique(groups)}
    while len(chosen) < n:
        free = np.ones(len(points), dtype=bool)
        free[chosen] = False
        least = min(counts[g] for g in np.unique(groups[free]))
        eligible = free & np.array([counts[g] == least for g in groups])
        score = np.where(eligible, np.round(dist, 6), -1.0)
        nxt = int(np.argmax(score))
        chosen.append(nxt)
        counts[groups[nxt]] += 1
        new_dist = np.linalg.norm(points - points[nxt], axis=1)
        dist = new_dist if len(chosen) == 1 else np.minimum(dist, new_dist)
    return chosen


def net_charge(atoms: Atoms) -> int:
    """Net charge from formal oxidation states (:data:`FORMAL_CHARGES`)."""
    unknown = sorted({s for s in atoms.get_chemical_symbols() if s not in FORMAL_CHARGES})
    if unknown:
        raise ValueError(f'no formal oxidation state for element(s) {unknown}')
    return int(sum(FORMAL_CHARGES[s] for s in atoms.get_chemical_symbols()))


def passivate(core: Atoms, material: str, ligand: str = 'F', charge: int = 0,
              lattice_constant: float | None = None) -> Atoms:
    """Add X-type ``ligand`` atoms on missing cation bonds until the QD has net ``charge``.

    Ligands are spread evenly over the candidate sites by farthest-point selection (deterministic).
    """
    if ligand not in ('F', 'Cl', 'Br', 'I'):
        raise ValueError(f'unsupported X-type ligand {ligand!r}; choose F, Cl, Br or I')
    owners, directions = missing_bond_sites(core, material, lattice_constant)
    cation = MATERIALS[material][1]
    length = LIGAND_BOND_LENGTHS.get((cation, ligand),
                                     covalent_radii[atomic_numbers[cation]] + covalent_radii[atomic_numbers[ligand]])
    sites = core.positions[owners] + length * directions
    n_ligands = net_charge(core) - charge
    if n_ligands < 0 or n_ligands > len(sites):
        raise ValueError(f'cannot reach charge {charge} on {core.get_chemical_formula()}: needs {n_ligands} '
                         f'{ligand} ligands but {len(sites)} cation sites are free')
    chosen = sorted(farthest_point_order(sites, n_ligands, groups=owners))
    qd = core.copy()
    qd += Atoms([ligand] * n_ligands, positions=sites[chosen])
    return qd


def put_in_box(atoms: Atoms, vacuum: float) -> Atoms:
    """Centre a cluster in a cubic, non-periodic box with at least ``vacuum`` Å on every side."""
    if vacuum <= 0:
        raise ValueError(f'vacuum must be positive, got {vacuum!r}')
    boxed = atoms.copy()
    extent = boxed.positions.max(0) - boxed.positions.min(0)
    length = float(np.ceil(extent.max() + 2 * vacuum))
    boxed.set_cell([length] * 3)
    boxed.pbc = False
    boxed.translate(0.5 * length - 0.5 * (boxed.positions.max(0) + boxed.positions.min(0)))
    return boxed


def build_qd(material: str, diameter: float, ligand: str = 'F', charge: int = 0, center: str = 'anion',
             vacuum: float = 5.0, lattice_constant: float | None = None, min_core_bonds: int = 2) -> Atoms:
    """Carve, passivate and box a QD; the one-call recipe used by the pipeline and the demo."""
    core = carve_sphere(material, diameter, center=center, lattice_constant=lattice_constant,
                        min_core_bonds=min_core_bonds)
    qd = passivate(core, material, ligand=ligand, charge=charge, lattice_constant=lattice_constant)
    return put_in_box(qd, vacuum)


def describe(atoms: Atoms, bond_scale: float = 1.25) -> QdReport:
    """Composition, net charge, coordination histogram per element and diameter of a QD."""
    radii = covalent_radii[atoms.numbers]
    tree = cKDTree(atoms.positions)
    pairs = tree.query_pairs(2 * radii.max() * bond_scale, output_type='ndarray')
    d = np.linalg.norm(atoms.positions[pairs[:, 0]] - atoms.positions[pairs[:, 1]], axis=1)
    bonded = pairs[d < bond_scale * (radii[pairs[:, 0]] + radii[pairs[:, 1]])]
    cn = np.bincount(bonded.ravel(), minlength=len(atoms))
    hist: dict[str, dict[int, int]] = {}
    for sym, c in zip(atoms.get_chemical_symbols(), cn):
        hist.setdefault(sym, {}).setdefault(int(c), 0)
        hist[sym][int(c)] += 1
    centred = atoms.positions - atoms.positions.mean(0)
    diameter = 2 * float(np.linalg.norm(centred, axis=1).max()) if len(atoms) > 1 else 0.0
    return QdReport(atoms.get_chemical_formula(), len(atoms), net_charge(atoms), diameter, hist)
