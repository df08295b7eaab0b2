"""The automatic core: the carve centre, trim and carve size that give a core of the requested diameter which the
ligand brings to the requested charge.

Pure functions on numpy / :class:`ase.Atoms`; no AiiDA import. Lengths in Å, charges in e.

With ``center='auto'`` the requested ``diameter`` is the diameter of the **core**: twice the largest distance of a
core atom from the core's centroid (the circumscribed sphere of the core atoms, ligands excluded). Every core
carved around the four centres of tetrahedral site symmetry (``anion``, ``cation``, ``interstitial``,
``interstitial2``) with each trim of :func:`auto_trims` (see :func:`~aiida_qdtraps.builder.shapes.carve_core`)
is a candidate when

* its diameter is within one bond length (+0.01 Å) of the request,
* its net charge can be brought to ``charge`` by the ligand (enough free sites of the species the ligand binds),
* no atom keeps fewer than ``min_core_bonds`` core bonds.

Among the candidates the builder takes (``prefer='size'``, the default) the one nearest in diameter (to 0.01 Å);
then the one with the fewest atoms of the species the ligand does not bind (anions for F, Cl, Br, I, acetate;
cations for H) that lack core bonds, i.e. dangling bonds no ligand can take; then the smaller trim; then the centre
order ``anion``, ``cation``, ``interstitial``, ``interstitial2``. With ``prefer='coordination'`` every core within
the tolerance is a candidate and the fewest such under-coordinated atoms come first, then the nearest diameter.
Cores that take no ligand at all (already neutral) are the fallback only. Polyhedra come in atomic-layer steps, so
the carve size that gives the chosen core is usually larger than the requested diameter (a tetrahedron loses its
vertex atoms to pruning); it is recorded.

No zincblende core has every anion four-coordinate while every cation keeps two core bonds: the outermost anion
along an anion-terminated ⟨111⟩ direction (the negative of a bond of :data:`~.crystal.TETRAHEDRAL`) bonds outwards
to a cation whose other three bonds point further out, to anion sites beyond the outermost one, so that cation has
a single core bond. Hence at least one anion per anion-terminated direction keeps a dangling bond when cations keep
two core bonds (the vertices of a tetrahedron: four), and cores with every anion four-coordinate
(``min_core_bonds=1``, ``trim=4``) have cations with one core bond and three dangling bonds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase.data import atomic_numbers
from scipy.spatial import cKDTree

from .crystal import FORMAL_CHARGES, bulk_coordination, check_material, lattice_constant_of, nearest_neighbour_distance
from .shapes import CENTERS, SHAPE_FACETS, _circumradius, check_shape, crystal_block, crystal_origin, shape_diameter

#: Centres tried by ``center='auto'``, in order of preference on ties.
AUTO_CENTERS: tuple[str, ...] = CENTERS
#: How ``center='auto'`` ranks the candidate cores: nearest diameter first, or fewest under-coordinated atoms of the
#: species the ligand does not bind first.
PREFERENCES: tuple[str, ...] = ('size', 'coordination')
#: Shapes whose polar {111} facets are all of one termination: with ``center='auto'`` they face the ligand.
POLAR_SHAPES: tuple[str, ...] = ('tetrahedron', 'truncated_tetrahedron')


def ligand_facing_swap(material: str, shape: str, binder: str) -> bool:
    """Whether ``center='auto'`` carves ``shape`` from the sublattice-swapped crystal so that its large polar {111}
    facets are terminated by the species the ligand binds.

    The ``tetrahedron`` and ``truncated_tetrahedron`` of :mod:`~.shapes` have cation-terminated (111) facets (along
    the cation bonds), right for X-type ligands on the cations. For H (on the anions) the same facets would carry
    bare cation dangling bonds and make every core above ~2.5 nm cation-rich (the facet cations outnumber the edge
    and vertex anions), so no number of H brings it to charge 0. On zincblende, exchanging the sublattices is the
    crystal's inversion: the swapped carve is the tetrahedron bounded by the anion-terminated (−1−1−1) facets,
    each surface anion with three core bonds and one H.
    """
    return binder == 'anion' and shape in POLAR_SHAPES and check_material(material)[0] == 'zincblende'


@dataclass(frozen=True)
class CoreChoice:
    """A candidate core: centre, trim, carve diameter (Å, the recipe ``diameter`` that carves it with this centre
    and trim), core diameter (Å), formula, net charge (e), free ligand sites and the bare atoms of the species the
    ligand does not bind."""

    center: str
    trim: int
    carve_diameter: float
    core_diameter: float
    formula: str
    n_atoms: int
    core_charge: int
    free_sites: int
    bare: int
    free_bonds: int = 0

    def reaches(self, charge: int, z: int, min_ligands: int = 0, passivation: str = 'sites') -> bool:
        """Whether ``min_ligands`` or more ligands of charge ``z`` (e) bring the core to ``charge``: one per free site,
        or, with ``passivation='complete'``, covering every dangling bond (between one ligand per free site and one
        per dangling bond, see :mod:`~.complete`)."""
        needed = (charge - self.core_charge) * z
        if passivation == 'complete':
            return max(min_ligands, self.free_sites) <= needed <= self.free_bonds
        return min_ligands <= needed <= self.free_sites


def _formula(counts: dict[str, int]) -> str:
    return ''.join(f'{el}{n}' for el, n in sorted(counts.items()) if n)


def scan_cores(material: str, diameter: float, tolerance: float, shape: str = 'sphere', binder: str = 'cation',
               accept=None, lattice_constant: float | None = None, min_core_bonds: int = 2, trims=None,
               centers=AUTO_CENTERS, swapped: bool = False, every: bool = False) -> list[CoreChoice]:
    """For each centre and trim, the accepted cores nearest ``diameter`` (Å) from below and from above (with
    ``every``: all accepted distinct cores), with core diameters within ``tolerance`` (Å) of it.

    :param binder: the species the ligand binds (``'cation'`` for X-type ligands, ``'anion'`` for H), in the final
        labelling (after the sublattice swap when ``swapped``); the trim thins out the other species.
    :param accept: ``accept(choice) -> bool`` (default: every core).
    :param trims: the trims to try (default: :func:`auto_trims`).
    """
    check_shape(shape)
    trims = auto_trims(material, min_core_bonds) if trims is None else tuple(trims)
    accept = accept or (lambda choice: True)
    carve_max = 1.25 * (diameter + tolerance) + 4 * nearest_neighbour_distance(material, lattice_constant)
    for _ in range(4):
        results, complete = _scan(material, diameter, tolerance, carve_max, shape, binder, accept, lattice_constant,
                                  min_core_bonds, trims, centers, swapped, every)
        if complete:
            break
        carve_max *= 1.5
    return results


def auto_trims(material: str, min_core_bonds: int = 2) -> tuple[int, ...]:
    """The trims ``center='auto'`` tries: zincblende ``min_core_bonds`` to 3 (to 4 with ``min_core_bonds=1``: no
    zincblende core keeps four bonds on every anion while every cation keeps two), rock salt ``min_core_bonds`` to
    ``min_core_bonds + 2``."""
    kind = check_material(material)[0]
    if kind == 'zincblende':
        top = bulk_coordination(kind) if min_core_bonds == 1 else max(min_core_bonds, 3)
    else:
        top = min(min_core_bonds + 2, bulk_coordination(kind))
    return tuple(range(min_core_bonds, top + 1))


def _scan(material, diameter, tolerance, carve_max, shape, binder, accept, lattice_constant, min_core_bonds, trims,
          centers, swapped, every=False) -> tuple[list[CoreChoice], bool]:
    """The scan of :func:`scan_cores` over carves up to ``carve_max`` (Å); ``complete`` unless some centre and trim
    may have accepted cores from larger carves."""
    kind, cation, anion, _ = check_material(material)
    a = lattice_constant_of(material, lattice_constant)
    bond = nearest_neighbour_distance(material, lattice_constant)
    low, high = diameter - tolerance, diameter + tolerance
    stretch = 1.0 if shape == 'sphere' else _circumradius(shape) / SHAPE_FACETS[shape][1].min()
    margin = 2 * stretch * 1.2 * bond + 0.1  # a neighbour of a carved atom lies within this much more carve size
    block = crystal_block(material, (carve_max + margin) / 2 + 2 * bond, lattice_constant)
    is_cation = block.numbers == atomic_numbers[cation]
    if swapped:
        is_cation = ~is_cation
    elements = (cation, anion)  # a swap exchanges the sites, not the elements of each role
    bulk = bulk_coordination(kind)
    results: list[CoreChoice] = []
    complete = True
    for center in centers:
        positions = block.positions - crystal_origin(block, material, center, a)
        sd = shape_diameter(positions, shape)
        near = np.where(sd <= carve_max + margin)[0]
        near = near[np.argsort(sd[near], kind='stable')]
        pos, sd, cat_of = positions[near], sd[near], is_cation[near]
        binder_of = cat_of if binder == 'cation' else ~cat_of
        charge_of = np.where(cat_of, FORMAL_CHARGES[elements[0]], FORMAL_CHARGES[elements[1]])
        pairs = cKDTree(pos).query_pairs(1.1 * bond, output_type='ndarray')
        pairs = pairs[np.argsort(pairs.max(1), kind='stable')]
        pair_end = pairs.max(1)
        n = len(pos)
        thresholds = np.unique(np.round(sd[sd <= carve_max], 6))
        thresholds = thresholds[thresholds >= low - 1e-6]  # a core is never wider than its carve
        if not len(thresholds):
            continue
        for trim in trims:
            minima = np.where(binder_of, min_core_bonds, min(trim, bulk))
            cache: dict[int, tuple] = {}

            def core_at(index, minima=minima, cache=cache):
                """(n carved, alive mask, core bond counts, core diameter) of the carve at ``thresholds[index]``."""
                if index not in cache:
                    n_t = int(np.searchsorted(sd, thresholds[index] + 1e-6, 'right'))
                    p = pairs[:int(np.searchsorted(pair_end, n_t, 'left'))]
                    alive = np.ones(n_t, bool)
                    while True:
                        cn = np.bincount(p[alive[p[:, 0]] & alive[p[:, 1]]].ravel(), minlength=n_t)
                        bad = alive & (cn < minima[:n_t])
                        if not bad.any():
                            break
                        alive &= ~bad
                    core_pos = pos[:n_t][alive]
                    core_d = 2 * float(np.linalg.norm(core_pos - core_pos.mean(0), axis=1).max()) if alive.any() \
                        else -1.0
                    cache[index] = (n_t, alive, cn, core_d)
                return cache[index]

            def first_at_least(value):
                """The first threshold index whose core diameter is >= value (cores grow with the carve)."""
                lo, hi = 0, len(thresholds)
                while lo < hi:
                    mid = (lo + hi) // 2
                    if core_at(mid)[3] >= value - 1e-6:
                        hi = mid
                    else:
                        lo = mid + 1
                return lo

            def choice_at(index):
                n_t, alive, cn, core_d = core_at(index)
                inside = np.zeros(n, bool)
                inside[:n_t] = alive
                edge = pairs[inside[pairs[:, 0]] ^ inside[pairs[:, 1]]]
                owner = np.where(inside[edge[:, 0]], edge[:, 0], edge[:, 1])
                site = np.where(inside[edge[:, 0]], edge[:, 1], edge[:, 0])
                free = len(np.unique(site[binder_of[owner]]))
                free_bonds = int(binder_of[owner].sum())
                # the carve diameter: halfway to the next distinct threshold, so that carve_core gives this core
                t = thresholds[index]
                upper = thresholds[index + 1] if index + 1 < len(thresholds) else t + 0.02
                carve = float(np.floor((t + upper) / 2 * 100) / 100)
                if not t + 1e-4 <= carve < upper - 1e-4:
                    carve = float(t)
                core_cat = cat_of[:n_t][alive]
                counts = {elements[0]: int(core_cat.sum()), elements[1]: int((~core_cat).sum())}
                return CoreChoice(center=center, trim=int(trim), carve_diameter=carve,
                                  core_diameter=round(core_d, 4), formula=_formula(counts), n_atoms=int(alive.sum()),
                                  core_charge=int(charge_of[:n_t][alive].sum()), free_sites=free,
                                  bare=int((alive & ~binder_of[:n_t] & (cn < bulk)).sum()), free_bonds=free_bonds)

            start = first_at_least(diameter)
            # upwards: the first accepted distinct core within `high`; downwards: the same within `low` (with
            # `every`: all accepted distinct cores on both sides)
            seen = set()
            for step, stop in ((1, len(thresholds)), (-1, -1)):
                index = start if step == 1 else start - 1
                while index != stop:
                    n_t, alive, _, core_d = core_at(index)
                    if core_d < 0 or core_d < low - 1e-6 or core_d > high + 1e-6:
                        break
                    count = int(alive.sum())
                    if count not in seen:
                        seen.add(count)
                        choice = choice_at(index)
                        if accept(choice):
                            first = first_at_least(core_d)  # record the smallest carve that gives this core
                            if first < index and int(core_at(first)[1].sum()) == count:
                                choice = choice_at(first)
                            results.append(choice)
                            if not every:
                                break
                    index += step
            last = core_at(len(thresholds) - 1)
            if 0 <= last[3] <= high + 1e-6:
                complete = False  # larger carves may still give cores within the tolerance
    return results, complete


def check_prefer(prefer: str) -> str:
    """``prefer`` after checking it is one of :data:`PREFERENCES`."""
    if prefer not in PREFERENCES:
        raise ValueError(f'prefer must be one of {list(PREFERENCES)}, got {prefer!r}')
    return prefer


def rank_cores(choices: list[CoreChoice], diameter: float, prefer: str = 'size') -> list[CoreChoice]:
    """``choices`` ordered best first: nearest diameter (to 0.01 Å), fewest bare atoms, smaller trim, centre order;
    with ``prefer='coordination'`` fewest bare atoms before nearest diameter."""
    order = {c: i for i, c in enumerate(AUTO_CENTERS)}
    if check_prefer(prefer) == 'coordination':
        return sorted(choices, key=lambda c: (c.bare, round(abs(c.core_diameter - diameter), 2), c.trim,
                                              order[c.center]))
    return sorted(choices, key=lambda c: (round(abs(c.core_diameter - diameter), 2), c.bare, c.trim,
                                          order[c.center]))


def choose_cores(material: str, diameter: float, shape: str = 'sphere', binder: str = 'cation', z: int = -1,
                 charge: int = 0, lattice_constant: float | None = None, min_core_bonds: int = 2, trims=None,
                 centers=AUTO_CENTERS, swapped: bool = False, ligand: str = 'F', check_charge: bool = True,
                 min_ligands: int = 0, prefer: str = 'size', passivation: str = 'sites') -> list[CoreChoice]:
    """The candidate cores for ``center='auto'``, best first (see the module docstring).

    :param z: charge of one ligand (e); with ``check_charge`` only cores the ligands bring to ``charge`` are kept.
    :param min_ligands: prefer cores that take at least this many ligands (those taking fewer are the fallback).
    :param prefer: ``'size'`` (nearest diameter first) or ``'coordination'`` (every core within the tolerance, the
        fewest under-coordinated atoms of the species the ligand does not bind first).
    :param passivation: ``'sites'`` (one ligand per free site) or ``'complete'`` (every dangling bond covered,
        :mod:`~.complete`): which ligand counts reach ``charge``.
    :raises ValueError: naming the diameter, the nearest diameters that work and, when cores of about the requested
        size exist but the ligand cannot bring them to ``charge``, why (the ligands needed and the free sites).
    """
    check_prefer(prefer)
    if not diameter > 0:
        raise ValueError(f'diameter must be positive, got {diameter!r}')
    every = prefer == 'coordination'
    bond = nearest_neighbour_distance(material, lattice_constant)
    tolerance = bond + 0.01

    def accept(choice):
        return not check_charge or choice.reaches(charge, z, passivation=passivation)

    def preferred(choice):
        return not check_charge or choice.reaches(charge, z, min_ligands, passivation)

    good = scan_cores(material, diameter, tolerance, shape, binder, preferred, lattice_constant, min_core_bonds,
                      trims, centers, swapped, every)
    if min_ligands and good:
        return rank_cores(good, diameter, prefer)
    good += scan_cores(material, diameter, tolerance, shape, binder, accept, lattice_constant, min_core_bonds,
                       trims, centers, swapped, every)
    if good:
        return rank_cores(list(dict.fromkeys(good)), diameter, prefer)
    # nothing within one bond length: name the nearest core diameters that work, and why the near ones do not
    wider = scan_cores(material, diameter, max(diameter, 6 * bond), shape, binder, accept, lattice_constant,
                       min_core_bonds, trims, centers, swapped)
    sizes = sorted({round(c.core_diameter, 1) for c in wider})
    brings = 'passivates completely at' if passivation == 'complete' else 'brings to'
    what = f'{material} {shape} core' + (f' that {ligand} {brings} charge {charge}' if check_charge else '')
    why = _why_not(material, diameter, tolerance, shape, binder, lattice_constant, min_core_bonds, trims, centers,
                   swapped, charge, z, ligand, passivation) if check_charge else ''
    if not sizes:
        advice = '' if passivation == 'complete' else '; choose center and trim explicitly'
        raise ValueError(f'no {what} near {diameter:g} Å{advice}{why}')
    if diameter < sizes[0]:
        raise ValueError(f'diameter {diameter:g} Å is below the smallest {what} ({sizes[0]:.1f} Å core diameter); '
                         f'use at least {sizes[0] - bond:.1f} Å{why}')
    below = [s for s in sizes if s < diameter]
    above = [s for s in sizes if s > diameter]
    nearest = ' and '.join(f'{s:.1f} Å' for s in (below[-1:] + above[:1]))
    raise ValueError(f'no {what} has a core diameter within one bond length ({bond:.2f} Å) of {diameter:g} Å; '
                     f'nearest core diameters: {nearest}{why}')


def _why_not(material, diameter, tolerance, shape, binder, lattice_constant, min_core_bonds, trims, centers, swapped,
             charge, z, ligand, passivation='sites') -> str:
    """Why the core nearest ``diameter`` (any charge) cannot be brought to ``charge``: '' when there is none."""
    near = scan_cores(material, diameter, tolerance, shape, binder, None, lattice_constant, min_core_bonds, trims,
                      centers, swapped)
    if not near:
        return ''
    core = min(near, key=lambda c: (round(abs(c.core_diameter - diameter), 2), c.n_atoms, c.formula))
    needed = (charge - core.core_charge) * z
    head = f'; the nearest core, {core.formula} ({core.core_diameter:.1f} Å), carries {core.core_charge:+d} e'
    if needed < 0:
        return f'{head} and each {ligand} adds {z:+d} e, so no number of {ligand} reaches {charge}'
    if passivation == 'complete':
        return (f'{head}: it needs {needed} {ligand} but covering its {core.free_bonds} {binder} dangling bonds takes '
                f'{core.free_sites} to {core.free_bonds}')
    return (f'{head}: it needs {needed} {ligand} but has {core.free_sites} free {binder} sites (one ligand per '
            f'empty lattice site)')
