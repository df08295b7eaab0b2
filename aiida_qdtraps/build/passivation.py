"""Missing bonds, ligand placement and passivation of a QD to an exact net charge.

Pure functions on :class:`ase.Atoms`; no AiiDA import. Lengths in Å, charges in e (formal oxidation states).

Ligands:

* X-type ions ``F``, ``Cl``, ``Br``, ``I`` (charge −1) on cation dangling bonds;
* ``H`` (a proton, +1) on anion dangling bonds, for anion-rich clusters such as Cd17Se28H22 (seed 003);
* ``OAc`` (acetate CH3COO⁻, −1) bound monodentate through one O on a cation dangling bond, turned about the
  bond axis to stay clear of the atoms already placed (seed 001 uses carboxylates).
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from scipy.spatial import cKDTree

from .crystal import FORMAL_CHARGES, OCTAHEDRAL, TETRAHEDRAL, bond_length
from .roles import DOMAIN_DTYPE, ROLE_DTYPE, ligand_units, roles_of

#: Supported ligands → (charge, binding element, which dangling bonds they take).
LIGANDS: dict[str, tuple[int, str, str]] = {
    'F': (-1, 'F', 'cation'), 'Cl': (-1, 'Cl', 'cation'), 'Br': (-1, 'Br', 'cation'), 'I': (-1, 'I', 'cation'),
    'H': (1, 'H', 'anion'), 'OAc': (-1, 'O', 'cation'),
}
#: Charge of a ligand unit by its (ase) chemical formula.
LIGAND_UNIT_CHARGES: dict[str, int] = {'F': -1, 'Cl': -1, 'Br': -1, 'I': -1, 'H': 1, 'C2H3O2': -1}

#: Acetate in its local frame (x: along the dangling bond, outward; y: in the carboxylate plane), relative to the
#: binding O. Bond lengths C–O 1.27/1.25 Å, C–C 1.50 Å, C–H 1.09 Å; M–O–C 125°, O–C–O 125°.
_ACETATE_SYMBOLS = ['O', 'C', 'O', 'C', 'H', 'H', 'H']
_ACETATE_FRAME = np.array([
    [0.0, 0.0, 0.0], [0.728, 1.040, 0.0], [0.300, 2.215, 0.0], [2.228, 1.040, 0.0],
    [2.592, 2.068, 0.0], [2.592, 0.526, 0.890], [2.592, 0.526, -0.890],
])


def check_ligand(ligand: str) -> tuple[int, str, str]:
    if ligand not in LIGANDS:
        raise ValueError(f'unsupported ligand {ligand!r}; choose one of {list(LIGANDS)} '
                         f'(X-type F, Cl, Br, I on cations; H on anions; OAc = acetate on cations)')
    return LIGANDS[ligand]


def net_charge(atoms: Atoms) -> int:
    """Net charge from formal oxidation states of the inorganic atoms plus the charge of each ligand unit."""
    roles = roles_of(atoms)
    symbols = np.array(atoms.get_chemical_symbols())
    inorganic = symbols[roles != 'ligand']
    unknown = sorted(set(inorganic) - set(FORMAL_CHARGES))
    if unknown:
        raise ValueError(f'no formal oxidation state for element(s) {unknown}; known: {sorted(FORMAL_CHARGES)}')
    charge = sum(FORMAL_CHARGES[s] for s in inorganic)
    for unit in ligand_units(atoms, roles):
        formula = atoms[unit].get_chemical_formula()
        if formula not in LIGAND_UNIT_CHARGES:
            raise ValueError(f'no charge known for ligand {formula!r}; known: {sorted(LIGAND_UNIT_CHARGES)}')
        charge += LIGAND_UNIT_CHARGES[formula]
    return int(charge)


def core_bond_length(atoms: Atoms, roles: np.ndarray | None = None) -> float:
    """Median nearest cation–anion distance (Å): the lattice bond length of a builder-made QD."""
    roles = roles_of(atoms) if roles is None else roles
    cations, anions = atoms.positions[roles == 'cation'], atoms.positions[roles == 'anion']
    if not len(cations) or not len(anions):
        raise ValueError('a QD needs both cations and anions to define its lattice bond length')
    d, _ = cKDTree(anions).query(cations)
    return float(np.median(d))


def missing_bonds(atoms: Atoms, species: str = 'cation', roles: np.ndarray | None = None,
                  bond: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Lattice bond directions of the ``species`` atoms (``'cation'``, ``'anion'`` or ``'all'``) with no neighbour.

    A direction is taken when any atom (core or ligand) lies within 1.15 ``bond`` of the atom at < 26° from it.
    Works on builder-made QDs (cubic axes, ideal lattice). The lattice is rock salt when some bond lies along a
    cube axis, otherwise zincblende, where each atom's bond set (±:data:`TETRAHEDRAL`) is the one its bonds match.

    :returns: ``(atom_indices, unit_vectors)``, one row per missing bond, by atom index then direction order.
    """
    roles = roles_of(atoms) if roles is None else roles
    bond = core_bond_length(atoms, roles) if bond is None else bond
    pairs = cKDTree(atoms.positions).query_pairs(1.15 * bond, output_type='ndarray')
    both = np.vstack([pairs, pairs[:, ::-1]])
    vectors = atoms.positions[both[:, 1]] - atoms.positions[both[:, 0]]
    units = vectors / np.linalg.norm(vectors, axis=1)[:, None]
    inorganic = (roles[both[:, 0]] != 'ligand') & (roles[both[:, 1]] != 'ligand')
    rocksalt = bool(np.any(np.abs(units[inorganic]) > 0.95))
    n = len(atoms)
    if rocksalt:
        directions = np.broadcast_to(OCTAHEDRAL, (n, 6, 3))
    else:
        plus = np.bincount(both[:, 0], weights=(units @ TETRAHEDRAL.T > 0.9).sum(1), minlength=n)
        minus = np.bincount(both[:, 0], weights=(units @ -TETRAHEDRAL.T > 0.9).sum(1), minlength=n)
        sign = np.where(plus > minus, 1.0, np.where(minus > plus, -1.0, np.where(roles == 'anion', -1.0, 1.0)))
        directions = sign[:, None, None] * TETRAHEDRAL[None]
    k = directions.shape[1]
    taken = np.zeros((n, k), bool)
    hit = np.einsum('pc,pkc->pk', units, directions[both[:, 0]]) > 0.9
    np.logical_or.at(taken, both[:, 0], hit)
    wanted = (roles != 'ligand') if species == 'all' else (roles == species)
    owners, slots = np.nonzero(~taken & wanted[:, None])
    return owners, directions[owners, slots].reshape(-1, 3)


def farthest_point_order(points: np.ndarray, n: int, groups: np.ndarray | None = None, start: int = 0,
                         exclusive: np.ndarray | None = None) -> list[int]:
    """Pick ``n`` of ``points`` greedily, each as far as possible from those already picked.

    With ``groups`` (e.g. the atom owning each site) a point is only eligible while its group holds the fewest
    picks, so picks spread evenly over groups first and over space second. Deterministic: with ``start`` = 0 the
    first pick is the point farthest from the centroid, ties broken by index, and later picks maximise the distance
    (rounded to 1e-6 Å) to those already picked; ``start`` > 0 seeds a random first pick and a random tie-breaking
    (< 1e-4 Å), giving another even spread.

    :param exclusive: optional labels; once a point is picked, the other points with its label are not eligible
        (e.g. two dangling bonds pointing at the same empty lattice site take one ligand between them).
    """
    exclusive = np.arange(len(points)) if exclusive is None else np.asarray(exclusive)
    if n > len(np.unique(exclusive)) or n < 0:
        raise ValueError(f'cannot pick {n} of {len(np.unique(exclusive))} sites')
    if n == 0:
        return []
    groups = np.zeros(len(points), dtype=int) if groups is None else np.asarray(groups)
    _, group_index = np.unique(groups, return_inverse=True)
    counts = np.zeros(group_index.max() + 1, dtype=int)
    free = np.ones(len(points), dtype=bool)
    dist = np.round(np.linalg.norm(points - points.mean(0), axis=1), 6)
    jitter = np.zeros(len(points))
    if start:
        rng = np.random.default_rng(start)
        dist = np.where(np.arange(len(points)) == rng.integers(len(points)), 1.0, 0.0)
        jitter = 1e-4 * rng.random(len(points))  # breaks the exact ties of symmetric clusters differently
    chosen: list[int] = []
    while len(chosen) < n:
        least = counts[group_index[free]].min()
        eligible = free & (counts[group_index] == least)
        nxt = int(np.argmax(np.where(eligible, np.round(dist, 6) + jitter, -1.0)))
        chosen.append(nxt)
        free[exclusive == exclusive[nxt]] = False
        counts[group_index[nxt]] += 1
        new_dist = np.linalg.norm(points - points[nxt], axis=1)
        dist = new_dist if len(chosen) == 1 else np.minimum(dist, new_dist)
    return chosen


def ligand_atoms(atoms: Atoms, owners: np.ndarray, directions: np.ndarray, ligand: str) -> Atoms:
    """The ligand atoms bound to ``atoms[owners]`` along ``directions``, with ``qd_role``/``qd_domain`` arrays."""
    _, binder, _ = check_ligand(ligand)
    symbols = np.array(atoms.get_chemical_symbols())
    lengths = np.array([bond_length(s, binder) for s in symbols[owners]])
    sites = atoms.positions[owners] + lengths[:, None] * directions
    if ligand != 'OAc':
        placed = Atoms([ligand] * len(owners), positions=sites.reshape(-1, 3))
    else:
        placed = _acetates(atoms, sites, directions)
    placed.arrays['qd_role'] = np.full(len(placed), 'ligand', dtype=ROLE_DTYPE)
    placed.arrays['qd_domain'] = np.full(len(placed), 'ligand', dtype=DOMAIN_DTYPE)
    return placed


def _acetates(atoms: Atoms, sites: np.ndarray, directions: np.ndarray, n_angles: int = 12) -> Atoms:
    """Acetates bound through O at ``sites``; each turned about its bond to maximise the distance to placed atoms."""
    placed = np.zeros((0, 3))
    tree_core = cKDTree(atoms.positions)
    angles = 2 * np.pi * np.arange(n_angles) / n_angles
    for site, d in zip(sites, directions):
        helper = np.eye(3)[np.argmin(np.abs(d))]
        p0 = np.cross(d, helper)
        p0 /= np.linalg.norm(p0)
        q0 = np.cross(d, p0)
        best, best_score = None, -1.0
        tree_placed = cKDTree(placed) if len(placed) else None
        for angle in angles:
            p = np.cos(angle) * p0 + np.sin(angle) * q0
            q = np.cross(d, p)
            xyz = site + _ACETATE_FRAME @ np.vstack([d, p, q])
            score = tree_core.query(xyz[1:])[0].min()
            if tree_placed is not None:
                score = min(score, tree_placed.query(xyz)[0].min())
            if score > best_score + 1e-9:
                best, best_score = xyz, score
        placed = np.vstack([placed, best])
    return Atoms(_ACETATE_SYMBOLS * len(sites), positions=placed)


def append_atoms(atoms: Atoms, extra: Atoms) -> Atoms:
    """``atoms`` followed by ``extra``, keeping the ``qd_role``/``qd_domain`` arrays of both."""
    result = atoms.copy()
    roles = np.concatenate([roles_of(atoms), extra.arrays['qd_role']]).astype(ROLE_DTYPE)
    domains = np.concatenate([atoms.arrays.get('qd_domain', np.where(roles_of(atoms) == 'ligand', 'ligand', 'core')),
                              extra.arrays['qd_domain']]).astype(DOMAIN_DTYPE)
    for name in ('qd_role', 'qd_domain'):
        result.arrays.pop(name, None)
    result += Atoms(extra.get_chemical_symbols(), positions=extra.positions)
    result.arrays['qd_role'], result.arrays['qd_domain'] = roles, domains
    return result


def passivate(qd: Atoms, ligand: str = 'F', charge: int = 0, arrangement: int = 0,
              exclude: np.ndarray | None = None) -> Atoms:
    """Add ``ligand`` on free dangling bonds until the QD has net ``charge`` (e).

    The ligands go to sites spread evenly by :func:`farthest_point_order` (over owner atoms first, then space);
    ``arrangement`` > 0 starts the spread from another site, giving a different, still even, ligand arrangement
    from the same core (seed 003's several ligand configurations).

    :param exclude: optional positions (Å) of sites that must stay empty (e.g. a vacancy just made).
    :raises ValueError: naming the charge and the charges ``ligand`` can reach when no ligand count gives ``charge``.
    """
    z, _, species = check_ligand(ligand)
    roles = roles_of(qd)
    owners, directions = missing_bonds(qd, species, roles)
    if exclude is not None and len(exclude) and len(owners):
        bond = core_bond_length(qd, roles)
        probe = qd.positions[owners] + bond * directions
        far = cKDTree(np.asarray(exclude).reshape(-1, 3)).query(probe)[0] > 0.5 * bond
        owners, directions = owners[far], directions[far]
    # dangling bonds of neighbouring atoms that point at the same empty lattice site share one ligand
    targets = qd.positions[owners] + core_bond_length(qd, roles) * directions
    target_site = _site_labels(targets)
    n_free = len(np.unique(target_site))
    q0 = net_charge(qd)
    needed = (charge - q0) * z  # number of ligands (z = ±1)
    if needed < 0 or needed > n_free:
        reachable = sorted((q0, q0 + z * n_free))
        raise ValueError(f'cannot reach charge {charge} on {qd.get_chemical_formula()} with {ligand}: needs '
                         f'{needed} {ligand} ligands but {n_free} {species} sites are free; charges reachable '
                         f'with {ligand}: {reachable[0]} to {reachable[1]}')
    binder = check_ligand(ligand)[1]
    symbols = np.array(qd.get_chemical_symbols())
    lengths = np.array([bond_length(s, binder) for s in symbols[owners]])
    sites = qd.positions[owners] + lengths[:, None] * directions
    chosen = sorted(farthest_point_order(sites, needed, groups=owners, start=arrangement, exclusive=target_site))
    return append_atoms(qd, ligand_atoms(qd, owners[chosen], directions[chosen], ligand))


def _site_labels(points: np.ndarray, tolerance: float = 0.3) -> np.ndarray:
    """Label of each point, equal for points closer than ``tolerance`` (Å) (connected components, by KD-tree)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if not len(points):
        return np.zeros(0, dtype=int)
    pairs = cKDTree(points).query_pairs(tolerance, output_type='ndarray')
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(points), len(points)))
    return connected_components(graph, directed=False)[1]


def remove_atoms(qd: Atoms, indices) -> Atoms:
    """A copy of ``qd`` without the atoms ``indices`` (arrays kept)."""
    keep = np.ones(len(qd), bool)
    keep[np.asarray(indices, dtype=int)] = False
    return qd[keep]


def predominant_ligand(qd: Atoms) -> str | None:
    """The most common ligand of the QD (a key of :data:`LIGANDS`), or None without ligands."""
    formulas = [qd[unit].get_chemical_formula() for unit in ligand_units(qd)]
    names = ['OAc' if f == 'C2H3O2' else f for f in formulas if f in LIGAND_UNIT_CHARGES]
    if not names:
        return None
    values, counts = np.unique(names, return_counts=True)
    return str(values[np.argmax(counts)])


def adjust_charge(qd: Atoms, charge: int, ligand: str | None = None, near: np.ndarray | None = None,
                  exclude: np.ndarray | None = None) -> Atoms:
    """Restore net ``charge`` by adding ``ligand`` on free sites or removing ligand units of that kind.

    :param ligand: default: the predominant ligand of the QD.
    :param near: removals take the ligands nearest this point (Å), e.g. a vacancy, else the farthest-point spread.
    :param exclude: positions of sites that must stay empty when adding (e.g. the vacancy).
    """
    ligand = ligand or predominant_ligand(qd)
    if ligand is None:
        raise ValueError('the QD has no ligands; name the ligand to adjust its charge with')
    z = check_ligand(ligand)[0]
    change = (charge - net_charge(qd)) * z
    if change >= 0:
        return passivate(qd, ligand, charge, exclude=exclude)
    formula = 'C2H3O2' if ligand == 'OAc' else ligand
    units = [u for u in ligand_units(qd) if qd[u].get_chemical_formula() == formula]
    if -change > len(units):
        raise ValueError(f'cannot reach charge {charge}: would remove {-change} {ligand} but the QD has {len(units)}')
    centres = np.array([qd.positions[u].mean(0) for u in units])
    if near is not None:
        order = np.lexsort((np.arange(len(units)), np.round(np.linalg.norm(centres - near, axis=1), 6)))[:-change]
    else:
        order = farthest_point_order(centres, -change)
    return remove_atoms(qd, np.concatenate([units[i] for i in order]))
