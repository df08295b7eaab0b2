"""Per-atom features of candidate trap centres: Alexander et al.'s 42 features in 8 categories (pure; no AiiDA).

Every sample is one atom of a chosen class (default: 4-coordinate P, the paper's "P-4c"; any element and
coordination work). Its target is *trapping* (the atom's per-atom trap label is not ``bulk``, see
:mod:`.traps`). The features, with units (``state`` is the atom's **assigned state**: the state of the labelling
in which its share is ≥ 0.9 × the largest share, nearest the gap — see :func:`.traps.label_traps`; when no
window state qualifies, the frontier MO on its side, HOMO for anions and LUMO for cations, stands in):

**participation ratio (2)** — dimensionless, in (0, 1]

* ``pr_state``: the authors' PR ``1 / (M Σ_A p̃_A²)`` (over the M non-ligand atoms) of the assigned state;
* ``pr_gating``: *our definition* of the paper's undefined "gating" PR: the PR of the frontier MO on the atom's side
  of the gap (HOMO for anions, LUMO for cations) — the state that gates the gap on that side.

**MO energies (4)** — eV

* ``state_energy_ev``, ``state_energy_rel_homo_ev`` (state − HOMO), ``homo_ev``, ``homo_lumo_gap_ev``.

**pDOS (6)** — Löwdin populations of the assigned state (fraction of one electron, summed over the class)

* ``pdos_cation_uc``, ``pdos_cation_fc``, ``pdos_anion_uc``, ``pdos_anion_fc``, ``pdos_ligand`` (UC: fewer bonds than
  full coordination, FC: otherwise), ``pdos_centre`` (on the atom itself).

**QD composition (9)**

* ``shape_class`` (index into :data:`aiida_qdtraps.builder.shapes.SHAPES`, −1 unknown), ``n_cations``, ``n_anions``,
  ``n_ligands``, ``n_atoms`` (counts), ``in_fraction`` (In atoms / cations), ``total_charge`` (e),
  ``quantum_confined`` (1 if the labelling found a quantum-confined state, else 0),
  ``n_uc_trap_states`` (number of under-coordinated trap states of the QD).

**electric field (2)** — Debye

* ``dipole_norm_debye``: |μ| of the QD (CP2K ``&MOMENTS``);
* ``dipole_overlap_debye``: μ · r̂, the dipole projected on the unit vector from the QD's centroid to the atom.

**partial charges (5)** — e (net charge, positive = electron loss)

* ``mulliken_charge``, ``mulliken_charge_rel`` (minus the mean Mulliken charge of the element in the QD);
* ``lowdin_in_state``: ``M · p̃_A`` of the assigned state (the atom's share over the M non-ligand atoms relative to
  a uniform share; 1 = uniform, M = all on this atom) — dimensionless;
* ``lowdin_charge``, ``lowdin_charge_rel`` (minus the element mean).

**bond angles (10)** — degrees (deg² for the squared errors) over the 6 angles of the 4 nearest atoms

* ``tet_abs_error`` Σ|θ − 109.47°|, ``tet_sq_error`` Σ(θ − 109.47°)²;
* ``seesaw_abs_error``, ``seesaw_sq_error``: errors from the see-saw geometry — the largest angle vs 180°, the angle
  between the two other neighbours vs 120°, the remaining four vs 90°;
* ``angle_1`` … ``angle_6``: the six angles sorted descending.

**bond lengths (4)** — dimensionless

* ``bond_length_1`` … ``bond_length_4``: the distances to the 4 nearest atoms (ascending), each divided by the QD's
  mean bond length of that element pair (bonds of the labelling's bond graph; Cordero radii sum when the QD has no
  such bond).

The **geometry-only** subset (:data:`GEOMETRY_FEATURES`, 21 features) is what a coordinate file gives: bond
lengths, bond angles and the QD composition without the two DFT-derived counts (``quantum_confined``,
``n_uc_trap_states``). Unlike the paper's 31-feature geometry model it leaves the DFT dipole out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase.data import atomic_numbers, covalent_radii
from scipy.spatial import cKDTree

from ..builder.shapes import SHAPES

TETRAHEDRAL_ANGLE = float(np.degrees(np.arccos(-1.0 / 3.0)))  # 109.47°

#: Feature names by category, in the order of the feature matrix.
CATEGORIES: dict[str, tuple[str, ...]] = {
    'participation ratio': ('pr_state', 'pr_gating'),
    'MO energies': ('state_energy_ev', 'state_energy_rel_homo_ev', 'homo_ev', 'homo_lumo_gap_ev'),
    'pDOS': ('pdos_cation_uc', 'pdos_cation_fc', 'pdos_anion_uc', 'pdos_anion_fc', 'pdos_ligand', 'pdos_centre'),
    'QD composition': ('shape_class', 'n_cations', 'n_anions', 'n_ligands', 'n_atoms', 'in_fraction', 'total_charge',
                       'quantum_confined', 'n_uc_trap_states'),
    'electric field': ('dipole_norm_debye', 'dipole_overlap_debye'),
    'partial charges': ('mulliken_charge', 'mulliken_charge_rel', 'lowdin_in_state', 'lowdin_charge',
                        'lowdin_charge_rel'),
    'bond angles': ('tet_abs_error', 'tet_sq_error', 'seesaw_abs_error', 'seesaw_sq_error',
                    *(f'angle_{k}' for k in range(1, 7))),
    'bond lengths': tuple(f'bond_length_{k}' for k in range(1, 5)),
}
FEATURES: tuple[str, ...] = tuple(name for names in CATEGORIES.values() for name in names)
#: Features obtainable from the coordinates alone (and the build recipe's shape and charge).
GEOMETRY_FEATURES: tuple[str, ...] = (
    *CATEGORIES['bond lengths'], *CATEGORIES['bond angles'],
    *(n for n in CATEGORIES['QD composition'] if n not in ('quantum_confined', 'n_uc_trap_states')))
#: Features equal for every atom of one QD (left out of the clustering, as in the paper).
QD_LEVEL_FEATURES: tuple[str, ...] = ('homo_ev', 'homo_lumo_gap_ev', *CATEGORIES['QD composition'],
                                      'dipole_norm_debye')
#: Units of every feature (for tables and docs).
UNITS: dict[str, str] = {
    **dict.fromkeys(CATEGORIES['participation ratio'], ''), **dict.fromkeys(CATEGORIES['MO energies'], 'eV'),
    **dict.fromkeys(CATEGORIES['pDOS'], 'e'), **dict.fromkeys(CATEGORIES['QD composition'], ''),
    'total_charge': 'e', **dict.fromkeys(CATEGORIES['electric field'], 'D'),
    **dict.fromkeys(CATEGORIES['partial charges'], 'e'), 'lowdin_in_state': '',
    **dict.fromkeys(CATEGORIES['bond angles'], 'deg'), 'tet_sq_error': 'deg²', 'seesaw_sq_error': 'deg²',
    **dict.fromkeys(CATEGORIES['bond lengths'], ''),
}
#: Columns of ``class_populations`` (same order as the labelling's ``POPULATION_CLASSES``).
POPULATION_CLASSES = ('cation-uc', 'cation-fc', 'anion-uc', 'anion-fc', 'ligand')

assert len(FEATURES) == 42 and len(GEOMETRY_FEATURES) == 21


@dataclass
class LabelledQd:
    """Everything the features of one labelled QD are computed from (arrays as the pipeline stores them).

    :param symbols: (N,) element symbols.
    :param positions: (N, 3) Cartesian coordinates, Å.
    :param coordination: (N,) bond counts of the labelling's bond graph.
    :param roles: (N,) 'cation' / 'anion' / 'ligand'.
    :param bonds: (n_bonds, 2) bonded atom pairs.
    :param labels: (N,) per-atom labels (ligand / bulk / structural / under-coordinated).
    :param state: (N,) index of the assigned state, −1 when none; ``spin``: (N,) its spin channel.
    :param energies: (nspin, ns) state energies, eV; ``participation`` (nspin, ns) PR of every state.
    :param populations: (nspin, ns, N) Löwdin populations of every state on every atom.
    :param class_populations: (nspin, ns, 5) the populations summed over :data:`POPULATION_CLASSES`.
    :param occupied: (nspin, ns) bool.
    :param homo, lumo: (nspin,) eV.
    :param mulliken, lowdin: (N,) net atomic charges, e (``None`` if the SCF did not print them).
    :param dipole: (3,) total dipole moment, Debye (``None`` if not printed).
    :param total_charge: net charge of the QD, e. ``shape``: build shape name (or ``None``).
    :param n_quantum_confined: quantum-confined states found; ``n_uc_trap_states``: under-coordinated traps.
    """

    symbols: np.ndarray
    positions: np.ndarray
    coordination: np.ndarray
    roles: np.ndarray
    bonds: np.ndarray
    labels: np.ndarray
    state: np.ndarray
    spin: np.ndarray
    energies: np.ndarray
    participation: np.ndarray
    populations: np.ndarray
    class_populations: np.ndarray
    occupied: np.ndarray
    homo: np.ndarray
    lumo: np.ndarray
    mulliken: np.ndarray | None = None
    lowdin: np.ndarray | None = None
    dipole: np.ndarray | None = None
    total_charge: float = 0.0
    shape: str | None = None
    n_quantum_confined: int = 0
    n_uc_trap_states: int = 0

    def __post_init__(self):
        self.symbols = np.asarray(self.symbols)
        self.positions = np.asarray(self.positions, dtype=float)
        n = len(self.symbols)
        for name in ('positions', 'coordination', 'roles', 'labels', 'state', 'spin'):
            if len(getattr(self, name)) != n:
                raise ValueError(f'{name} has {len(getattr(self, name))} rows but the QD has {n} atoms')
        if self.populations.shape[-1] != n:
            raise ValueError(f'populations cover {self.populations.shape[-1]} atoms but the QD has {n}')
        for name in ('mulliken', 'lowdin'):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f'{name} charges have {len(value)} entries but the QD has {n} atoms')


def select_atoms(qd: LabelledQd, elements=('P',), coordinations=(4,)) -> np.ndarray:
    """Indices of the sample atoms: element in ``elements`` and coordination in ``coordinations`` (None: any)."""
    mask = np.isin(qd.symbols, list(elements))
    if coordinations is not None:
        mask &= np.isin(qd.coordination, list(coordinations))
    if np.any(qd.roles[mask] == 'ligand'):
        raise ValueError(f'the selection {list(elements)} includes ligand atoms; trap labels exist only for core '
                         'atoms (cations and anions)')
    return np.flatnonzero(mask)


def _nearest(positions: np.ndarray, atoms: np.ndarray, k: int = 4):
    """Distances (n, k) and indices (n, k) of the k nearest other atoms of each atom in ``atoms``."""
    if len(positions) < k + 1:
        raise ValueError(f'bond-angle and bond-length features need at least {k + 1} atoms, the QD has '
                         f'{len(positions)}')
    dist, idx = cKDTree(positions).query(positions[atoms], k=k + 1)
    return dist[:, 1:], idx[:, 1:]


def angle_features(positions: np.ndarray, atoms: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """The 10 bond-angle features (deg, deg²) of each atom from its 4 nearest neighbours, shape (n, 10)."""
    vectors = positions[neighbours] - positions[atoms][:, None, :]
    vectors /= np.linalg.norm(vectors, axis=2, keepdims=True)
    pairs = [(a, b) for a in range(4) for b in range(a + 1, 4)]
    cosines = np.stack([np.einsum('ij,ij->i', vectors[:, a], vectors[:, b]) for a, b in pairs], axis=1)
    angles = np.degrees(np.arccos(np.clip(cosines, -1.0, 1.0)))                      # (n, 6)
    tet = angles - TETRAHEDRAL_ANGLE
    # see-saw: largest angle (pair a, b) → 180°, the pair of the two other neighbours → 120°, the other four → 90°.
    largest = np.argmax(angles, axis=1)
    opposite = np.array([pairs.index(tuple(sorted(set(range(4)) - set(pairs[p])))) for p in range(6)])
    reference = np.full(angles.shape, 90.0)
    rows = np.arange(len(angles))
    reference[rows, largest] = 180.0
    reference[rows, opposite[largest]] = 120.0
    seesaw = angles - reference
    return np.column_stack([np.abs(tet).sum(1), (tet ** 2).sum(1), np.abs(seesaw).sum(1), (seesaw ** 2).sum(1),
                            -np.sort(-angles, axis=1)])


def mean_bond_lengths(symbols: np.ndarray, positions: np.ndarray, bonds: np.ndarray) -> dict[tuple[str, str], float]:
    """Mean bond length (Å) of every element pair (sorted symbols) among the bonds."""
    bonds = np.asarray(bonds, dtype=int).reshape(-1, 2)
    if not len(bonds):
        return {}
    lengths = np.linalg.norm(positions[bonds[:, 0]] - positions[bonds[:, 1]], axis=1)
    keys = np.array(['-'.join(sorted(p)) for p in zip(symbols[bonds[:, 0]], symbols[bonds[:, 1]])])
    return {tuple(key.split('-')): float(lengths[keys == key].mean()) for key in np.unique(keys)}


def _relative_lengths(symbols, atoms, distances, neighbours, means) -> np.ndarray:
    out = np.empty(distances.shape)
    for row, atom in enumerate(atoms):
        for col, other in enumerate(neighbours[row]):
            pair = tuple(sorted((symbols[atom], symbols[other])))
            reference = means.get(pair)
            if reference is None:
                reference = sum(covalent_radii[atomic_numbers[s]] for s in pair)
            out[row, col] = distances[row, col] / reference
    return out


def _element_relative(charges: np.ndarray, symbols: np.ndarray, atoms: np.ndarray) -> np.ndarray:
    means = {s: charges[symbols == s].mean() for s in np.unique(symbols[atoms])}
    return charges[atoms] - np.array([means[s] for s in symbols[atoms]])


def _frontier_states(qd: LabelledQd, spin: int) -> tuple[int, int]:
    """(HOMO, LUMO) state indices of a spin channel: the highest occupied and lowest virtual state."""
    occupied = np.asarray(qd.occupied[spin], bool)
    energies = qd.energies[spin]
    if not occupied.any() or occupied.all():
        raise ValueError(f'spin channel {spin} needs both occupied and virtual states to define HOMO and LUMO')
    occ, vir = np.flatnonzero(occupied), np.flatnonzero(~occupied)
    return int(occ[np.argmax(energies[occ])]), int(vir[np.argmin(energies[vir])])


def featurize(qd: LabelledQd, atoms: np.ndarray | None = None, geometry_only: bool = False,
              elements=('P',), coordinations=(4,)) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    """Feature matrix of the sample atoms of one QD.

    :param atoms: atom indices (default: :func:`select_atoms` with ``elements`` / ``coordinations``).
    :param geometry_only: compute only :data:`GEOMETRY_FEATURES` (no electronic structure needed).
    :returns: ``(atoms, X, y, names)``: atom indices (n,), features (n, 42 or 21), target (n,) int (1 = trapping,
        i.e. label not ``bulk``) and the feature names.
    :raises ValueError: electronic inputs missing for the full feature set (naming which), ligand atoms selected.
    """
    atoms = select_atoms(qd, elements, coordinations) if atoms is None else np.asarray(atoms, dtype=int)
    names = GEOMETRY_FEATURES if geometry_only else FEATURES
    if not geometry_only:
        missing = [name for name in ('mulliken', 'lowdin', 'dipole') if getattr(qd, name) is None]
        if missing:
            raise ValueError(f'the full feature set needs {missing} from the hybrid SCF (atomic_charges, '
                             "output_parameters['dipole_debye']); use geometry_only=True without them")
    symbols, positions = qd.symbols, qd.positions
    roles = np.asarray(qd.roles)
    values: dict[str, np.ndarray] = {}
    n = len(atoms)

    distances, neighbours = _nearest(positions, atoms) if n else (np.zeros((0, 4)), np.zeros((0, 4), int))
    lengths = _relative_lengths(symbols, atoms, distances, neighbours, mean_bond_lengths(symbols, positions, qd.bonds))
    for k in range(4):
        values[f'bond_length_{k + 1}'] = lengths[:, k]
    angles = angle_features(positions, atoms, neighbours) if n else np.zeros((0, 10))
    for k, name in enumerate(CATEGORIES['bond angles']):
        values[name] = angles[:, k]

    n_cations, n_anions = int(np.sum(roles == 'cation')), int(np.sum(roles == 'anion'))
    composition = {
        'shape_class': SHAPES.index(qd.shape) if qd.shape in SHAPES else -1,
        'n_cations': n_cations, 'n_anions': n_anions, 'n_ligands': int(np.sum(roles == 'ligand')),
        'n_atoms': len(symbols), 'in_fraction': float(np.sum(symbols == 'In')) / n_cations if n_cations else 0.0,
        'total_charge': float(qd.total_charge), 'quantum_confined': float(qd.n_quantum_confined > 0),
        'n_uc_trap_states': float(qd.n_uc_trap_states)}
    for name, value in composition.items():
        values[name] = np.full(n, float(value))

    if not geometry_only:
        spin = np.asarray(qd.spin, int)[atoms]
        state = np.asarray(qd.state, int)[atoms].copy()
        frontier = [_frontier_states(qd, s) for s in range(qd.energies.shape[0])]
        gating = np.array([frontier[s][0] if roles[a] == 'anion' else frontier[s][1] for s, a in zip(spin, atoms)],
                          dtype=int)
        state[state < 0] = gating[state < 0]
        homo, lumo = np.asarray(qd.homo, float)[spin], np.asarray(qd.lumo, float)[spin]
        energy = qd.energies[spin, state]
        values.update(pr_state=qd.participation[spin, state], pr_gating=qd.participation[spin, gating],
                      state_energy_ev=energy, state_energy_rel_homo_ev=energy - homo, homo_ev=homo,
                      homo_lumo_gap_ev=lumo - homo)
        for k, name in enumerate(CATEGORIES['pDOS'][:5]):
            values[name] = qd.class_populations[spin, state, k]
        values['pdos_centre'] = qd.populations[spin, state, atoms]
        core = roles != 'ligand'
        core_total = qd.populations[spin, state][:, core].sum(axis=1)
        with np.errstate(divide='ignore', invalid='ignore'):
            values['lowdin_in_state'] = np.where(core_total > 0, core.sum() * values['pdos_centre'] / core_total, 0.0)
        dipole = np.asarray(qd.dipole, float)
        centre = positions.mean(axis=0)
        radial = positions[atoms] - centre
        norm = np.linalg.norm(radial, axis=1, keepdims=True)
        unit = np.divide(radial, norm, out=np.zeros_like(radial), where=norm > 1e-8)
        values.update(dipole_norm_debye=np.full(n, float(np.linalg.norm(dipole))), dipole_overlap_debye=unit @ dipole)
        mulliken, lowdin = np.asarray(qd.mulliken, float), np.asarray(qd.lowdin, float)
        values.update(mulliken_charge=mulliken[atoms], mulliken_charge_rel=_element_relative(mulliken, symbols, atoms),
                      lowdin_charge=lowdin[atoms], lowdin_charge_rel=_element_relative(lowdin, symbols, atoms))

    X = np.column_stack([np.asarray(values[name], dtype=float) for name in names]) if n else np.zeros((0, len(names)))
    y = (np.asarray(qd.labels)[atoms] != 'bulk').astype(int)
    return atoms, X, y, names
