"""Missing bonds, ligand placement and passivation of a QD to an exact net charge.

Pure functions on :class:`ase.Atoms`; no AiiDA import. Lengths in Å, charges in e (formal oxidation states).

Ligands:

* X-type ions ``F``, ``Cl``, ``Br``, ``I`` (charge −1) on cation dangling bonds;
* ``H`` (a proton, +1) on anion dangling bonds, for anion-rich clusters such as Cd17Se28H22 (Bhati et al.);
* ``OAc`` (acetate CH3COO⁻, −1) on cation dangling bonds (Sowa et al. use carboxylates), with a ``binding``:
  ``'monodentate'`` (default: one O along the dangling bond, turned about the bond axis to stay clear of the atoms
  already placed), ``'chelating'`` (both O on the metal of the dangling bond), ``'bridging'`` (the two O on two
  neighbouring metals whose dangling bonds point at the same empty lattice site) or ``'mixed'`` (a seeded choice per
  site among the modes the site allows). See :func:`passivate` for the counting rule.

Bidentate acetate geometry (:data:`CARBOXYLATE_FRAME`): C–O 1.26 Å, O–C–O 122°, C–C 1.50 Å, C–H 1.09 Å, C–C–H
109.47°; M–O is the cation–O bond length of :data:`~.crystal.LIGAND_BOND_LENGTHS` (Pb–O 2.40 Å) for every O.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, covalent_radii
from scipy.spatial import cKDTree

from .crystal import CATIONS, FORMAL_CHARGES, OCTAHEDRAL, TETRAHEDRAL, bond_length
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


#: Binding modes of a carboxylate (``OAc``); every other ligand binds ``'monodentate'`` only.
BINDINGS: tuple[str, ...] = ('monodentate', 'chelating', 'bridging', 'mixed')

#: Bidentate acetate in its local frame, origin at the O–O midpoint; x: from the O–O midpoint through the carboxyl
#: C to the methyl C (outward), y: O1 → O2. C–O 1.26 Å, O–C–O 122°, C–C 1.50 Å, C–H 1.09 Å, C–C–H 109.47°; one
#: methyl H perpendicular to the carboxylate plane. Atom order as :data:`_ACETATE_SYMBOLS`.
_HALF_OO = 1.26 * np.sin(np.radians(61.0))  # 1.1020 Å (O–O 2.204 Å)
_C_OFFSET = 1.26 * np.cos(np.radians(61.0))  # 0.6109 Å
_H_AXIAL, _H_RADIAL = -1.09 * np.cos(np.radians(109.47)), 1.09 * np.sin(np.radians(109.47))
CARBOXYLATE_FRAME = np.array([
    [0.0, -_HALF_OO, 0.0], [_C_OFFSET, 0.0, 0.0], [0.0, _HALF_OO, 0.0], [_C_OFFSET + 1.50, 0.0, 0.0],
    *[[_C_OFFSET + 1.50 + _H_AXIAL, _H_RADIAL * np.cos(phi), _H_RADIAL * np.sin(phi)]
      for phi in np.radians([90.0, 210.0, 330.0])],
])
#: Two cations sharing one empty site bridge when closer than this many lattice bond lengths (rock salt: √2,
#: zincblende: √(8/3) ≈ 1.63; cations on opposite sides of the site, at 2, do not).
_BRIDGE_REACH = 1.75
#: The least distance / (sum of covalent radii) between a placed acetate and the atoms it does not bind: above
#: the 1.25 that :func:`~.roles.bonded_pairs` counts as a bond, so every acetate stays a separate ligand unit.
MIN_CLEARANCE = 1.3


def check_binding(binding: str, ligand: str) -> str:
    """``binding`` after checking it is one of :data:`BINDINGS` and that ``ligand`` can take it."""
    if binding not in BINDINGS:
        raise ValueError(f'binding must be one of {list(BINDINGS)}, got {binding!r}')
    if binding != 'monodentate' and ligand != 'OAc':
        raise ValueError(f'binding {binding!r} needs a carboxylate ligand (OAc); {ligand!r} binds monodentate only')
    return binding


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
              exclude: np.ndarray | None = None, binding: str = 'monodentate', seed: int = 0) -> Atoms:
    """Add ``ligand`` on free dangling bonds until the QD has net ``charge`` (e).

    The ligands go to sites spread evenly by :func:`farthest_point_order` (over owner atoms first, then space);
    ``arrangement`` > 0 starts the spread from another site, giving a different, still even, ligand arrangement
    from the same core (Bhati et al.'s several ligand configurations).

    :param exclude: optional positions (Å) of sites that must stay empty (e.g. a vacancy just made).
    :param binding: for ``OAc``: ``'monodentate'``, ``'chelating'``, ``'bridging'`` or ``'mixed'`` (see below).
    :param seed: with ``binding='mixed'``, the seed (with ``arrangement``) of the per-site choice of mode.
    :raises ValueError: naming the charge and the charges ``ligand`` can reach when no ligand count gives ``charge``.

    Counting rule. The number of ligands is fixed by the charge alone (an acetate is −1 whatever its binding); the
    binding only decides which dangling bonds an acetate occupies. A free *site* is an empty lattice site that one
    or more dangling bonds point at; each site takes at most one ligand. Monodentate and chelating acetates take a
    site through one dangling bond (a chelate holds both O on that bond's metal). A bridging acetate takes a site
    through two dangling bonds of two cations closer than 1.75 bond lengths (rock salt: the 90° pairs, zincblende:
    the 109.5° pairs), its two O straddling the site, so only sites shared by two such cations count for
    ``'bridging'``; when fewer are free than acetates are needed the ValueError says so (``'mixed'`` always fits:
    it uses the same sites as monodentate and bridges only where a site allows). The sites are chosen as for
    monodentate (restricted to bridgeable ones for ``'bridging'``), so the same recipe with another binding puts
    its acetates on the same sites (all of them for ``'chelating'`` and ``'mixed'``).
    """
    z, _, species = check_ligand(ligand)
    check_binding(binding, ligand)
    roles = roles_of(qd)
    owners, directions = missing_bonds(qd, species, roles)
    if exclude is not None and len(exclude) and len(owners):
        bond = core_bond_length(qd, roles)
        probe = qd.positions[owners] + bond * directions
        far = cKDTree(np.asarray(exclude).reshape(-1, 3)).query(probe)[0] > 0.5 * bond
        owners, directions = owners[far], directions[far]
    # dangling bonds of neighbouring atoms that point at the same empty lattice site share one ligand
    bond = core_bond_length(qd, roles)
    targets = qd.positions[owners] + bond * directions
    target_site = _site_labels(targets)
    all_owners, all_labels = owners, target_site
    if binding == 'bridging':
        keep = np.isin(target_site, _bridge_labels(qd.positions, owners, target_site, bond))
        owners, directions, target_site = owners[keep], directions[keep], target_site[keep]
    n_free = len(np.unique(target_site))
    q0 = net_charge(qd)
    needed = (charge - q0) * z  # number of ligands (z = ±1)
    if needed < 0 or needed > n_free:
        reachable = sorted((q0, q0 + z * n_free))
        what = f'{species} sites shared by two neighbouring cations (bridging)' if binding == 'bridging' else \
            f'{species} sites'
        raise ValueError(f'cannot reach charge {charge} on {qd.get_chemical_formula()} with {ligand}: needs '
                         f'{needed} {ligand} ligands but {n_free} {what} are free; charges reachable '
                         f'with {ligand}: {reachable[0]} to {reachable[1]}')
    binder = check_ligand(ligand)[1]
    symbols = np.array(qd.get_chemical_symbols())
    lengths = np.array([bond_length(s, binder) for s in symbols[owners]])
    sites = qd.positions[owners] + lengths[:, None] * directions
    chosen = sorted(farthest_point_order(sites, needed, groups=owners, start=arrangement, exclusive=target_site))
    if binding == 'monodentate':
        return append_atoms(qd, ligand_atoms(qd, owners[chosen], directions[chosen], ligand))
    modes = _binding_modes(qd.positions, owners[chosen], target_site[chosen], all_owners, all_labels, bond,
                           binding, np.random.default_rng([int(seed), int(arrangement)]) if binding == 'mixed'
                           else None)
    placements = []
    load = np.zeros(len(qd), int)  # O atoms already on each cation
    for i, drawn in zip(chosen, modes):
        options = []
        # 'mixed' falls back on the site's other modes (in this order) when the drawn one would crowd
        allowed = [drawn] if binding != 'mixed' else \
            [drawn] + [m for m in _site_modes(qd.positions, owners[i], target_site[i], all_owners, all_labels, bond)
                       if m != drawn]
        for mode in allowed:
            if mode == 'bridging':
                partner = _bridge_partner(qd.positions, owners[i], target_site[i], all_owners, all_labels, bond,
                                          load)
                options.append(('bridging', (owners[i], partner),
                                targets[np.flatnonzero(all_labels == target_site[i])[0]]))
            else:
                options.append((mode, (owners[i],), directions[i]))
        for metal in options[0][1]:
            load[metal] += 2 if options[0][0] == 'chelating' else 1
        placements.append(options)
    return append_atoms(qd, carboxylate_atoms(qd, placements))


def _bridge_partners(positions: np.ndarray, owner: int, label: int, owners: np.ndarray, labels: np.ndarray,
                     bond: float) -> np.ndarray:
    """The cations other than ``owner`` with a dangling bond at site ``label`` within bridging reach of it."""
    others = np.unique(owners[(labels == label) & (owners != owner)])
    near = np.linalg.norm(positions[others] - positions[owner], axis=1) < _BRIDGE_REACH * bond
    return others[near]


def _bridge_labels(positions: np.ndarray, owners: np.ndarray, labels: np.ndarray, bond: float) -> np.ndarray:
    """The site labels that two cations within bridging reach of each other point at."""
    return np.array([label for label in np.unique(labels)
                     if any(len(_bridge_partners(positions, o, label, owners, labels, bond))
                            for o in np.unique(owners[labels == label]))], dtype=int)


def _bridge_partner(positions: np.ndarray, owner: int, label: int, owners: np.ndarray, labels: np.ndarray,
                    bond: float, load: np.ndarray) -> int:
    """The partner cation of a bridge from ``owner`` over site ``label``: the one holding the fewest O so far,
    then the nearest, then the lowest index."""
    partners = _bridge_partners(positions, owner, label, owners, labels, bond)
    distance = np.round(np.linalg.norm(positions[partners] - positions[owner], axis=1), 4)
    return int(partners[np.lexsort((partners, distance, load[partners]))[0]])


def _binding_modes(positions: np.ndarray, chosen_owners: np.ndarray, chosen_labels: np.ndarray,
                   owners: np.ndarray, labels: np.ndarray, bond: float, binding: str,
                   rng: np.random.Generator | None) -> list[str]:
    """The mode of each chosen site: ``binding`` itself, or for ``'mixed'`` a draw among the modes the site allows
    (monodentate, chelating, and bridging where a second cation within reach points at the site)."""
    if binding != 'mixed':
        return [binding] * len(chosen_owners)
    modes = []
    for owner, label in zip(chosen_owners, chosen_labels):
        allowed = _site_modes(positions, owner, label, owners, labels, bond)
        modes.append(allowed[int(rng.integers(len(allowed)))])
    return modes


def _site_modes(positions: np.ndarray, owner: int, label: int, owners: np.ndarray, labels: np.ndarray,
                bond: float) -> list[str]:
    """The modes an acetate on ``owner``'s dangling bond at site ``label`` may take."""
    bridgeable = len(_bridge_partners(positions, owner, label, owners, labels, bond)) > 0
    return ['monodentate', 'chelating'] + (['bridging'] if bridgeable else [])


def _perpendicular(axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors completing ``axis`` (unit) to a right-handed orthonormal frame."""
    helper = np.eye(3)[np.argmin(np.abs(axis))]
    p0 = np.cross(axis, helper)
    p0 /= np.linalg.norm(p0)
    return p0, np.cross(axis, p0)


def _clearance(xyz: np.ndarray, core: Atoms, tree_core: cKDTree, bound: tuple[int, ...],
               placed: np.ndarray, placed_radii: np.ndarray, tree_placed: cKDTree | None,
               contact: np.ndarray) -> float:
    """Smallest distance / (sum of covalent radii) between the acetate ``xyz`` and the core (less the pairs of the
    carboxyl O, C, O with the metals ``bound`` they bind) or the atoms placed before; an O–cation pair counts as
    :data:`MIN_CLEARANCE` × distance / (0.95 × ``contact``), ``contact`` being the M–O length of each core cation
    (0 for the other core atoms)."""
    radii = covalent_radii[[atomic_numbers[s] for s in _ACETATE_SYMBOLS]]
    core_radii = covalent_radii[core.numbers]
    k = min(len(core), 4)
    d, j = tree_core.query(xyz, k=k)
    d, j = d.reshape(len(xyz), k), j.reshape(len(xyz), k)
    ratio = d / (radii[:, None] + core_radii[j])
    carboxyl = np.arange(len(xyz)) < 3  # O, C, O: bonded to the metal(s) they bind, or 1-3 to them
    ratio[carboxyl[:, None] & np.isin(j, bound)] = np.inf
    # an O at >= 0.95 M–O from another cation is a second Pb–O contact (Sowa et al.'s tilted bridge), not a clash
    oxygen = np.array([s == 'O' for s in _ACETATE_SYMBOLS])[:, None] & (contact[j] > 0)
    ratio[oxygen] = d[oxygen] / (0.95 * contact[j][oxygen]) * MIN_CLEARANCE
    score = float(ratio.min())
    if tree_placed is not None:
        d, j = tree_placed.query(xyz)
        score = min(score, float((d / (radii + placed_radii[j])).min()))
    return score


def _place_carboxylate(atoms: Atoms, mode: str, metals: tuple[int, ...], vector: np.ndarray, symbols: list[str],
                       tree_core: cKDTree, centroid: np.ndarray, placed: np.ndarray, placed_radii: np.ndarray,
                       tree_placed: cKDTree | None) -> tuple[np.ndarray, float]:
    """The clearest candidate geometry of one acetate (see :func:`carboxylate_atoms`) and its clearance."""
    metal = atoms.positions[metals[0]]
    r = float(np.mean([bond_length(symbols[m], 'O') for m in metals]))
    candidates = []
    if mode == 'monodentate':
        p0, q0 = _perpendicular(vector)
        for angle in 2 * np.pi * np.arange(12) / 12:
            p = np.cos(angle) * p0 + np.sin(angle) * q0
            candidates.append(metal + r * vector + _ACETATE_FRAME @ np.vstack([vector, p, np.cross(vector, p)]))
    elif mode == 'chelating':
        beta = np.arcsin(_HALF_OO / r)
        p0, q0 = _perpendicular(vector)
        for angle in np.pi * np.arange(12) / 12:
            y = np.cos(angle) * p0 + np.sin(angle) * q0
            origin = metal + r * np.cos(beta) * vector
            candidates.append(origin + CARBOXYLATE_FRAME @ np.vstack([vector, y, np.cross(vector, y)]))
    elif mode == 'bridging':
        other = atoms.positions[metals[1]]
        span = np.linalg.norm(other - metal)
        u, middle = (other - metal) / span, 0.5 * (metal + other)
        height = np.sqrt(r ** 2 - (span / 2 - _HALF_OO) ** 2)
        out = vector - middle
        out -= (out @ u) * u
        if np.linalg.norm(out) < 1e-6:
            out = middle - centroid - ((middle - centroid) @ u) * u
        n0 = out / np.linalg.norm(out)
        for tilt in np.radians([0.0, 15.0, -15.0, 30.0, -30.0, 45.0, -45.0]):
            n = np.cos(tilt) * n0 + np.sin(tilt) * np.cross(u, n0)
            candidates.append(middle + height * n + CARBOXYLATE_FRAME @ np.vstack([n, u, np.cross(n, u)]))
    else:
        raise ValueError(f'unknown binding mode {mode!r}; choose one of {list(BINDINGS[:3])}')
    contact = np.array([bond_length(s, 'O') if s in CATIONS else 0.0 for s in symbols])
    scores = np.array([_clearance(xyz, atoms, tree_core, metals, placed, placed_radii, tree_placed, contact)
                       for xyz in candidates])
    best = int(np.argmax(scores > 0.9 * scores.max())) if mode == 'bridging' else int(np.argmax(scores))
    return candidates[best], float(scores[best])


def carboxylate_atoms(atoms: Atoms, placements: list) -> Atoms:
    """Acetates bound to ``atoms`` in order, each ``(mode, metals, vector)`` with ``qd_role``/``qd_domain`` arrays.

    A placement may also be a list of such options: the first whose best clearance is at least
    :data:`MIN_CLEARANCE` is taken, else the clearest of them.

    * ``('monodentate', (m,), d)``: one O at the M–O length along the dangling bond ``d`` (:data:`_ACETATE_FRAME`),
      turned about ``d`` (12 angles) for the largest clearance;
    * ``('chelating', (m,), d)``: both O at the M–O length from ``m``, symmetric about ``d`` (bite angle
      2 asin(1.102 Å / M–O): 54.7° for Pb–O 2.40 Å), the carboxylate plane turned about ``d`` (12 angles) for the
      largest clearance;
    * ``('bridging', (m1, m2), site)``: one O at the M–O length from each metal, the O–O axis parallel to m1 → m2 and
      the carboxylate plane through the m1–m2 axis, pointing at the empty ``site``; tilted about that axis (0, ±15,
      ±30, ±45°) only when the least tilt within 10 % of the best clearance needs it.

    Clearance: the smallest distance over the sum of covalent radii to the core atoms (less the M–O bonds and the
    M···C of the carboxyl C, 2.74 Å in a Pb chelate) and the atoms placed before; an O may come as close as 0.95 ×
    the M–O length to a cation it does not bind (a secondary contact).

    :raises ValueError: when an acetate cannot be placed with clearance :data:`MIN_CLEARANCE` (it would touch
        another ligand or a core atom it does not bind).
    """
    symbols = atoms.get_chemical_symbols()
    tree_core = cKDTree(atoms.positions)
    centroid = atoms.positions.mean(0)
    placed = np.zeros((0, 3))
    radii = covalent_radii[[atomic_numbers[s] for s in _ACETATE_SYMBOLS]]
    for entry in placements:
        options = entry if isinstance(entry, list) else [entry]
        tree_placed = cKDTree(placed) if len(placed) else None
        placed_radii = np.tile(radii, len(placed) // len(radii))
        best_xyz, best_score, best_mode = None, -1.0, None
        for mode, metals, vector in options:
            xyz, score = _place_carboxylate(atoms, mode, metals, np.asarray(vector, float), symbols, tree_core,
                                            centroid, placed, placed_radii, tree_placed)
            if score > best_score:
                best_xyz, best_score, best_mode = xyz, score, mode
            if score >= MIN_CLEARANCE:
                break
        if best_score < MIN_CLEARANCE:
            raise ValueError(f'cannot place acetate {len(placed) // 7 + 1} ({best_mode}) on atom(s) '
                             f'{list(map(int, options[0][1]))} clear of the others: clearance {best_score:.2f} < '
                             f'{MIN_CLEARANCE} (distance / sum of covalent radii); try another binding or arrangement')
        placed = np.vstack([placed, best_xyz])
    result = Atoms(_ACETATE_SYMBOLS * len(placements), positions=placed)
    result.arrays['qd_role'] = np.full(len(result), 'ligand', dtype=ROLE_DTYPE)
    result.arrays['qd_domain'] = np.full(len(result), 'ligand', dtype=DOMAIN_DTYPE)
    return result


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
