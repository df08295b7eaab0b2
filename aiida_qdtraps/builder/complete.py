"""Complete passivation: a halide on every cation dangling bond, terminal or bridging, at an exact net charge.

Pure functions on :class:`ase.Atoms`; no AiiDA import. Lengths in Å, charges in e.

:func:`~.passivation.passivate` puts at most one ligand on each empty lattice site next to the core. On a core whose
anions are all four-coordinate (``min_core_bonds=1, trim=4``) that is not enough: such a core has
4(N_cation − N_anion) cation dangling bonds and needs 3(N_cation − N_anion) halides to be neutral, but on {100}
facets two cations, and over the capped (−1−1−1) facets three, point at the same empty site, so the sites run short
(InP 2.56 nm cuboctahedron In164P104: 180 Cl needed, 136 sites). Alexander et al.'s 2.7 nm cuboctahedra "perfectly
passivated with Cl⁻ … containing no atoms with coordination numbers below four" are of this kind.

:func:`passivate_complete` covers **every** cation dangling bond. A site shared by several cations takes one
halide bridging them (μ2, μ3); where the charge needs more halides than there are sites, shared sites are split:
one of their dangling bonds at a time leaves the bridge and gets a terminal halide of its own. The count follows
from the charge alone: with ``n_sites`` shared or single sites and ``n_bonds`` dangling bonds, ``needed − n_sites``
dangling bonds are split off (``n_sites ≤ needed ≤ n_bonds``, else the charge cannot be reached with every bond
covered). Each split goes where the halides are least crowded (:func:`choose_splits`); ``arrangement`` > 0 breaks
the ties differently.

Geometry. Terminal halides start along their dangling bond at the cation–halide length of
:data:`~.crystal.LIGAND_BOND_LENGTHS`, bridging ones on the empty lattice site. All halides are then moved
together by a short minimisation (L-BFGS, deterministic) of harmonic bond restraints — each halide at the terminal
length from its one cation, :data:`BRIDGE_STRETCH` Å longer per additional cation it bridges (μ2 In–Cl 2.55 Å,
as bridging halides are longer than terminal ones) — and a repulsion between every halide and the atoms it does not
bind, below :data:`CONTACT_SCALE` × the sum of their van der Waals radii (Cl–Cl 3.15 Å, Cl–P 3.20 Å, Cl–In 3.31 Å).
The core does not move. A placement that leaves any contact below :data:`MIN_CONTACT` of that distance, or any
restrained bond off by more than 0.2 Å, is refused with the numbers.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, vdw_radii
from scipy.optimize import minimize
from scipy.spatial import cKDTree

from .crystal import bond_length
from .passivation import _site_labels, append_atoms, check_ligand, core_bond_length, missing_bonds, net_charge
from .roles import DOMAIN_DTYPE, ROLE_DTYPE, roles_of

#: The ways a builder recipe passivates: one ligand per empty lattice site (``'sites'``) or every dangling bond.
PASSIVATIONS: tuple[str, ...] = ('sites', 'complete')
#: Halides :func:`passivate_complete` places.
HALIDES: tuple[str, ...] = ('F', 'Cl', 'Br', 'I')
#: How much longer (Å) a halide's bond is per additional cation it bridges.
BRIDGE_STRETCH = 0.15
#: The repulsion starts below this fraction of the sum of van der Waals radii of a halide and an atom it does not
#: bind.
CONTACT_SCALE = 0.9
#: A placed halide closer than this fraction of the repulsion distance to an atom it does not bind is refused.
MIN_CONTACT = 0.9
#: Radius (Å) within which the halides around a shared site count as crowding it.
CROWDING_RADIUS = 5.0
#: Weight of the contact repulsion against the bond restraints (both harmonic, Å⁻²).
REPULSION = 0.3
#: Largest deviation (Å) of a restrained halide bond from its length after the minimisation.
BOND_TOLERANCE = 0.2


def check_passivation(passivation: str) -> str:
    """``passivation`` after checking it is one of :data:`PASSIVATIONS`."""
    if passivation not in PASSIVATIONS:
        raise ValueError(f'passivation must be one of {list(PASSIVATIONS)}, got {passivation!r}')
    return passivation


def check_halide(ligand: str) -> str:
    """``ligand`` after checking that it is one of :data:`HALIDES`."""
    if ligand not in HALIDES:
        raise ValueError(f"passivation 'complete' places halides {list(HALIDES)}, got ligand {ligand!r}")
    return ligand


def plan_complete(qd: Atoms, ligand: str, charge: int = 0, arrangement: int = 0):
    """Which cations each halide of a complete passivation binds, and the bonds they cover.

    :returns: ``(groups, owners, directions, targets)``: ``groups`` a list of index arrays into the dangling bonds
        (one array per halide, several indices for a bridge), ``owners`` the cation of each dangling bond,
        ``directions`` its unit vector, ``targets`` the empty lattice site it points at.
    :raises ValueError: for a ligand other than a halide, or a charge that no complete passivation reaches, naming
        the numbers.
    """
    z, _, species = check_ligand(check_halide(ligand))
    roles = roles_of(qd)
    owners, directions = missing_bonds(qd, species, roles)
    bond = core_bond_length(qd, roles)
    targets = qd.positions[owners] + bond * directions
    labels = _site_labels(targets)
    n_sites, n_bonds = len(np.unique(labels)), len(owners)
    q0 = net_charge(qd)
    needed = (charge - q0) * z
    if not n_sites <= needed <= n_bonds:
        reachable = sorted((q0 + z * n_sites, q0 + z * n_bonds))
        raise ValueError(f'cannot passivate {qd.get_chemical_formula()} completely with {ligand} at charge {charge}: '
                         f'it needs {needed} {ligand}, but covering all {n_bonds} cation dangling bonds takes '
                         f'{n_sites} (one per empty site, bridging) to {n_bonds} (one per bond); charges reachable: '
                         f'{reachable[0]} to {reachable[1]}')
    split = choose_splits(targets, labels, needed - n_sites, arrangement)
    groups = [np.array([i]) for i in np.flatnonzero(split)]
    for label in np.unique(labels):
        members = np.flatnonzero((labels == label) & ~split)
        groups.append(members)
    groups.sort(key=lambda g: int(g.min()))
    return groups, owners, directions, targets


def choose_splits(targets: np.ndarray, labels: np.ndarray, count: int, arrangement: int = 0) -> np.ndarray:
    """Which dangling bonds leave their shared site (a boolean mask): ``count`` of them, one at a time where the
    halides are least crowded.

    Each pick takes a bond of a site that still bridges two or more, at the site with the fewest halides within
    :data:`CROWDING_RADIUS` (the sites' halides plus those split off so far), ties broken by the distance to the
    earlier picks (largest first), then by index; ``arrangement`` > 0 breaks the ties at random (seeded) instead.
    """
    sites = np.unique(labels)
    position = np.array([targets[labels == s][0] for s in sites])
    size = np.array([(labels == s).sum() for s in sites])
    halides = np.ones(len(sites), int)  # halides at each site
    near = cKDTree(position).query_ball_point(position, CROWDING_RADIUS)
    crowd = np.array([len(n) for n in near])  # halides within the radius of each site
    jitter = np.random.default_rng(arrangement).random(len(sites)) if arrangement else np.zeros(len(sites))
    far = np.full(len(sites), np.inf)
    split = np.zeros(len(labels), bool)
    for _ in range(count):
        open_ = np.flatnonzero(halides < size)
        order = np.lexsort((open_, jitter[open_], -np.round(far[open_], 3), crowd[open_]))
        pick = int(open_[order[0]])
        bonds = np.flatnonzero((labels == sites[pick]) & ~split)
        split[bonds[-1]] = True
        halides[pick] += 1
        crowd[near[pick]] += 1  # the sites within the radius of the pick
        far = np.minimum(far, np.linalg.norm(position - position[pick], axis=1))
    return split


def passivate_complete(qd: Atoms, ligand: str = 'Cl', charge: int = 0, arrangement: int = 0) -> Atoms:
    """``qd`` with a halide on every cation dangling bond (terminal or bridging) and net ``charge`` (e).

    See the module docstring for the counting rule and the geometry.

    :raises ValueError: when the charge cannot be reached with every dangling bond covered, or the halides cannot be
        placed clear of each other and of the core (the closest contact and the bond furthest off are named).
    """
    groups, owners, directions, targets = plan_complete(qd, ligand, charge, arrangement)
    symbols = np.array(qd.get_chemical_symbols())
    n = len(groups)
    start = np.empty((n, 3))
    bond_pairs, bond_lengths = [], []
    for k, group in enumerate(groups):
        metals = owners[group]
        terminal = np.array([bond_length(s, ligand) for s in symbols[metals]])
        if len(group) == 1:
            start[k] = qd.positions[metals[0]] + terminal[0] * directions[group[0]]
        else:
            start[k] = targets[group[0]]
        for metal, length in zip(metals, terminal):
            bond_pairs.append((k, metal))
            bond_lengths.append(length + BRIDGE_STRETCH * (len(group) - 1))
    bond_pairs, bond_lengths = np.array(bond_pairs), np.array(bond_lengths)
    # contacts: each halide with the core atoms it does not bind and with the other halides, within reach
    radius = vdw_radii[atomic_numbers[ligand]]
    core_radii = vdw_radii[qd.numbers]
    reach = 2.5 + 2 * CONTACT_SCALE * max(radius, core_radii.max())
    core_pairs = np.array([(k, j) for k, near in enumerate(cKDTree(qd.positions).query_ball_point(start, reach))
                           for j in near], dtype=int).reshape(-1, 2)
    bound = {(int(k), int(j)) for k, j in bond_pairs}
    core_pairs = core_pairs[[(int(k), int(j)) not in bound for k, j in core_pairs]] if len(core_pairs) else core_pairs
    core_min = CONTACT_SCALE * (radius + core_radii[core_pairs[:, 1]])
    halide_pairs = cKDTree(start).query_pairs(reach, output_type='ndarray')
    halide_min = CONTACT_SCALE * 2 * radius

    def energy(flat):
        x = flat.reshape(n, 3)
        grad = np.zeros_like(x)
        d = x[bond_pairs[:, 0]] - qd.positions[bond_pairs[:, 1]]
        r = np.linalg.norm(d, axis=1)
        e = float(((r - bond_lengths) ** 2).sum())
        np.add.at(grad, bond_pairs[:, 0], (2 * (r - bond_lengths) / r)[:, None] * d)
        d = x[core_pairs[:, 0]] - qd.positions[core_pairs[:, 1]]
        r = np.linalg.norm(d, axis=1)
        over = np.clip(core_min - r, 0.0, None)
        e += REPULSION * float((over ** 2).sum())
        np.add.at(grad, core_pairs[:, 0], (-2 * REPULSION * over / r)[:, None] * d)
        if len(halide_pairs):
            d = x[halide_pairs[:, 0]] - x[halide_pairs[:, 1]]
            r = np.linalg.norm(d, axis=1)
            over = np.clip(halide_min - r, 0.0, None)
            e += REPULSION * float((over ** 2).sum())
            g = (-2 * REPULSION * over / r)[:, None] * d
            np.add.at(grad, halide_pairs[:, 0], g)
            np.add.at(grad, halide_pairs[:, 1], -g)
        return e, grad.ravel()

    result = minimize(energy, start.ravel(), jac=True, method='L-BFGS-B', options={'maxiter': 5000, 'gtol': 1e-10})
    positions = result.x.reshape(n, 3)
    _check_placement(qd, positions, ligand, bond_pairs, bond_lengths)
    placed = Atoms([ligand] * n, positions=positions)
    placed.arrays['qd_role'] = np.full(n, 'ligand', dtype=ROLE_DTYPE)
    placed.arrays['qd_domain'] = np.full(n, 'ligand', dtype=DOMAIN_DTYPE)
    return append_atoms(qd, placed)


def _check_placement(qd: Atoms, positions: np.ndarray, ligand: str, bond_pairs: np.ndarray,
                     bond_lengths: np.ndarray) -> None:
    """Refuse halides that stayed too close to an atom they do not bind, or far from a bond length."""
    radius = vdw_radii[atomic_numbers[ligand]]
    off = np.abs(np.linalg.norm(positions[bond_pairs[:, 0]] - qd.positions[bond_pairs[:, 1]], axis=1) - bond_lengths)
    worst = int(np.argmax(off))
    if off[worst] > BOND_TOLERANCE:
        raise ValueError(f'cannot place {ligand} {bond_pairs[worst, 0] + 1} on atom {bond_pairs[worst, 1]}: its bond '
                         f'is {off[worst]:.2f} Å off {bond_lengths[worst]:.2f} Å after clearing the contacts')
    bound = {(int(k), int(j)) for k, j in bond_pairs}
    d, j = cKDTree(qd.positions).query(positions, k=min(8, len(qd)))
    d, j = d.reshape(len(positions), -1), j.reshape(len(positions), -1)
    ratio = d / (CONTACT_SCALE * (radius + vdw_radii[qd.numbers[j]]))
    for k in range(len(positions)):
        ratio[k, [(k, int(x)) in bound for x in j[k]]] = np.inf
    if len(positions) > 1:
        dd, _ = cKDTree(positions).query(positions, k=2)
        ratio = np.column_stack([ratio, dd[:, 1] / (CONTACT_SCALE * 2 * radius)])
    k, m = np.unravel_index(int(np.argmin(ratio)), ratio.shape)
    if ratio[k, m] < MIN_CONTACT:
        raise ValueError(f'cannot place {ligand} {k + 1} clear of the other atoms: a contact at {ratio[k, m]:.2f} of '
                         f'the van der Waals distance (least {MIN_CONTACT})')
