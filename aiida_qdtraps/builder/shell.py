"""Core@shell growth with an abrupt or alloyed interface, surface reconstruction and non-stoichiometric variants.

Pure functions on :class:`ase.Atoms`; no AiiDA import. Lengths in Å, charges in e.

Growth (Llusar et al.): the shell is grown epitaxially, pseudomorphic on the core lattice (the core's bond length is
kept; InAs/CdSe mismatch 0.3 %, InP/ZnSe 3.4 %), one bond layer at a time: every lattice site bonded to the
cluster along a missing lattice bond is added. One monolayer (ML) is two bond layers (a cation and an anion
layer). The first ML is the ``interlayer`` domain: plain shell material for an abrupt interface, or for an alloyed
one core and shell atoms mixed at random (``seed``) with a fraction of its cation sites left empty
(cation-vacancy pattern, spread evenly), which lowers the number of ligands charge balance needs; or, for an
``'ordered'`` one, core and shell atoms and cation vacancies on the ⟨111⟩-(2×2) pattern of
:func:`ordered_interlayer`.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from .crystal import TETRAHEDRAL, check_material
from .passivation import (
    adjust_charge,
    core_bond_length,
    farthest_point_order,
    missing_bonds,
    passivate,
    remove_atoms,
)
from .roles import DOMAIN_DTYPE, ROLE_DTYPE, roles_of
from .shapes import bond_counts

INTERLAYERS = ('abrupt', 'alloyed', 'ordered')
#: Labels of :func:`ordered_interlayer`.
ORDERED_LABELS = ('shell', 'core', 'vacancy')


def _plane_basis(normal: np.ndarray) -> np.ndarray:
    """Columns u1, u2, w (units of a/2): two fcc vectors in the {111} plane of ``normal`` (±1 entries) and one
    out of it; a primitive basis of the fcc lattice (determinant ±2, the volume of its primitive cell)."""
    t = np.rint(np.sign(normal)).astype(int)
    return (np.diag(t) @ np.array([[1, 0, 1], [-1, 1, 1], [0, -1, 0]])).astype(float)


def ordered_interlayer(positions: np.ndarray, roles: np.ndarray, centre: np.ndarray, bond: float,
                       cation_origin: np.ndarray, anion_origin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ⟨111⟩-(2×2) pattern of an ordered interlayer: per lattice site ``'vacancy'``, ``'core'`` (the core
    material's element) or ``'shell'``, and the ±⟨111⟩ direction it faces.

    Each site faces the ±⟨111⟩ direction (the eight cation-bond directions ``TETRAHEDRAL`` and their negatives)
    nearest its direction from ``centre``; in that direction's {111} lattice planes every site has coordinates
    (α, β, γ) on the fcc basis of :func:`_plane_basis` (γ numbers the plane), and the sites with α and β both even
    form a (2×2) superlattice of the plane: one site in four, neighbours at twice the in-plane site spacing
    (√2·a instead of a/√2). Those sites are (Llusar et al.'s interface pattern, after Chadi's vacancy-induced
    (2×2) reconstruction of polar {111} zincblende surfaces):

    * cation sites facing a (111) direction (``TETRAHEDRAL``, over the core's cation-terminated facets): vacancies;
    * cation sites facing a (-1-1-1) direction: the core cation (In on the shell's Cd sites);
    * anion sites: the core anion (As on the shell's Se sites).

    All other sites are shell sites. A quarter of the cation sites facing (111) are empty and a quarter of those
    facing (-1-1-1) hold the core cation; a quarter of the anion sites hold the core anion.

    :param positions: site positions (Å); ``roles``: ``'cation'`` or ``'anion'`` per site.
    :param cation_origin, anion_origin: one lattice site of each sublattice (Å), e.g. a core atom.
    :returns: ``(labels, facing)``, ``facing`` the unit ±⟨111⟩ vector of each site.
    """
    positions = np.asarray(positions, float)
    roles = np.asarray(roles)
    half = 2 * bond / np.sqrt(3)  # a/2
    outward = positions - centre
    projections = outward @ TETRAHEDRAL.T
    family = np.argmax(np.abs(projections), axis=1)
    sign = np.sign(projections[np.arange(len(positions)), family])
    sign[sign == 0] = 1
    facing = TETRAHEDRAL[family] * sign[:, None]
    origin = np.where((roles == 'cation')[:, None], cation_origin, anion_origin)
    lattice = (positions - origin) / half
    m = np.rint(lattice)
    if len(m) and np.abs(lattice - m).max() > 0.1:
        raise ValueError('the interlayer sites are not on the lattice of the given origins')
    labels = np.full(len(positions), 'shell', dtype='<U8')
    for k, normal in enumerate(TETRAHEDRAL):
        on = family == k
        if not on.any():
            continue
        coefficients = np.rint(np.linalg.solve(_plane_basis(normal), m[on].T).T).astype(int)
        superlattice = (coefficients[:, 0] % 2 == 0) & (coefficients[:, 1] % 2 == 0)
        idx = np.flatnonzero(on)[superlattice]
        labels[idx[roles[idx] == 'anion']] = 'core'
        cation = idx[roles[idx] == 'cation']
        labels[cation[sign[cation] > 0]] = 'vacancy'
        labels[cation[sign[cation] < 0]] = 'core'
    return labels, facing


def _unique_points(points: np.ndarray, tolerance: float) -> np.ndarray:
    """Indices of the first point of each cluster of points closer than ``tolerance`` (Å)."""
    pairs = cKDTree(points).query_pairs(tolerance, output_type='ndarray')
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(points), len(points)))
    _, labels = connected_components(graph, directed=False)
    _, first = np.unique(labels, return_index=True)
    return np.sort(first)


def grow_layers(qd: Atoms, n_layers: int, last_layer: str = 'both') -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lattice sites of ``n_layers`` bond layers around the inorganic atoms of ``qd`` (ligands ignored).

    :param last_layer: ``'cation'`` keeps only the cation sites of the outermost layer (a cation-terminated
        surface, the one X-type ligands passivate), ``'both'`` keeps all.

    :returns: ``(positions, roles, layer)``: role ``'cation'``/``'anion'`` of each new site (opposite to the atom it
        grows from) and its layer number (1 = bonded to the input atoms).
    """
    roles = roles_of(qd)
    inorganic = qd[roles != 'ligand']
    inorganic.arrays['qd_role'] = roles[roles != 'ligand']
    bond = core_bond_length(inorganic)
    positions, new_roles, layers = [np.zeros((0, 3))], [np.zeros(0, dtype=ROLE_DTYPE)], [np.zeros(0, dtype=int)]
    current = inorganic
    for layer in range(1, n_layers + 1):
        owners, directions = missing_bonds(current, 'all', bond=bond)
        if not len(owners):
            break
        sites = current.positions[owners] + bond * directions
        keep = _unique_points(sites, 0.2 * bond)
        sites, grown_from = sites[keep], current.arrays['qd_role'][owners[keep]]
        site_roles = np.where(grown_from == 'cation', 'anion', 'cation').astype(ROLE_DTYPE)
        if layer == n_layers and last_layer == 'cation':
            sites, site_roles = sites[site_roles == 'cation'], site_roles[site_roles == 'cation']
        positions.append(sites)
        new_roles.append(site_roles)
        layers.append(np.full(len(sites), layer))
        added = Atoms(['X'] * len(sites), positions=sites)
        added.arrays['qd_role'] = site_roles
        roles_now = np.concatenate([current.arrays['qd_role'], site_roles])
        current = current + added
        current.arrays['qd_role'] = roles_now
    return np.vstack(positions), np.concatenate(new_roles), np.concatenate(layers)


def grow_shell(core: Atoms, core_material: str, shell_material: str, monolayers: int = 1,
               interlayer: str = 'abrupt', ligand: str = 'Cl', charge: int = 0, seed: int = 0,
               mixing: float = 0.5, cation_vacancies: float = 0.25, arrangement: int = 0,
               termination: str = 'cation') -> Atoms:
    """Grow ``monolayers`` ML of ``shell_material`` on the inorganic atoms of ``core`` and passivate the surface.

    :param core: a builder-made core (ligands, if any, are dropped) of ``core_material``.
    :param interlayer: ``'abrupt'``, ``'alloyed'`` or ``'ordered'`` (see the module docstring and
        :func:`ordered_interlayer`; ``seed``, ``mixing`` and ``cation_vacancies`` do not apply to ``'ordered'``).
    :param mixing: alloyed interlayer: probability that a site takes the core element instead of the shell one.
    :param cation_vacancies: alloyed interlayer: at most this fraction of its cation sites is left empty (spread
        evenly); fewer (the most found by bisection) when the ligands could not otherwise reach ``charge``.
    :param termination: ``'cation'``: the outermost bond layer holds cations only (X-type ligands then balance the
        charge); ``'both'``: cation and anion sites (anion-rich surfaces, e.g. for H).
    :returns: the core@shell QD with ``qd_domain`` core / interlayer / shell / ligand and ``qd_role`` arrays.
    """
    core_kind, core_cation, core_anion, _ = check_material(core_material)
    shell_kind, shell_cation, shell_anion, _ = check_material(shell_material)
    if shell_kind != core_kind:
        raise ValueError(f'shell {shell_material!r} ({shell_kind}) cannot grow epitaxially on a {core_kind} core '
                         f'{core_material!r}; choose a {core_kind} shell')
    if not isinstance(monolayers, (int, np.integer)) or not 1 <= monolayers <= 10:
        raise ValueError(f'monolayers must be an integer from 1 to 10, got {monolayers!r}')
    if interlayer not in INTERLAYERS:
        raise ValueError(f'interlayer must be one of {list(INTERLAYERS)}, got {interlayer!r}')
    for name, value in (('mixing', mixing), ('cation_vacancies', cation_vacancies)):
        if not 0 <= value < 1:
            raise ValueError(f'{name} must be in [0, 1), got {value!r}')
    roles = roles_of(core)
    inner = core[roles != 'ligand']
    inner.arrays['qd_role'] = roles[roles != 'ligand']
    inner.arrays['qd_domain'] = np.full(len(inner), 'core', dtype=DOMAIN_DTYPE)
    if termination not in ('cation', 'both'):
        raise ValueError(f"termination must be 'cation' or 'both', got {termination!r}")
    positions, site_roles, layers = grow_layers(inner, 2 * monolayers, termination)
    domains = np.where(layers <= 2, 'interlayer', 'shell').astype(DOMAIN_DTYPE)
    symbols = np.where(site_roles == 'cation', shell_cation, shell_anion).astype('<U2')
    vacancy_order = np.zeros(0, dtype=int)
    if interlayer == 'alloyed':
        rng = np.random.default_rng(seed)
        mixed = domains == 'interlayer'
        from_core = mixed & (rng.random(len(positions)) < mixing)
        symbols[from_core] = np.where(site_roles[from_core] == 'cation', core_cation, core_anion)
        cation_sites = np.where(mixed & (site_roles == 'cation'))[0]
        n_max = round(cation_vacancies * len(cation_sites))
        vacancy_order = cation_sites[farthest_point_order(positions[cation_sites], n_max)]
    bond = core_bond_length(inner)
    pattern_vacancies = np.zeros(0, dtype=int)
    if interlayer == 'ordered':
        mixed = np.flatnonzero(domains == 'interlayer')
        first = {role: inner.positions[np.flatnonzero(inner.arrays['qd_role'] == role)[0]]
                 for role in ('cation', 'anion')}
        labels, _ = ordered_interlayer(positions[mixed], site_roles[mixed], inner.positions.mean(0), bond,
                                       first['cation'], first['anion'])
        from_core = mixed[labels == 'core']
        symbols[from_core] = np.where(site_roles[from_core] == 'cation', core_cation, core_anion)
        pattern_vacancies = mixed[labels == 'vacancy']

    def assemble(n_empty: int) -> Atoms:
        keep = np.ones(len(positions), bool)
        keep[vacancy_order[:n_empty]] = False
        keep[pattern_vacancies] = False
        shell = Atoms(list(symbols[keep]), positions=positions[keep])
        qd = inner + shell
        qd.arrays['qd_role'] = np.concatenate([inner.arrays['qd_role'], site_roles[keep]]).astype(ROLE_DTYPE)
        qd.arrays['qd_domain'] = np.concatenate([inner.arrays['qd_domain'], domains[keep]]).astype(DOMAIN_DTYPE)
        fixed = qd.arrays['qd_domain'] == 'core'  # grown atoms with fewer than 2 bonds are pruned, the core kept
        while True:
            weak = (bond_counts(qd.positions, 1.1 * bond) < 2) & ~fixed
            if not weak.any():
                return qd
            qd, fixed = qd[~weak], fixed[~weak]

    def attempt(n_empty: int) -> Atoms | None:
        try:
            return passivate(assemble(n_empty), ligand, charge, arrangement=arrangement)
        except ValueError as exc:
            if not str(exc).startswith('cannot reach charge'):
                raise
            return None

    # alloyed: as many interlayer cation vacancies (up to the fraction) as still let the ligands reach the charge;
    # each vacancy lowers the charge, so the feasible counts are found by bisection from the full fraction down
    best = attempt(len(vacancy_order))
    if best is not None:
        return best
    low, high = -1, len(vacancy_order)  # attempt(high) failed; low: the largest count known to work (-1: none)
    best = attempt(0) if len(vacancy_order) else None
    if best is None:
        passivate(assemble(0), ligand, charge, arrangement=arrangement)  # raises the error naming the charge
    low = 0
    while high - low > 1:
        middle = (low + high) // 2
        result = attempt(middle)
        if result is None:
            high = middle
        else:
            low, best = middle, result
    return best


def reconstruct_surface(qd: Atoms, fraction: float = 2 / 3, facet: str | None = '-1-1-1',
                        substituent: str = 'Cl', charge: int | None = None, ligand: str | None = None) -> Atoms:
    """Replace ``fraction`` of the 3-coordinate anions without ligand by ``substituent`` (Llusar et al.: 3c-As → 3c-Cl).

    :param facet: Miller indices of the facet, e.g. ``'-1-1-1'`` (the anion-rich facets of a zincblende truncated
        tetrahedron; its symmetry-equivalent facets are included), or None for every 3-coordinate anion.
    :param charge: when given, restore this net charge afterwards with ``ligand`` (default: the predominant one);
        when None (a bare core about to be passivated), leave the charge.
    :returns: the QD; substituted atoms get role and domain ``'ligand'``.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f'fraction must be in (0, 1], got {fraction!r}')
    roles = roles_of(qd)
    owners, directions = missing_bonds(qd, 'anion', roles)
    counts = np.bincount(owners, minlength=len(qd))
    if facet is not None:
        normal = _miller(facet)
        normal /= np.linalg.norm(normal)
        # the facet's family: signed permutations of its normal, with the same parity for the polar {111} facets
        family = np.all(np.isclose(np.sort(np.abs(directions), axis=1), np.sort(np.abs(normal))), axis=1)
        on_facet = family & ((_parity(directions) == _parity(normal)) | (_parity(normal) == 0))
        candidates = np.unique(owners[(counts[owners] == 1) & on_facet])
    else:
        candidates = np.unique(owners[counts[owners] == 1])
    if not len(candidates):
        raise ValueError(f'no 3-coordinate anion on facet {facet!r} of {qd.get_chemical_formula()}')
    n = max(1, round(fraction * len(candidates)))
    chosen = np.sort(candidates[farthest_point_order(qd.positions[candidates], n)])
    result = qd.copy()
    symbols = np.array(result.get_chemical_symbols())
    symbols[chosen] = substituent
    result.set_chemical_symbols(list(symbols))
    result.arrays['qd_role'] = roles.copy()
    result.arrays['qd_role'][chosen] = 'ligand'
    domains = np.asarray(result.arrays.get('qd_domain', np.full(len(result), 'core'))).astype(DOMAIN_DTYPE)
    domains[chosen] = 'ligand'
    result.arrays['qd_domain'] = domains
    if charge is not None:
        result = adjust_charge(result, charge, ligand=ligand)
    return result


def _miller(facet: str) -> np.ndarray:
    """'-1-1-1' / '111' / '1 0 0' → an integer vector."""
    import re

    digits = re.findall(r'-?\d', facet.replace(' ', ''))
    if len(digits) != 3 or not any(int(d) for d in digits):
        raise ValueError(f'facet must be three Miller indices such as "111" or "-1-1-1", got {facet!r}')
    return np.array([int(d) for d in digits], dtype=float)


def _parity(vectors: np.ndarray) -> np.ndarray:
    """Sign of the product of the components: separates {111} (+) from {-1-1-1} (−) tetrahedral facets."""
    return np.sign(np.prod(np.round(vectors, 6), axis=-1))


def swap_sublattices(core: Atoms) -> Atoms:
    """Exchange the cation and anion elements (Bhati et al.: Cd-rich cluster from the Se-rich one, Cd/Se swapped)."""
    roles = roles_of(core)
    symbols = np.array(core.get_chemical_symbols())
    cation_elements, anion_elements = set(symbols[roles == 'cation']), set(symbols[roles == 'anion'])
    if len(cation_elements) != 1 or len(anion_elements) != 1:
        raise ValueError(f'swapping needs a single cation and anion element, got {sorted(cation_elements)} and '
                         f'{sorted(anion_elements)}')
    (cation,), (anion,) = cation_elements, anion_elements
    swapped = remove_atoms(core, np.where(roles == 'ligand')[0])
    inorganic_roles = roles[roles != 'ligand']
    symbols = np.where(inorganic_roles == 'cation', anion, cation)
    swapped.set_chemical_symbols(list(symbols))
    swapped.arrays['qd_role'] = np.where(inorganic_roles == 'cation', 'anion', 'cation').astype(ROLE_DTYPE)
    return swapped
