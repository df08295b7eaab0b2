"""Cubic lead-halide perovskite (CsPbBr3) nanocubes with CsBr- or PbBr2-terminated {100} facets, exact charge.

Pure functions on :class:`ase.Atoms`; no AiiDA import. Lengths in Å, charges in e (Cs +1, Pb +2, Br −1).

Cubic perovskite ABX3 (Pm-3m): Pb at the cube corners (0, 0, 0), Br at the edge centres (½, 0, 0), (0, ½, 0),
(0, 0, ½), Cs at the body centre (½, ½, ½); Pb–Br = a/2, Cs–Br = a/√2. A nanocube of ``n`` cells holds n × n × n
corner-sharing PbBr6 octahedra (edge length n·a, measured Pb to Pb plus one Pb–Pb spacing):

* ``termination='CsBr'`` (Cs-rich, the CsBr-terminated cube of the nanocrystal literature): every octahedron
  complete, (n+1)³ Cs in all A sites of and around the framework, so the outermost {100} layers are CsBr.
  Cs(n+1)³Pb(n³)Br(3n²(n+1)) carries 3n + 1 e; the builder removes 3n + 1 surface Cs (with ``charge=0``).
* ``termination='PbBr2'``: the octahedra complete, (n−1)³ Cs only in the cages inside, so the outermost {100}
  layers are PbBr2 plus one terminal Br per surface Pb. Cs((n−1)³)Pb(n³)Br(3n²(n+1)) carries −(6n² − 3n + 1) e; the
  builder removes that many terminal Br (bound to one Pb), keeping 3n − 1 of the 6n² terminal Br.

Which atoms go, tier by tier: Cs with the fewest Br neighbours first (corner Cs: 3, then edge: 6, then face: 9),
so the least-bound Cs leave; terminal Br first from the Pb that have one (face Pb, left five-coordinate), then from
those with two (edge Pb), then three (corner Pb), so the kept terminal Br sit on the least-coordinated Pb (one per
corner Pb for n = 3). Within the last tier the atoms that stay are a farthest-point spread (balanced over the
owning Pb for Br), so the remaining surface stays even; ``arrangement`` > 0 gives other spreads.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from scipy.spatial import cKDTree

from .passivation import farthest_point_order
from .roles import DOMAIN_DTYPE, ROLE_DTYPE

#: Cubic perovskites: A cation, B cation, X anion, lattice constant (Å). CsPbBr3: the cubic (Pm-3m) phase,
#: a = 5.874 Å (Stoumpos et al., Cryst. Growth Des. 2013, 13, 2722, single crystal above 130 °C).
PEROVSKITES: dict[str, tuple[str, str, str, float]] = {
    'CsPbBr3': ('Cs', 'Pb', 'Br', 5.874),
}
TERMINATIONS: tuple[str, ...] = ('CsBr', 'PbBr2')


def check_perovskite(material: str) -> tuple[str, str, str, float]:
    if material not in PEROVSKITES:
        raise ValueError(f'unknown perovskite {material!r}; known: {sorted(PEROVSKITES)}')
    return PEROVSKITES[material]


def cells_of(material: str, edge: float, lattice_constant: float | None = None) -> int:
    """The number of cells n (≥ 2) whose cube edge n·a is nearest ``edge`` (Å)."""
    a = perovskite_lattice_constant(material, lattice_constant)
    if edge is None or not float(edge) > 0:
        raise ValueError(f'the nanocube edge (diameter) must be a positive length in Å, got {edge!r}')
    n = int(np.floor(float(edge) / a + 0.5))
    if n < 2:
        raise ValueError(f'edge {edge!r} Å is below two {material} cells ({2 * a:.2f} Å); the smallest cube has 2')
    return n


def perovskite_lattice_constant(material: str, lattice_constant: float | None = None) -> float:
    a = float(check_perovskite(material)[3] if lattice_constant is None else lattice_constant)
    if not a > 0:
        raise ValueError(f'lattice constant must be positive, got {lattice_constant!r}')
    return a


def _frame(n: int, termination: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fractional positions (units of a) of Cs, Pb and Br of the complete-octahedra cube of ``n`` cells."""
    grid = np.arange(n)
    pb = np.stack(np.meshgrid(grid, grid, grid, indexing='ij'), -1).reshape(-1, 3).astype(float)
    shifts = np.vstack([np.eye(3), -np.eye(3)]) / 2
    br = np.unique(np.round((pb[:, None] + shifts[None]).reshape(-1, 3), 3), axis=0)
    a_sites = np.arange(-1, n) if termination == 'CsBr' else np.arange(0, n - 1)
    cs = np.stack(np.meshgrid(a_sites, a_sites, a_sites, indexing='ij'), -1).reshape(-1, 3) + 0.5
    return cs, pb, br


def _pick_tiers(points: np.ndarray, tiers: np.ndarray, n_remove: int, arrangement: int,
                groups: np.ndarray | None = None) -> np.ndarray:
    """Indices of ``n_remove`` points: lowest tier first; within the last tier the ones not kept by a spread."""
    removed: list[int] = []
    for tier in np.unique(tiers):
        members = np.where(tiers == tier)[0]
        room = n_remove - len(removed)
        if room <= 0:
            break
        if room >= len(members):
            removed.extend(members.tolist())
            continue
        keep_groups = None if groups is None else groups[members]
        kept = farthest_point_order(points[members], len(members) - room, groups=keep_groups, start=arrangement)
        removed.extend(np.delete(members, kept).tolist())
    return np.array(sorted(removed), dtype=int)


def build_nanocube(material: str, edge: float, termination: str = 'CsBr', charge: int = 0, arrangement: int = 0,
                   lattice_constant: float | None = None) -> Atoms:
    """A ``material`` nanocube of edge ``edge`` (Å, rounded to whole cells, ≥ 2) with net ``charge`` (e), unboxed.

    See the module docstring for the terminations and which surface atoms are removed. Roles: A and B cations
    ``cation``, X ``anion``; all atoms in the ``core`` domain. ``atoms.info['qd_build']`` holds ``cells``,
    ``termination`` and ``edge`` (n·a, Å).
    """
    if termination not in TERMINATIONS:
        raise ValueError(f'termination must be one of {list(TERMINATIONS)}, got {termination!r}')
    if not isinstance(charge, (int, np.integer)):
        raise TypeError(f'charge must be an integer number of e, got {charge!r}')
    a_el, b_el, x_el, _ = check_perovskite(material)
    a = perovskite_lattice_constant(material, lattice_constant)
    n = cells_of(material, edge, lattice_constant)
    cs, pb, br = _frame(n, termination)
    q0 = len(cs) + 2 * len(pb) - len(br)
    if termination == 'CsBr':
        n_remove = q0 - charge
        if not 0 <= n_remove <= len(cs):
            raise ValueError(f'cannot reach charge {charge} on a CsBr-terminated {n}-cell {material} cube by '
                             f'removing Cs: reachable {q0 - len(cs)} to {q0}')
        n_br = cKDTree(br).query_ball_point(cs, 0.75, return_length=True)  # Cs–Br = a/√2
        cs = np.delete(cs, _pick_tiers(cs, n_br, n_remove, arrangement), axis=0)
    else:
        n_remove = charge - q0
        owners_of = cKDTree(pb).query_ball_point(br, 0.55)
        terminal = np.array([len(o) == 1 for o in owners_of])
        idx = np.where(terminal)[0]
        if not 0 <= n_remove <= len(idx):
            raise ValueError(f'cannot reach charge {charge} on a PbBr2-terminated {n}-cell {material} cube by '
                             f'removing terminal Br: reachable {q0} to {q0 + len(idx)}')
        owner = np.array([owners_of[i][0] for i in idx])
        per_pb = np.bincount(owner, minlength=len(pb))
        br = np.delete(br, idx[_pick_tiers(br[idx], per_pb[owner], n_remove, arrangement, groups=owner)], axis=0)
    positions = np.vstack([cs, pb, br]) * a
    symbols = [a_el] * len(cs) + [b_el] * len(pb) + [x_el] * len(br)
    cube = Atoms(symbols, positions=positions - positions.mean(0))
    cube.arrays['qd_role'] = np.array(['cation'] * (len(cs) + len(pb)) + ['anion'] * len(br), dtype=ROLE_DTYPE)
    cube.arrays['qd_domain'] = np.full(len(cube), 'core', dtype=DOMAIN_DTYPE)
    cube.info['qd_build'] = {'cells': n, 'termination': termination, 'edge': round(n * a, 4)}
    return cube
