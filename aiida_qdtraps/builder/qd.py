"""One-call QD recipes: carve → (swap, reconstruct) → shell or passivation → (vacancy) → box; plus the QD report.

Pure functions on :class:`ase.Atoms`; no AiiDA import. Lengths in Å (the recipe's ``diameter`` too), charges in e.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms

from .autocore import check_prefer, choose_cores, ligand_facing_swap
from .complete import check_halide, check_passivation, passivate_complete
from .crystal import check_material
from .named import build_model, check_model
from .passivation import check_binding, check_ligand, net_charge, passivate
from .perovskite import PEROVSKITES, build_nanocube
from .roles import bonded_pairs, roles_of
from .shapes import CENTERS, DEFAULT_FACETS, WULFF, carve_core, check_facets, check_trim, resolve_shape
from .shell import grow_shell, reconstruct_surface, swap_sublattices
from .vacancies import VACANCY_KINDS, make_vacancy

STOICHIOMETRIES = ('default', 'swapped')
#: The carve centres a recipe may name: ``'auto'`` (the default) or one of :data:`~.shapes.CENTERS`.
RECIPE_CENTERS: tuple[str, ...] = ('auto', *CENTERS)
#: How many of the ranked automatic cores are tried before giving up (shells, reconstructions).
_AUTO_ATTEMPTS = 8


@dataclass(frozen=True)
class QdReport:
    """Summary of a built QD: composition, net charge (e), coordination histogram per element, diameter (Å).

    ``domains`` maps each domain present (core, interlayer, shell, ligand) to its chemical formula; ``build`` holds
    the resolved carve (``center``, ``trim``, ``carve_diameter`` and ``core_diameter`` in Å) of a builder-made QD.
    """

    formula: str
    n_atoms: int
    net_charge: int
    diameter: float
    coordination: dict[str, dict[int, int]]
    domains: dict[str, str] = field(default_factory=dict)
    build: dict = field(default_factory=dict)


def core_diameter(atoms: Atoms) -> float:
    """Diameter (Å) of a core: twice the largest distance of an atom from the centroid (0 for a single atom)."""
    if len(atoms) < 2:
        return 0.0
    return 2 * float(np.linalg.norm(atoms.positions - atoms.positions.mean(0), axis=1).max())


def put_in_box(atoms: Atoms, vacuum: float) -> Atoms:
    """Centre a cluster in a cubic, non-periodic box with at least ``vacuum`` Å on every side."""
    if not vacuum > 0:
        raise ValueError(f'vacuum must be positive, got {vacuum!r}')
    boxed = atoms.copy()
    extent = boxed.positions.max(0) - boxed.positions.min(0)
    length = float(np.ceil(extent.max() + 2 * vacuum))
    boxed.set_cell([length] * 3)
    boxed.pbc = False
    boxed.translate(0.5 * length - 0.5 * (boxed.positions.max(0) + boxed.positions.min(0)))
    return boxed


def describe(atoms: Atoms, bond_scale: float = 1.25) -> QdReport:
    """Composition, net charge, coordination histogram per element, domains and diameter of a QD.

    Bonds: distance < ``bond_scale`` × sum of covalent radii. Diameter: twice the largest distance from the centroid.
    """
    cn = np.bincount(bonded_pairs(atoms, bond_scale).ravel(), minlength=len(atoms))
    hist: dict[str, dict[int, int]] = {}
    for sym, c in zip(atoms.get_chemical_symbols(), cn):
        hist.setdefault(sym, {}).setdefault(int(c), 0)
        hist[sym][int(c)] += 1
    hist = {sym: dict(sorted(h.items())) for sym, h in hist.items()}
    diameter = core_diameter(atoms)
    domains = {}
    if 'qd_domain' in atoms.arrays:
        for domain in ('core', 'interlayer', 'shell', 'ligand'):
            mask = atoms.arrays['qd_domain'] == domain
            if mask.any():
                domains[domain] = atoms[mask].get_chemical_formula()
    return QdReport(atoms.get_chemical_formula(), len(atoms), net_charge(atoms), diameter, hist, domains,
                    dict(atoms.info.get('qd_build', {})))


def build_qd(material: str, diameter: float | None = None, ligand: str | None = None, charge: int = 0,
             center: str = 'auto',
             vacuum: float = 5.0, lattice_constant: float | None = None, min_core_bonds: int = 2,
             shape: str = 'sphere', stoichiometry: str = 'default', arrangement: int = 0,
             reconstruct: float | None = None, reconstruct_facet: str | None = '-1-1-1',
             shell: str | None = None, monolayers: int = 1, interlayer: str = 'abrupt',
             vacancy: str | None = None, vacancy_site: int | None = None, neutralize: bool = False,
             seed: int = 0, vacancy_min_bonds: int = 2, trim: int | None = None, model: str | None = None,
             termination: str | None = None, binding: str | None = None, facets: dict | None = None,
             prefer: str = 'size', passivation: str = 'sites') -> Atoms:
    """Carve, optionally modify, passivate and box a QD: the one-call recipe of the CLI, the calcfunction and the demo.

    The size, by centre:

    * ``center='auto'`` (default): ``diameter`` is the diameter of the **core** (twice the largest distance of a core
      atom from the core's centroid; ligands excluded). The builder takes, among the cores carved around every
      centre with every trim (:mod:`~aiida_qdtraps.builder.autocore`), the one nearest in diameter that the ligand
      brings to ``charge``; its core diameter is within one bond length of ``diameter``. X-type ligands (on the
      cations) so get cation-rich cores, H (on the anions) anion-rich ones.
    * an explicit centre: ``diameter`` is the circumscribed-sphere diameter of the carving shape (the core lies
      inside it; polyhedra lose their vertex atoms to pruning, so the core can be much smaller).

    The resolved carve is recorded in ``atoms.info['qd_build']``: ``center``, ``trim``, ``carve_diameter`` (the
    diameter that carves this core with an explicit centre, Å) and ``core_diameter`` (Å); with ``center='auto'``
    also ``stoichiometry`` when the carve's orientation differs from the recipe's (see ``stoichiometry``).

    :param material: core material, a key of :data:`~aiida_qdtraps.builder.crystal.MATERIALS`.
    :param diameter: the size (Å), see above.
    :param ligand: passivating ligand (F, Cl, Br, I, H, OAc; None: F); the QD gets exactly net ``charge`` (e).
    :param center: carve centre: ``'auto'``, ``'anion'``, ``'cation'``, ``'interstitial'`` or ``'interstitial2'``
        (see :func:`~aiida_qdtraps.builder.shapes.crystal_origin`).
    :param trim: the fewest core bonds an atom of the species the ligand does not bind keeps (anions for X-type
        ligands, cations for H); default ``min_core_bonds`` with an explicit centre, chosen with ``'auto'``.
    :param vacuum: minimum vacuum (Å) on each side of the cubic, non-periodic box.
    :param shape: sphere, tetrahedron, truncated_tetrahedron, cuboctahedron, octahedron, cube or wulff (the Wulff
        polyhedron of ``facets``).
    :param stoichiometry: ``'swapped'`` exchanges the cation and anion sublattices of the carved core (Bhati et al.:
        Cd-rich from Se-rich); the elements stay those of ``material``. On zincblende the exchange is the crystal's
        inversion. With ``center='auto'`` a ``tetrahedron`` or ``truncated_tetrahedron`` with H (on the anions) is
        carved swapped, so that its (111) facets are anion-terminated and carry the H
        (:func:`~aiida_qdtraps.builder.autocore.ligand_facing_swap`); ``'swapped'`` then gives the other
        orientation. The orientation used is recorded as ``qd_build['stoichiometry']`` when it differs from this
        argument.
    :param arrangement: 0 for the standard even ligand spread; 1, 2, ... for other arrangements on the same core.
    :param reconstruct: fraction of 3-coordinate surface anions (on ``reconstruct_facet``) replaced by Cl before
        passivation (Llusar et al. use 2/3 on {-1-1-1}).
    :param shell: shell material grown on the core (``monolayers`` ML, ``interlayer`` abrupt|alloyed|ordered,
        ``seed`` for alloyed), see :func:`~aiida_qdtraps.builder.shell.grow_shell`.
    :param vacancy: vacancy kind (ligand, anion, cation, pair) made after passivation at ``vacancy_site`` (a
        distinct-site index, or random with ``seed`` when None); ``neutralize`` restores ``charge`` afterwards.
    :param vacancy_min_bonds: the fewest inorganic bonds a neighbour of the vacancy may keep (2; 1 also accepts a
        neighbour left with one core bond plus ligands, which gives small QDs anion sites).
    :param model: a named cluster (:data:`~aiida_qdtraps.builder.named.NAMED_MODELS`: ``Cd17Se28H22``,
        ``Cd28Se17Cl22``, ``Pb19S6(OAc)26`` (acetates bridging; ``binding`` may name another)) instead of a carve;
        ``material`` must be its material, ``diameter`` and ``ligand`` may be omitted (a given ligand must be the
        model's); ``charge``, ``arrangement``, ``vacuum``, ``lattice_constant``, ``binding`` and ``seed`` apply,
        other keys must stay at their defaults.
    :param termination: for a perovskite ``material`` (CsPbBr3): ``'CsBr'`` (default) or ``'PbBr2'``; the
        nanocube (``shape='cube'``) has ``diameter`` as its edge length (n·a, rounded to whole cells), see
        :mod:`~aiida_qdtraps.builder.perovskite`; ``charge``, ``arrangement``, ``vacuum`` and ``lattice_constant``
        apply, other keys must stay at their defaults.
    :param binding: how acetate (``OAc``) binds: ``'monodentate'`` (None: the default; a named model's own
        binding), ``'chelating'``, ``'bridging'`` or ``'mixed'`` (per site, drawn with ``seed`` and
        ``arrangement``), see :func:`~aiida_qdtraps.builder.passivation.passivate`; the number of acetates is the
        same for every binding. Not with ``shell``; ligands a vacancy's ``neutralize`` adds are monodentate.
    :param facets: ``shape='wulff'`` only: surface energies of the facet families ``'100'``, ``'110'``, ``'111'``
        and, on zincblende, ``'-1-1-1'`` (default that of ``'111'``), any one unit; None: the material's
        :data:`~aiida_qdtraps.builder.shapes.DEFAULT_FACETS`. Recorded (completed) in ``qd_build['facets']``.
    :param prefer: ``center='auto'`` only: ``'size'`` (default) takes the core nearest ``diameter``;
        ``'coordination'`` the core, among all within one bond length of ``diameter``, with the fewest atoms of the
        species the ligand does not bind that lack core bonds (3-coordinate P for F/Cl on InP), then the nearest.
        With ``min_core_bonds=1`` this includes ``trim=4`` cores, whose anions are all four-coordinate (cations may
        then keep one core bond) wherever the ligand can bring them to ``charge``.
    :param passivation: ``'sites'`` (default): one ligand per empty lattice site next to the core, as many as the
        charge needs (:func:`~aiida_qdtraps.builder.passivation.passivate`). ``'complete'``: a halide (F, Cl, Br, I)
        on **every** cation dangling bond, bridging two or three cations that point at one empty site where the
        charge leaves too few halides for one each (:mod:`~aiida_qdtraps.builder.complete`); zincblende cores only,
        not with ``shell``, ``reconstruct`` or ``vacancy``. With ``center='auto'`` the cores are those with every
        anion four-coordinate (``trim=4``; cations may keep a single core bond): no atom of the QD then has fewer
        than four bonds (Alexander et al.'s "perfectly passivated" Cl⁻ cuboctahedra). A core whose halides cannot
        be placed clear of each other is passed over for the next nearest in size.
    """
    given = {key: value for key, value in locals().items() if key in RECIPE_DEFAULTS}
    if model is not None or material in PEROVSKITES:
        return _build_special(given)
    if termination is not None:
        raise ValueError(f'termination {termination!r} applies to perovskites ({sorted(PEROVSKITES)}), '
                         f'not to {material!r}')
    if diameter is None:
        raise ValueError(f'a {material} QD needs a diameter (Å), got None')
    ligand = 'F' if ligand is None else ligand
    if stoichiometry not in STOICHIOMETRIES:
        raise ValueError(f'stoichiometry must be one of {list(STOICHIOMETRIES)}, got {stoichiometry!r}')
    if vacancy is not None and vacancy not in VACANCY_KINDS:
        raise ValueError(f'unknown vacancy kind {vacancy!r}; choose one of {list(VACANCY_KINDS)}')
    if not isinstance(charge, (int, np.integer)):
        raise TypeError(f'charge must be an integer number of e, got {charge!r}')
    z, _, binder = check_ligand(ligand)
    binding = check_binding('monodentate' if binding is None else binding, ligand)
    complete = check_passivation(passivation) == 'complete'
    if complete:
        check_halide(ligand)
        if check_material(material)[0] != 'zincblende':
            raise ValueError(f"passivation 'complete' needs a zincblende core, got {material!r} "
                             f"({check_material(material)[0]})")
        clashing = {key: value for key, value in (('shell', shell), ('reconstruct', reconstruct),
                                                  ('vacancy', vacancy)) if value is not None}
        if clashing:
            raise ValueError(f"passivation 'complete' takes no {sorted(clashing)} (got {clashing})")
        if center == 'auto':
            min_core_bonds = 1
            trim = 4 if trim is None else trim
    if shell is not None and binding != 'monodentate':
        raise ValueError(f'binding {binding!r} is not available with a shell ({shell!r}); shells take monodentate '
                         f'ligands')
    if center not in RECIPE_CENTERS:
        raise ValueError(f'center must be one of {list(RECIPE_CENTERS)}, got {center!r}')
    check_trim(material, trim)
    if check_prefer(prefer) != 'size' and center != 'auto':
        raise ValueError(f"prefer {prefer!r} applies to center 'auto' only, got center {center!r}")
    kind = check_material(material)[0]
    carve_shape = resolve_shape(shape, facets, material)
    swapped = stoichiometry == 'swapped'
    if center == 'auto' and ligand_facing_swap(material, shape, binder):
        swapped = not swapped  # the polar facets face the ligand: anion-terminated for H
    # the trim acts on the species the ligand does not bind, named as carved (before a sublattice swap)
    trimmed = 'anion' if (binder == 'cation') != swapped else 'cation'

    def finish(carve_diameter: float, carve_center: str, carve_trim: int | None) -> tuple[Atoms, float]:
        core = carve_core(material, carve_diameter, shape=carve_shape, center=carve_center,
                          lattice_constant=lattice_constant, min_core_bonds=min_core_bonds, trim=carve_trim,
                          trim_species=trimmed)
        size = core_diameter(core)
        if swapped:
            core = swap_sublattices(core)
        if reconstruct is not None:
            core = reconstruct_surface(core, fraction=reconstruct, facet=reconstruct_facet)
        if shell is not None:
            return grow_shell(core, material, shell, monolayers=monolayers, interlayer=interlayer, ligand=ligand,
                              charge=charge, seed=seed, arrangement=arrangement), size
        if complete:
            return passivate_complete(core, ligand, charge=charge, arrangement=arrangement), size
        return passivate(core, ligand=ligand, charge=charge, arrangement=arrangement, binding=binding,
                         seed=seed), size

    if center == 'auto':
        plain = shell is None and reconstruct is None
        trims = (trim,) if trim is not None else (None if plain else (min_core_bonds,))
        choices = choose_cores(material, diameter, carve_shape, binder=binder, z=z, charge=charge,
                               lattice_constant=lattice_constant, min_core_bonds=min_core_bonds, trims=trims,
                               swapped=swapped, ligand=ligand, check_charge=plain, min_ligands=1 if plain else 0,
                               prefer=prefer, passivation=passivation)
        failures = []
        for choice in choices[:_AUTO_ATTEMPTS]:
            try:
                qd, size = finish(choice.carve_diameter, choice.center, choice.trim)
            except ValueError as exc:
                failures.append(f'{choice.center}, trim {choice.trim}: {exc}')
                continue
            resolved = {'center': choice.center, 'trim': choice.trim, 'carve_diameter': choice.carve_diameter}
            if swapped != (stoichiometry == 'swapped'):
                resolved['stoichiometry'] = 'swapped' if swapped else 'default'
            break
        else:
            raise ValueError(f'no automatic {material} {shape} core of {diameter:g} Å could be built: '
                             + '; '.join(failures))
    else:
        qd, size = finish(diameter, center, trim)
        resolved = {'center': center, 'trim': min_core_bonds if trim is None else int(trim),
                    'carve_diameter': float(diameter)}
    if vacancy is not None:
        qd = make_vacancy(qd, vacancy, site=vacancy_site, seed=seed if vacancy_site is None else None,
                          neutralize=neutralize, charge=charge, ligand=ligand, min_bonds=vacancy_min_bonds)
    boxed = put_in_box(qd, vacuum)
    boxed.info['qd_build'] = {**resolved, 'core_diameter': round(size, 4)}
    if shape == WULFF:
        boxed.info['qd_build']['facets'] = check_facets(facets if facets is not None else DEFAULT_FACETS[kind], kind)
    return boxed


#: The keys a recipe may hold (the keyword arguments of :func:`build_qd`).
RECIPE_KEYS: tuple[str, ...] = tuple(inspect.signature(build_qd).parameters)
RECIPE_DEFAULTS: dict = {name: p.default for name, p in inspect.signature(build_qd).parameters.items()}
#: The keys a named model or a perovskite nanocube uses; the others must stay at their defaults.
_SPECIAL_KEYS = {'model': ('material', 'model', 'ligand', 'diameter', 'charge', 'arrangement', 'vacuum',
                           'lattice_constant', 'binding', 'seed'),
                 'perovskite': ('material', 'diameter', 'shape', 'termination', 'charge', 'arrangement', 'vacuum',
                                'lattice_constant')}


def _build_special(given: dict) -> Atoms:
    """A named model (``model``) or a perovskite nanocube (``material`` in PEROVSKITES), boxed."""
    material, model = given['material'], given['model']
    kind = 'model' if model is not None else 'perovskite'
    if not isinstance(given['charge'], (int, np.integer)):
        raise TypeError(f'charge must be an integer number of e, got {given["charge"]!r}')
    ignored = sorted(key for key, value in given.items()
                     if key not in _SPECIAL_KEYS[kind] and value != RECIPE_DEFAULTS[key])
    if ignored:
        what = f'model {model!r}' if model is not None else f'a {material} nanocube'
        raise ValueError(f'{what} takes no {ignored} (allowed: {list(_SPECIAL_KEYS[kind])})')
    if model is not None:
        spec = check_model(model)
        if material != spec.material:
            raise ValueError(f'model {model!r} is {spec.material}, got material {material!r}')
        if given['ligand'] not in (None, spec.ligand):
            raise ValueError(f'model {model!r} has ligand {spec.ligand!r}, got ligand {given["ligand"]!r}')
        if given['diameter'] is not None:
            raise ValueError(f'model {model!r} has a fixed size; got diameter {given["diameter"]!r}')
        atoms = build_model(model, charge=given['charge'], arrangement=given['arrangement'],
                            lattice_constant=given['lattice_constant'], binding=given['binding'], seed=given['seed'])
        built = {'model': model}
    else:
        if given['shape'] != 'cube':
            raise ValueError(f'{material} builds nanocubes: shape must be \'cube\', got {given["shape"]!r}')
        atoms = build_nanocube(material, given['diameter'], termination=given['termination'] or 'CsBr',
                               charge=given['charge'], arrangement=given['arrangement'],
                               lattice_constant=given['lattice_constant'])
        built = dict(atoms.info['qd_build'])
    boxed = put_in_box(atoms, given['vacuum'])
    inorganic = atoms[atoms.arrays['qd_role'] != 'ligand']
    boxed.info['qd_build'] = {**built, 'core_diameter': round(core_diameter(inorganic), 4)}
    return boxed


def check_recipe(recipe: dict) -> dict:
    """The recipe, after checking it names only known keys and the two required ones."""
    unknown = sorted(set(recipe) - set(RECIPE_KEYS))
    if unknown:
        raise ValueError(f'unknown recipe key(s) {unknown}; allowed: {list(RECIPE_KEYS)}')
    required = ('material',) if recipe.get('model') is not None else ('material', 'diameter')
    missing = [key for key in required if key not in recipe]
    if missing:
        raise ValueError(f'recipe lacks {missing}')
    return recipe


def write_qd(atoms: Atoms, path, **kwargs) -> None:
    """Write an extended-xyz file with the species, positions and the ``qd_role``/``qd_domain`` columns."""
    from ase.io import write

    columns = ['symbols', 'positions'] + [name for name in ('qd_role', 'qd_domain') if name in atoms.arrays]
    clean = atoms.copy()
    clean.info = {}
    clean.arrays['qd_role'] = roles_of(atoms)
    write(path, clean, format='extxyz', columns=columns, write_info=False, **kwargs)
