"""Calcfunctions of the QD builder: every model QD is a StructureData whose provenance reaches its recipe.

Thin bridges to :mod:`aiida_qdtraps.builder` (unpack nodes → call one pure function → wrap). The recipe is the
calcfunction's ``Dict`` input, so QueryBuilder filters on it, e.g. all InP tetrahedra::

    qb = QueryBuilder()
    qb.append(Dict, filters={'attributes.material': 'InP', 'attributes.shape': 'tetrahedron'}, tag='recipe')
    qb.append(CalcFunctionNode, with_incoming='recipe', filters={'attributes.function_name': 'build_qd'}, tag='f')
    qb.append(StructureData, with_incoming='f')

Every StructureData made here carries the per-site lists ``qd_roles`` (cation / anion / ligand) and ``qd_domains``
(core / interlayer / shell / ligand) as node attributes (``build_qd`` also ``qd_build``: the resolved carve centre,
trim and sizes); :func:`aiida_qdtraps.provenance.roles` / :func:`~aiida_qdtraps.provenance.domains` also find them
for structures derived later (boxing, CP2K relaxation), through the provenance.
"""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import calcfunction
from ase import Atoms

from .. import provenance
from ..builder import qd as qd_recipes
from ..builder import roles as qd_roles
from ..builder import shell as qd_shell
from ..builder import vacancies as qd_vacancies
from ..provenance import BUILD_FUNCTIONS, DOMAIN_ATTRIBUTE, ROLE_ATTRIBUTE  # noqa: F401  (re-exported)

#: Per-site roles / domains of a structure, found through its provenance (aliases of :func:`.provenance.roles` and
#: :func:`.provenance.domains`, under the names the builder docs and scripts use).
get_roles, get_domains = provenance.roles, provenance.domains
#: Attribute with the carve the builder resolved (``center``, ``trim``, ``carve_diameter``, ``core_diameter`` in Å),
#: e.g. the centre and trim that ``center='auto'`` chose; the recipe Dict stays as the user gave it.
BUILD_ATTRIBUTE = 'qd_build'


def to_structure(atoms: Atoms) -> orm.StructureData:
    """An unstored, non-periodic StructureData (kinds = element symbols) with the roles and domains as attributes."""
    plain = Atoms(atoms.get_chemical_symbols(), positions=atoms.positions, cell=atoms.cell, pbc=False)
    structure = orm.StructureData(ase=plain)
    structure.pbc = (False, False, False)
    roles = qd_roles.roles_of(atoms)
    domains = atoms.arrays.get('qd_domain', qd_roles.infer_domains(atoms, roles))
    structure.base.attributes.set(ROLE_ATTRIBUTE, [str(r) for r in roles])
    structure.base.attributes.set(DOMAIN_ATTRIBUTE, [str(d) for d in domains])
    if 'qd_vacancy' in atoms.info:
        structure.base.attributes.set('qd_vacancy', dict(atoms.info['qd_vacancy']))
    if 'qd_build' in atoms.info:  # the resolved carve: center, trim, carve_diameter, core_diameter (Å)
        structure.base.attributes.set(BUILD_ATTRIBUTE, dict(atoms.info['qd_build']))
    return structure


def to_atoms(structure: orm.StructureData) -> Atoms:
    """The structure as ase Atoms with ``qd_role``/``qd_domain`` arrays (found through provenance, else inferred)."""
    atoms = structure.get_ase()
    atoms.set_tags(0)
    roles = provenance.roles(structure)
    atoms.arrays['qd_role'] = np.array(roles if roles is not None else qd_roles.infer_roles(atoms),
                                       dtype=qd_roles.ROLE_DTYPE)
    domains = provenance.domains(structure)
    atoms.arrays['qd_domain'] = np.array(domains if domains is not None else
                                         qd_roles.infer_domains(atoms, atoms.arrays['qd_role']),
                                         dtype=qd_roles.DOMAIN_DTYPE)
    return atoms


def copy_qd_tags(source: orm.StructureData, target: orm.StructureData) -> None:
    """Copy the ``qd_roles``/``qd_domains`` attributes (own or inherited) from ``source`` to unstored ``target``."""
    for name, value in ((ROLE_ATTRIBUTE, provenance.roles(source)), (DOMAIN_ATTRIBUTE, provenance.domains(source))):
        if value is not None and len(value) == len(target.sites):
            target.base.attributes.set(name, list(value))


@calcfunction
def build_qd(recipe: orm.Dict) -> orm.StructureData:
    """Build a QD from a recipe: the keyword arguments of :func:`aiida_qdtraps.builder.qd.build_qd` (lengths in Å)."""
    return to_structure(qd_recipes.build_qd(**qd_recipes.check_recipe(recipe.get_dict())))


@calcfunction
def build_qd_structure(recipe: orm.Dict) -> orm.StructureData:
    """Build a QD model from a recipe (keyword arguments of :func:`aiida_qdtraps.builder.qd.build_qd`).

    The recipe Dict is this calcfunction's input, so a QueryBuilder from a recipe (e.g. filtering on
    ``attributes.material``) reaches every structure built from it, and every structure its recipe.
    """
    return to_structure(qd_recipes.build_qd(**recipe.get_dict()))


@calcfunction
def center_in_box(structure: orm.StructureData, vacuum: orm.Float) -> orm.StructureData:
    """The cluster centred in a cubic non-periodic box with at least ``vacuum`` Å on every side."""
    boxed = qd_recipes.put_in_box(structure.get_ase(), float(vacuum.value))
    result = orm.StructureData(ase=boxed)
    result.pbc = (False, False, False)
    copy_qd_tags(structure, result)  # per-site roles/domains follow the structure
    return result


@calcfunction
def make_vacancy(structure: orm.StructureData, vacancy: orm.Dict) -> orm.StructureData:
    """A surface vacancy: ``vacancy`` = {kind, site?, seed?, neutralize?, charge?, ligand?, min_bonds?} (see the pure
    function).

    The output's ``qd_vacancy`` attribute records kind, distinct-site index, removed formula and charge.
    """
    atoms = qd_vacancies.make_vacancy(to_atoms(structure), **vacancy.get_dict())
    return to_structure(atoms)


@calcfunction
def grow_shell(structure: orm.StructureData, shell: orm.Dict) -> orm.StructureData:
    """Core@shell: ``shell`` = {core_material, shell_material, monolayers, interlayer, ligand, charge, seed, ...}.

    The input's ligands are dropped; the output is boxed with ``vacuum`` (Å, default 5) on every side.
    """
    options = dict(shell.get_dict())
    vacuum = options.pop('vacuum', 5.0)
    atoms = qd_shell.grow_shell(to_atoms(structure), **options)
    return to_structure(qd_recipes.put_in_box(atoms, vacuum))


@calcfunction
def reconstruct_surface(structure: orm.StructureData, reconstruction: orm.Dict) -> orm.StructureData:
    """Llusar et al.'s facet reconstruction: ``reconstruction`` = {fraction, facet, substituent, charge, ligand}."""
    return to_structure(qd_shell.reconstruct_surface(to_atoms(structure), **reconstruction.get_dict()))


#: Keys of ``import_structure``'s ``options`` Dict.
IMPORT_OPTIONS = ('format', 'cations', 'anions', 'core_elements', 'formal_charges', 'vacuum', 'charge', 'multiplicity')
#: Attribute of an imported structure: its formal charge (e), multiplicity, electron count and ligands per group.
IMPORT_ATTRIBUTE = 'qd_import'
#: Per-site attribute of an imported structure: the ligand group of each ligand atom, the role of each core atom.
GROUP_ATTRIBUTE = 'qd_ligand_groups'


def _check_import_options(settings: dict) -> None:
    unknown = sorted(set(settings) - set(IMPORT_OPTIONS))
    if unknown:
        raise ValueError(f'unknown import option(s) {unknown}; allowed: {list(IMPORT_OPTIONS)}')
    for key in ('charge', 'multiplicity'):
        value = settings.get(key)
        if value is not None and (isinstance(value, bool) or not float(value).is_integer()):
            raise ValueError(f'{key} must be an integer, got {value!r}')
    if settings.get('multiplicity') is not None and int(settings['multiplicity']) < 1:
        raise ValueError(f'multiplicity must be 1 or more, got {settings["multiplicity"]!r}')


@calcfunction
def import_structure(file: orm.SinglefileData, options: orm.Dict) -> orm.StructureData:
    """A QD brought by the user (xyz, extended xyz, cif, any ASE format) with its roles, charge and multiplicity.

    ``options`` = {format?, cations?, anions?, core_elements?, formal_charges?, vacuum?, charge?, multiplicity?}.
    The structure must be a finite cluster (a periodic crystal is refused: ``not a cluster``); roles, ligand groups,
    formal charge and multiplicity come from :func:`aiida_qdtraps.builder.foreign.label_qd` (atoms it cannot classify
    are refused, named). A ``charge`` that differs from the inferred one is refused with both values; a
    ``multiplicity`` is kept when its parity fits the electron count, else refused. Inputs without a cell are boxed
    with ``vacuum`` Å (default 5). The output carries ``qd_roles``, ``qd_domains``, ``qd_ligand_groups`` and
    ``qd_import`` = {charge (e), multiplicity, inferred_multiplicity, electrons, ligands: count per group}.
    """
    import os
    import tempfile

    from ase.io import read

    from ..builder import foreign

    settings = dict(options.get_dict())
    _check_import_options(settings)
    vacuum = settings.pop('vacuum', 5.0)
    charge, multiplicity = settings.pop('charge', None), settings.pop('multiplicity', None)
    suffix = os.path.splitext(file.filename)[1]
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, f'structure{suffix}')
        with open(path, 'wb') as handle:
            handle.write(file.get_content('rb'))
        atoms = read(path, format=settings.pop('format', None), index=-1)
    if not len(atoms):
        raise ValueError(f'{file.filename} holds no atoms')
    atoms, found = foreign.label_qd(atoms, **settings)
    if charge is not None and int(charge) != found.charge:
        raise ValueError(f'the given charge {int(charge):+d} e contradicts the charge inferred from the formal '
                         f'charges of the core ions and ligands, {found.charge:+d} e '
                         f'(ligands: {found.ligand_counts()}); correct the charge, or the roles with '
                         'cations/anions/formal_charges')
    if multiplicity is not None and int(multiplicity) % 2 != found.multiplicity % 2:
        raise ValueError(f'the given multiplicity {int(multiplicity)} is impossible with {found.electrons} electrons '
                         f'(charge {found.charge:+d} e); the inferred multiplicity is {found.multiplicity}')
    if not atoms.cell.volume > 0:
        atoms = qd_recipes.put_in_box(atoms, vacuum)
    structure = to_structure(atoms)
    structure.base.attributes.set(GROUP_ATTRIBUTE, [str(g) for g in atoms.arrays['qd_group']])
    structure.base.attributes.set(IMPORT_ATTRIBUTE, {
        'charge': found.charge, 'charge_unit': 'e',
        'multiplicity': found.multiplicity if multiplicity is None else int(multiplicity),
        'inferred_multiplicity': found.multiplicity, 'electrons': found.electrons,
        'ligands': found.ligand_counts()})
    return structure
