"""``qdtraps build``: build a model QD, write it as extended xyz and optionally store it with its recipe."""

import re

import click

from .root import cli

#: ``builder.shapes.SHAPES`` and ``builder.shapes.WULFF`` (spelled out: the builder loads numpy and scipy).
SHAPES = ('sphere', 'tetrahedron', 'truncated_tetrahedron', 'cuboctahedron', 'octahedron', 'cube', 'wulff')
#: ``builder.shell.INTERLAYERS``.
INTERLAYERS = ('abrupt', 'alloyed', 'ordered')
_ANGSTROM = re.compile(r'(\d+(?:\.\d+)?) Å')


def _with_nm(message: str) -> str:
    """The builder's error with every length (Å, the Python API's unit) also given in nm, the command line's unit."""
    return _ANGSTROM.sub(lambda m: f'{m.group(1)} Å = {float(m.group(1)) / 10:g} nm', message)


def parse_facets(ctx, param, value: str | None) -> dict[str, float] | None:
    """``'100=1.0,110=1.2,111=1.1'`` → ``{'100': 1.0, '110': 1.2, '111': 1.1}`` (the recipe key ``facets``).

    Only the form is checked here (FAMILY=ENERGY pairs, numbers, no family twice); the builder checks the families
    and that the energies are positive.
    """
    if value is None:
        return None
    facets = {}
    for item in value.split(','):
        family, sep, energy = (part.strip() for part in item.partition('='))
        if not sep or not family:
            raise click.BadParameter(f'expected FAMILY=ENERGY pairs separated by commas (e.g. 100=1.0,111=1.1), '
                                     f'got {item.strip()!r} in {value!r}')
        if family in facets:
            raise click.BadParameter(f'facet family {family} given twice in {value!r}')
        try:
            facets[family] = float(energy)
        except ValueError:
            raise click.BadParameter(f'the energy of facet {family} must be a number, got {energy!r}') from None
    return facets


def recipe_from_options(material, shape, diameter, ligand, charge, center, vacuum, lattice_constant, min_core_bonds,
                        stoichiometry, arrangement, reconstruct, vacancy, vacancy_site, neutralize, seed, shell,
                        monolayers, interlayer, vacancy_min_bonds=2, trim=None, model=None, termination=None,
                        binding=None, facets=None, prefer='size', passivation='sites') -> dict:
    """The recipe (keyword arguments of :func:`aiida_qdtraps.builder.qd.build_qd`, lengths in Å) of the options.

    Options at their defaults are left out, so equal QDs get equal recipes. A named ``model`` or a perovskite
    nanocube (``termination`` or a perovskite material) gets only the keys it uses.
    """
    from aiida_qdtraps.builder.perovskite import PEROVSKITES

    if model is not None or material in PEROVSKITES:
        recipe = {'material': material, 'charge': charge, 'vacuum': vacuum}
        extra = {'model': model, 'termination': termination, 'lattice_constant': lattice_constant,
                 'ligand': ligand, 'diameter': None if diameter is None else round(10.0 * diameter, 6),
                 'facets': facets}
        if material in PEROVSKITES and model is None:
            extra['shape'] = shape
        recipe.update({key: value for key, value in extra.items() if value is not None})
        if arrangement:
            recipe['arrangement'] = arrangement
        if binding is not None:
            recipe.update({'binding': binding, 'seed': seed} if binding == 'mixed' else {'binding': binding})
        return recipe
    if diameter is None:
        raise click.BadParameter('--diameter is required (except with --model)', param_hint='--diameter')
    ligand = 'F' if ligand is None else ligand
    recipe = {'material': material, 'shape': shape, 'diameter': round(10.0 * diameter, 6), 'ligand': ligand,
              'charge': charge, 'center': center, 'vacuum': vacuum, 'min_core_bonds': min_core_bonds,
              'seed': seed}
    optional = {'lattice_constant': lattice_constant, 'reconstruct': reconstruct, 'vacancy': vacancy,
                'vacancy_site': vacancy_site, 'shell': shell, 'trim': trim, 'facets': facets}
    recipe.update({key: value for key, value in optional.items() if value is not None})
    if stoichiometry != 'default':
        recipe['stoichiometry'] = stoichiometry
    if prefer != 'size':
        recipe['prefer'] = prefer
    if passivation != 'sites':
        recipe['passivation'] = passivation
    if arrangement:
        recipe['arrangement'] = arrangement
    if vacancy is not None and neutralize:
        recipe['neutralize'] = True
    if vacancy is not None and vacancy_min_bonds != 2:
        recipe['vacancy_min_bonds'] = vacancy_min_bonds
    if shell is not None:
        recipe.update({'monolayers': monolayers, 'interlayer': interlayer})
    if binding is not None and binding != 'monodentate':
        recipe['binding'] = binding
    return recipe


@cli.command()
@click.argument('material')
@click.option('--shape', type=click.Choice(SHAPES), default='sphere', show_default=True,
              help='Core shape; wulff: the Wulff polyhedron of the --facets energies.')
@click.option('--facets', callback=parse_facets, default=None, metavar='FAMILY=ENERGY,...',
              help='Surface energies of the facet families of --shape wulff, any one unit (only ratios matter): '
                   '100, 110, 111 and, on zincblende, -1-1-1 (the anion-terminated {111}; default: the 111 energy), '
                   'e.g. 100=1.0,110=1.2,111=1.1; a family left out is not in the construction. Default: equal '
                   'energies on zincblende, the PbSe DFT energies on rock salt.')
@click.option('--diameter', type=float, default=None,
              help='Size (nm): with --center auto the core diameter (within one bond length), with an explicit '
                   'centre the diameter of the carving shape\'s circumscribed sphere; for CsPbBr3 the cube edge '
                   '(rounded to whole cells). Required except with --model.')
@click.option('--ligand', default=None, help='F (default), Cl, Br, I (on cations), H (on anions), OAc.')
@click.option('--binding', type=click.Choice(('monodentate', 'chelating', 'bridging', 'mixed')), default=None,
              help='How acetate (--ligand OAc) binds: monodentate (default), chelating (both O on one metal), '
                   'bridging (the two O on two neighbouring metals), mixed (per site, drawn with --seed and '
                   '--arrangement). The acetate count is the same for every binding. A --model keeps its own '
                   '(Pb19S6(OAc)26: bridging) unless given.')
@click.option('--model', default=None,
              help='A named cluster instead of a carve: Cd17Se28H22 (Se-rich, H on Se) or Cd28Se17Cl22 (Cd-rich, '
                   'Cl on Cd), MATERIAL CdSe; Pb19S6(OAc)26 (octahedral, 26 bridging acetates), MATERIAL PbS; '
                   'with --arrangement, --charge, --binding.')
@click.option('--termination', type=click.Choice(('CsBr', 'PbBr2')), default=None,
              help='CsPbBr3 nanocube surface (default CsBr); use with --shape cube.')
@click.option('--charge', type=int, default=0, show_default=True, help='Target net charge (e).')
@click.option('--center', type=click.Choice(('auto', 'anion', 'cation', 'interstitial', 'interstitial2')),
              default='auto', show_default=True,
              help='Carve centre; auto: the centre, trim and carve size whose core has the diameter and reaches the '
                   'charge with the ligand (cation-rich for F/Cl/Br/I/OAc, anion-rich for H).')
@click.option('--trim', type=click.IntRange(1, 6), default=None,
              help='Fewest core bonds kept by the atoms the ligand does not bind (anions for X-type ligands); '
                   'default: chosen with --center auto, else --min-core-bonds.')
@click.option('--min-core-bonds', type=click.IntRange(1, 3), default=2, show_default=True,
              help='Prune atoms with fewer core bonds (1 for the smallest clusters).')
@click.option('--prefer', type=click.Choice(('size', 'coordination')), default='size', show_default=True,
              help='With --center auto: size takes the core nearest --diameter; coordination the core within one '
                   'bond length with the fewest under-coordinated atoms of the species the ligand does not bind '
                   '(3-coordinate P for F/Cl on InP); with --min-core-bonds 1 every P four-coordinate where the '
                   'charge allows (tetrahedra).')
@click.option('--passivation', type=click.Choice(('sites', 'complete')), default='sites', show_default=True,
              help='sites: one ligand per empty lattice site next to the core, as many as the charge needs; '
                   'complete: a halide on every cation dangling bond, bridging two or three cations where the charge '
                   'leaves too few for one each; with --center auto every anion four-coordinate, so no atom has '
                   'fewer than four bonds (zincblende, F/Cl/Br/I).')
@click.option('--lattice-constant', type=float, default=None, help='Override the literature lattice constant (Å).')
@click.option('--stoichiometry', type=click.Choice(('default', 'swapped')), default='default', show_default=True,
              help='swapped: exchange the cation and anion sublattices (cation-rich <-> anion-rich).')
@click.option('--arrangement', type=int, default=0, show_default=True,
              help='Ligand arrangement on the same core (0: standard even spread).')
@click.option('--reconstruct', type=float, default=None,
              help='Fraction of 3-coordinate surface anions replaced by Cl before passivation (Llusar et al.: 0.667).')
@click.option('--vacancy', type=click.Choice(('ligand', 'anion', 'cation', 'pair')), default=None,
              help='Make one surface vacancy of this kind.')
@click.option('--vacancy-site', type=int, default=None,
              help='Index of the symmetry-distinct vacancy site (default: drawn with --seed).')
@click.option('--vacancy-min-bonds', type=click.IntRange(1, 3), default=2, show_default=True,
              help='Fewest inorganic bonds a neighbour of the vacancy may keep (1 also accepts one core bond plus '
                   'ligands: anion and pair sites on the smallest QDs).')
@click.option('--neutralize/--no-neutralize', default=False, show_default=True,
              help='Restore the target charge after the vacancy by adding or removing ligands.')
@click.option('--seed', type=int, default=0, show_default=True, help='Random seed (vacancy site, alloy mixing).')
@click.option('--shell', default=None, help='Shell material grown on the core, e.g. CdSe.')
@click.option('--monolayers', type=click.IntRange(1, 10), default=1, show_default=True, help='Shell monolayers.')
@click.option('--interlayer', type=click.Choice(INTERLAYERS), default='abrupt', show_default=True,
              help='Core/shell interface (the first shell monolayer): abrupt (shell material), alloyed (core and '
                   'shell elements mixed at random with --seed, some cation sites empty) or ordered (the '
                   '<111>-(2x2) pattern of core atoms and cation vacancies, no random draw).')
@click.option('--vacuum', type=float, default=5.0, show_default=True, help='Vacuum on each side of the box (Å).')
@click.option('-o', '--output', type=click.Path(dir_okay=False, writable=True), required=True,
              help='Extended-xyz file to write (species, positions, qd_role, qd_domain).')
@click.option('--store', is_flag=True, help='Build through the `build_qd` calcfunction on the project profile.')
@click.option('--list-sites', is_flag=True,
              help='Print the symmetry-distinct sites of the --vacancy kind (index, removed atoms, charge change, '
                   'multiplicity) and exit without writing.')
def build(material, shape, facets, diameter, ligand, binding, model, termination, charge, center, trim,
          min_core_bonds, prefer, passivation, lattice_constant, stoichiometry, arrangement, reconstruct, vacancy,
          vacancy_site, vacancy_min_bonds, neutralize, seed, shell, monolayers, interlayer, vacuum, output, store,
          list_sites):
    """Build a model QD of MATERIAL (InP, GaP, InAs, CdSe, CdS, ZnSe, ZnS, PbS, PbSe, CsPbBr3).

    Example: qdtraps build InP --shape tetrahedron --diameter 2.0 --ligand F -o inp.xyz
    (the centre and trim are chosen so that the core is 2.0 nm wide and neutral with F; they are printed).
    Named clusters: qdtraps build CdSe --model Cd17Se28H22 -o se_rich.xyz.
    Nanocubes: qdtraps build CsPbBr3 --shape cube --diameter 5 --termination CsBr -o cube.xyz.
    Wulff shapes: qdtraps build InP --shape wulff --facets 100=1.0,110=1.2,111=1.1 --diameter 2.0 -o wulff.xyz.
    Every bond passivated: qdtraps build InP --shape cuboctahedron --diameter 2.7 --ligand Cl --passivation complete.
    """
    from aiida_qdtraps.builder import qd as qd_recipes

    recipe = recipe_from_options(material, shape, diameter, ligand, charge, center, vacuum, lattice_constant,
                                 min_core_bonds, stoichiometry, arrangement, reconstruct, vacancy, vacancy_site,
                                 neutralize, seed, shell, monolayers, interlayer, vacancy_min_bonds, trim, model,
                                 termination, binding, facets, prefer, passivation)
    if list_sites:
        _list_sites(recipe)
        return
    try:
        if store:
            atoms, pk = _build_stored(recipe)
        else:
            atoms, pk = qd_recipes.build_qd(**recipe), None
    except ValueError as exc:
        raise click.BadParameter(_with_nm(str(exc))) from exc
    qd_recipes.write_qd(atoms, output)
    report = qd_recipes.describe(atoms)
    click.echo(f'{report.formula}: {report.n_atoms} atoms, net charge {report.net_charge:+d} e, '
               f'diameter {report.diameter / 10:.2f} nm')
    if report.build and 'center' not in report.build:
        lengths = ('edge', 'core_diameter')  # Å in the record, nm on the command line
        click.echo('  build      ' + ', '.join(
            f'{key.replace("_", " ")} {value / 10:.2f} nm' if key in lengths else f'{key.replace("_", " ")} {value}'
            for key, value in report.build.items()))
    elif report.build:
        carve = report.build
        click.echo(f'  carve      center {carve["center"]}, trim {carve["trim"]}, carve diameter '
                   f'{carve["carve_diameter"] / 10:.3f} nm, core diameter {carve["core_diameter"] / 10:.2f} nm'
                   + (f', stoichiometry {carve["stoichiometry"]}' if 'stoichiometry' in carve else ''))
        if 'facets' in carve:
            energies = carve['facets'].items()
            click.echo('  facets     ' + ', '.join(f'{family}={energy:g}' for family, energy in energies))
    for domain, formula in report.domains.items():
        click.echo(f'  {domain:<10} {formula}')
    for element, histogram in sorted(report.coordination.items()):
        click.echo(f'  CN {element:<2} ' + ' '.join(f'{cn}:{count}' for cn, count in histogram.items()))
    if 'qd_vacancy' in atoms.info:
        click.echo(f'  vacancy {atoms.info["qd_vacancy"]}')
    click.echo(f'wrote {output}' + (f'; stored StructureData pk={pk}' if pk is not None else ''))


def _build_stored(recipe: dict):
    """Run the ``build_qd`` calcfunction (on the project profile unless a profile is already loaded)."""
    from aiida.manage import get_manager

    from aiida_qdtraps.profile import load_project_profile, profile_exists

    if get_manager().get_profile() is None:
        if not profile_exists():
            raise click.ClickException('--store needs the project profile: run `qdtraps setup` first.')
        load_project_profile()
    from aiida import orm

    from aiida_qdtraps.workchains.build import build_qd, to_atoms

    structure = build_qd(orm.Dict(recipe))
    atoms = to_atoms(structure)
    for name in ('qd_vacancy', 'qd_build'):
        value = structure.base.attributes.get(name, None)
        if value is not None:
            atoms.info[name] = value
    return atoms, structure.pk


def _list_sites(recipe: dict) -> None:
    """Print the distinct vacancy sites of the recipe's QD (built without the vacancy)."""
    from aiida_qdtraps.builder import qd as qd_recipes
    from aiida_qdtraps.builder import vacancies

    kind = recipe.get('vacancy')
    if kind is None:
        raise click.BadParameter('--list-sites needs --vacancy KIND')
    vacancy_keys = ('vacancy', 'vacancy_site', 'neutralize', 'vacancy_min_bonds')
    plain = {key: value for key, value in recipe.items() if key not in vacancy_keys}
    try:
        sites = vacancies.distinct_vacancies(qd_recipes.build_qd(**plain), kind,
                                             min_bonds=recipe.get('vacancy_min_bonds', 2))
    except ValueError as exc:
        raise click.BadParameter(_with_nm(str(exc))) from exc
    click.echo(f'{len(sites)} distinct {kind} vacancy sites')
    click.echo(f'{"site":>4}  {"removes":<10} {"charge change":>13} {"multiplicity":>12}')
    for index, site in enumerate(sites):
        click.echo(f'{index:>4}  {site.formula:<10} {site.charge_change:>+13d} {site.multiplicity:>12}')
