"""``qdtraps build``: the command line of the builder, deterministic output, errors, --store."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from aiida_qdtraps import profile as project_profile
from aiida_qdtraps.builder import roles
from aiida_qdtraps.cli import cli

CORE_SHELL = ['build', 'InAs', '--shape', 'truncated_tetrahedron', '--diameter', '2.2', '--center', 'anion', '--ligand',
              'Cl', '--shell', 'CdSe', '--monolayers', '1', '--interlayer', 'alloyed', '--vacancy', 'ligand', '--seed',
              '3']


@pytest.fixture(autouse=True)
def _keep_test_profile(monkeypatch):
    """In-process invocations must not point aiida at the project folder (the test profile is loaded)."""
    monkeypatch.setattr(project_profile, 'activate', lambda: None)


def test_same_command_twice_gives_byte_identical_xyz(tmp_path, run_qdtraps):
    outputs = []
    for run in ('first', 'second'):
        path = tmp_path / f'{run}.xyz'
        result = run_qdtraps([*CORE_SHELL, '-o', str(path)], tmp_path / '.aiida')
        assert result.returncode == 0, result.stderr
        outputs.append(path.read_bytes())
    assert outputs[0] == outputs[1]
    assert 'interlayer As22Cd22In16Se26' in ' '.join(result.stdout.split())
    atoms = roles.read_structure(str(tmp_path / 'first.xyz'))
    assert set(atoms.arrays['qd_domain']) == {'core', 'interlayer'}


def test_options_reach_the_builder(tmp_path):
    path = tmp_path / 'inp.xyz'
    result = CliRunner().invoke(cli, ['build', 'InP', '--diameter', '2.0', '--center', 'cation', '--vacancy',
                                      'cation', '--vacancy-site', '0', '--neutralize', '-o', str(path)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith('F30In78P68: 176 atoms, net charge +0 e')
    assert "vacancy {'kind': 'cation', 'site': 0, 'removed': 'FIn'" in result.output
    assert roles.read_structure(str(path)).get_chemical_formula() == 'F30In78P68'


def test_list_sites_prints_the_distinct_vacancies(tmp_path):
    result = CliRunner().invoke(cli, ['build', 'InP', '--diameter', '2.0', '--center', 'cation', '--vacancy', 'pair',
                                      '--list-sites', '-o', str(tmp_path / 'x.xyz')])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == '3 distinct pair vacancy sites'
    assert lines[2].split() == ['0', 'FInP', '+1', '12']
    assert not (tmp_path / 'x.xyz').exists()


def test_vacancy_min_bonds_reaches_the_builder_and_the_site_list(tmp_path):
    base = ['build', 'InP', '--diameter', '0.6', '--center', 'interstitial', '--min-core-bonds', '1', '--vacancy',
            'anion']
    result = CliRunner().invoke(cli, [*base, '--list-sites', '-o', str(tmp_path / 'x.xyz')])
    assert result.exit_code == 2 and 'has no anion vacancy site that leaves every neighbour >= 2' in result.output
    result = CliRunner().invoke(cli, [*base, '--vacancy-min-bonds', '1', '--list-sites', '-o', str(tmp_path / 'x.xyz')])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == '1 distinct anion vacancy sites'
    result = CliRunner().invoke(cli, [*base, '--vacancy-min-bonds', '1', '--vacancy-site', '0', '-o',
                                      str(tmp_path / 'x.xyz')])
    assert result.exit_code == 0, result.output
    assert result.output.startswith('F6In6P3: 15 atoms, net charge +3 e')


@pytest.mark.parametrize('args, message', [
    (['InSb', '--diameter', '2'], "unknown material 'InSb'; known:"),
    (['InP', '--diameter', '2', '--center', 'cation', '--charge', '40'], 'cannot reach charge 40'),
    (['InP', '--diameter', '2', '--shape', 'star'], "'star' is not one of 'sphere'"),
    # lengths in the builder's errors (Å) are also given in the command line's nm
    (['InP', '--diameter', '0.3', '--ligand', 'F'], 'diameter 3 Å = 0.3 nm is below the smallest InP sphere core'),
    (['CsPbBr3', '--shape', 'cube', '--diameter', '0.3'], 'edge 3.0 Å = 0.3 nm is below two CsPbBr3 cells'),
    # --facets: the form is checked by the command line, the families and energies by the builder
    (['InP', '--diameter', '2', '--shape', 'wulff', '--facets', '100=abc'],
     "the energy of facet 100 must be a number, got 'abc'"),
    (['InP', '--diameter', '2', '--shape', 'wulff', '--facets', '100=1,111'], "expected FAMILY=ENERGY pairs"),
    (['InP', '--diameter', '2', '--shape', 'wulff', '--facets', '100=1,100=2'], 'facet family 100 given twice'),
    (['InP', '--diameter', '2', '--shape', 'wulff', '--facets', '200=1'], "unknown facet family '200'"),
    (['InP', '--diameter', '2', '--shape', 'wulff', '--facets', '100=0'],
     'the surface energy of facet 100 must be a positive number, got 0.0'),
    (['InP', '--diameter', '2', '--shape', 'cube', '--facets', '100=1'], "facets apply to shape 'wulff' only"),
    (['PbS', '--diameter', '1.5', '--shape', 'wulff', '--facets', '100=1,-1-1-1=2'],
     'facet family -1-1-1 is distinct from 111 on zincblende only'),
    (['CdSe', '--model', 'Cd17Se28H22', '--facets', '100=1'], "model 'Cd17Se28H22' takes no ['facets']"),
])
def test_bad_input_is_a_usage_error_naming_the_value(tmp_path, args, message):
    result = CliRunner().invoke(cli, ['build', *args, '-o', str(tmp_path / 'x.xyz')])
    assert result.exit_code == 2 and message in ' '.join(result.output.split())
    assert not (tmp_path / 'x.xyz').exists()


def test_store_runs_the_calcfunction_with_the_recipe(tmp_path, aiida_profile):
    from aiida import orm

    path = tmp_path / 'stored.xyz'
    result = CliRunner().invoke(cli, ['build', 'CdSe', '--diameter', '1.325', '--center', 'cation', '--ligand', 'H',
                                      '--min-core-bonds', '1', '--store', '-o', str(path)])
    assert result.exit_code == 0, result.output
    pk = int(result.output.split('pk=')[1])
    structure = orm.load_node(pk)
    recipe = structure.creator.inputs.recipe.get_dict()
    assert recipe['material'] == 'CdSe' and recipe['diameter'] == pytest.approx(13.25) and recipe['ligand'] == 'H'
    assert structure.get_formula() == 'Cd19H18Se28'
    assert list(roles.read_structure(str(path)).arrays['qd_role']) == structure.base.attributes.get('qd_roles')


#: Standard QDs of the papers (docs/references.md) with the default (automatic) centre: (arguments, formula, core
#: diameter printed in nm).
STANDARD = [
    (['InP', '--shape', 'tetrahedron', '--diameter', '2.0', '--ligand', 'F'], 'F51In52P35', '2.03'),
    (['InP', '--shape', 'cuboctahedron', '--diameter', '2.0', '--ligand', 'F'], 'F63In80P59', '2.03'),
    (['GaP', '--shape', 'tetrahedron', '--diameter', '1.8', '--ligand', 'F'], 'F51Ga52P35', '1.89'),
    (['InP', '--shape', 'cuboctahedron', '--diameter', '2.7', '--ligand', 'Cl'], 'Cl120In204P164', '2.67'),
    (['InAs', '--shape', 'tetrahedron', '--diameter', '2.1', '--ligand', 'Cl'], 'As35Cl51In52', '2.10'),
    (['CdSe', '--shape', 'sphere', '--diameter', '1.5', '--ligand', 'Cl'], 'Cd31Cl6Se28', '1.49'),
    (['PbS', '--shape', 'octahedron', '--diameter', '1.5', '--ligand', 'Cl'], 'Cl38Pb38S19', '1.33'),
    (['ZnSe', '--shape', 'sphere', '--diameter', '1.6', '--ligand', 'Cl'], 'Cl26Se55Zn68', '1.68'),
]


@pytest.mark.parametrize('args, formula, core_nm', STANDARD, ids=[' '.join(a[:4]) for a, _, _ in STANDARD])
def test_standard_qds_build_with_the_defaults(tmp_path, args, formula, core_nm):
    path = tmp_path / 'qd.xyz'
    result = CliRunner().invoke(cli, ['build', *args, '-o', str(path)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f'{formula}: ') and 'net charge +0 e' in result.output
    assert f'core diameter {core_nm} nm' in result.output
    assert roles.read_structure(str(path)).get_chemical_formula() == formula


def test_default_centre_is_byte_identical_across_processes(tmp_path, run_qdtraps):
    outputs = []
    for run in ('first', 'second'):
        path = tmp_path / f'{run}.xyz'
        result = run_qdtraps(['build', 'InP', '--shape', 'tetrahedron', '--diameter', '2.0', '--ligand', 'F', '-o',
                              str(path)], tmp_path / '.aiida')
        assert result.returncode == 0, result.stderr
        outputs.append(path.read_bytes())
    assert outputs[0] == outputs[1]
    assert 'carve      center anion, trim 2, carve diameter 3.303 nm, core diameter 2.03 nm' in result.stdout


def test_store_records_the_resolved_carve_beside_the_recipe(tmp_path, aiida_profile):
    from aiida import orm

    result = CliRunner().invoke(cli, ['build', 'InP', '--shape', 'tetrahedron', '--diameter', '2.0', '--store', '-o',
                                      str(tmp_path / 'x.xyz')])
    assert result.exit_code == 0, result.output
    structure = orm.load_node(int(result.output.split('pk=')[1]))
    assert structure.creator.inputs.recipe['center'] == 'auto'  # the recipe stays as given
    assert structure.base.attributes.get('qd_build') == {'center': 'anion', 'trim': 2, 'carve_diameter': 33.03,
                                                        'core_diameter': pytest.approx(20.3308, abs=1e-3)}


@pytest.mark.parametrize('args, formula', [
    (['CdSe', '--model', 'Cd17Se28H22'], 'H22Cd17Se28'),
    (['CdSe', '--model', 'Cd28Se17Cl22', '--arrangement', '2'], 'Cd28Cl22Se17'),
    (['CsPbBr3', '--shape', 'cube', '--diameter', '1.8'], 'Br108Cs54Pb27'),
    (['CsPbBr3', '--shape', 'cube', '--diameter', '1.8', '--termination', 'PbBr2'], 'Br62Cs8Pb27'),
])
def test_named_models_and_nanocubes(tmp_path, args, formula):
    path = tmp_path / 'x.xyz'
    result = CliRunner().invoke(cli, ['build', *args, '-o', str(path)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f'{formula}:') and 'net charge +0 e' in result.output
    assert '  build      ' in result.output and path.exists()


@pytest.mark.parametrize('args, message', [
    (['CdSe', '--model', 'Cd17Se28Cl22'], 'Cd28Se17Cl22'),
    (['InP', '--ligand', 'F'], '--diameter is required'),
    (['CsPbBr3', '--diameter', '1.8'], "shape must be 'cube'"),
])
def test_named_model_and_nanocube_errors(tmp_path, args, message):
    path = tmp_path / 'x.xyz'
    result = CliRunner().invoke(cli, ['build', *args, '-o', str(path)])
    assert result.exit_code == 2 and message in result.output and not path.exists()


def test_binding_reaches_the_builder_and_the_recipe(tmp_path):
    from aiida_qdtraps.cli.cmd_build import recipe_from_options

    path = tmp_path / 'bridged.xyz'
    result = CliRunner().invoke(cli, ['build', 'PbS', '--diameter', '1.5', '--center', 'cation', '--ligand', 'OAc',
                                      '--binding', 'bridging', '-o', str(path)])
    assert result.exit_code == 0, result.output
    assert 'net charge +0 e' in result.output
    base = ('PbS', 'sphere', 1.5, 'OAc', 0, 'cation', 5.0, None, 2, 'default', 0, None, None, None, False, 0, None, 1,
            'abrupt')
    assert 'binding' not in recipe_from_options(*base)
    assert 'binding' not in recipe_from_options(*base, binding='monodentate')
    assert recipe_from_options(*base, binding='mixed')['binding'] == 'mixed'
    model = CliRunner().invoke(cli, ['build', 'PbS', '--model', 'Pb19S6(OAc)26', '-o', str(tmp_path / 'pb19.xyz')])
    assert model.exit_code == 0, model.output
    assert 'C52H78O52Pb19S6: 207 atoms, net charge +0 e' in model.output
    bad = CliRunner().invoke(cli, ['build', 'InP', '--diameter', '1.4', '--ligand', 'Cl', '--binding', 'chelating',
                                   '-o', str(tmp_path / 'x.xyz')])
    assert bad.exit_code != 0 and "'Cl'" in bad.output


def test_shape_and_interlayer_choices_are_the_builders():
    from aiida_qdtraps.builder import shapes, shell
    from aiida_qdtraps.cli import cmd_build

    assert sorted(cmd_build.SHAPES) == sorted((*shapes.SHAPES, shapes.WULFF))
    assert cmd_build.INTERLAYERS == shell.INTERLAYERS


def test_wulff_of_the_100_facets_alone_is_the_cube(tmp_path):
    """The Wulff polyhedron of {100} alone is the cube: the same atoms at the same places."""
    base = ['build', 'InP', '--diameter', '2.0', '--center', 'anion']
    wulff = CliRunner().invoke(cli, [*base, '--shape', 'wulff', '--facets', '100=1.0', '-o', str(tmp_path / 'w.xyz')])
    cube = CliRunner().invoke(cli, [*base, '--shape', 'cube', '-o', str(tmp_path / 'c.xyz')])
    assert wulff.exit_code == 0 and cube.exit_code == 0, wulff.output + cube.output
    assert '  facets     100=1\n' in wulff.output and '  facets ' not in cube.output
    a, b = (roles.read_structure(str(tmp_path / name)) for name in ('w.xyz', 'c.xyz'))
    assert a.get_chemical_symbols() == b.get_chemical_symbols() and len(a) == 38
    assert a.positions == pytest.approx(b.positions, abs=1e-9)


def test_facets_reach_the_recipe_and_the_record(tmp_path, aiida_profile):
    from aiida import orm

    from aiida_qdtraps.cli.cmd_build import recipe_from_options

    result = CliRunner().invoke(cli, ['build', 'InP', '--shape', 'wulff', '--facets', '100=1.0, 110=1.2, 111=1.1',
                                      '--diameter', '2.0', '--store', '-o', str(tmp_path / 'x.xyz')])
    assert result.exit_code == 0, result.output
    # -1-1-1 (the anion-terminated {111} of zincblende) takes the 111 energy when not given
    assert '  facets     100=1, 110=1.2, 111=1.1, -1-1-1=1.1\n' in result.output
    structure = orm.load_node(int(result.output.split('pk=')[1]))
    recipe = structure.creator.inputs.recipe.get_dict()
    assert recipe['shape'] == 'wulff' and recipe['facets'] == {'100': 1.0, '110': 1.2, '111': 1.1}
    assert structure.base.attributes.get('qd_build')['facets'] == {'100': 1.0, '110': 1.2, '111': 1.1,
                                                                    '-1-1-1': 1.1}
    # without --facets the recipe has no key: the builder takes the material's defaults (equal on zincblende)
    base = ('InP', 'wulff', 2.0, 'F', 0, 'auto', 5.0, None, 2, 'default', 0, None, None, None, False, 0, None, 1,
            'abrupt')
    assert 'facets' not in recipe_from_options(*base)
    default = CliRunner().invoke(cli, ['build', 'InP', '--shape', 'wulff', '--diameter', '2.0', '-o',
                                       str(tmp_path / 'y.xyz')])
    assert default.exit_code == 0 and '  facets     100=1, 110=1, 111=1, -1-1-1=1\n' in default.output


def test_ordered_interlayer_from_the_command_line(tmp_path):
    """InAs 1.6 nm (cation-centred) @ 3 ML CdSe of docs/builder.md: the ordered interlayer takes core atoms (In on
    cation sites, As on anion sites) where the abrupt one is pure CdSe, on the same core."""
    base = ['build', 'InAs', '--diameter', '1.6', '--center', 'cation', '--ligand', 'Cl', '--shell', 'CdSe',
            '--monolayers', '3', '--interlayer']
    ordered = CliRunner().invoke(cli, [*base, 'ordered', '-o', str(tmp_path / 'ordered.xyz')])
    abrupt = CliRunner().invoke(cli, [*base, 'abrupt', '-o', str(tmp_path / 'abrupt.xyz')])
    assert ordered.exit_code == 0 and abrupt.exit_code == 0, ordered.output + abrupt.output
    assert 'net charge +0 e' in ordered.output
    assert '  core       As44In43\n' in ordered.output and '  core       As44In43\n' in abrupt.output
    assert '  interlayer As22Cd68In16Se74\n' in ordered.output and '  ligand     Cl67\n' in ordered.output
    atoms = roles.read_structure(str(tmp_path / 'abrupt.xyz'))
    interlayer = set(atoms[atoms.arrays['qd_domain'] == 'interlayer'].get_chemical_symbols())
    assert interlayer == {'Cd', 'Se'}


def test_prefer_coordination_and_the_h_tetrahedron_orientation(tmp_path):
    """--prefer coordination reaches the recipe and picks the core with the fewest three-coordinate P; an H
    tetrahedron prints its recorded (swapped) orientation; --prefer with an explicit centre is a usage error."""
    from aiida_qdtraps.cli.cmd_build import recipe_from_options

    path = tmp_path / 'co.xyz'
    result = CliRunner().invoke(cli, ['build', 'InP', '--shape', 'cuboctahedron', '--diameter', '2.7', '--ligand', 'Cl',
                                      '--prefer', 'coordination', '-o', str(path)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith('Cl135In204P159: ') and 'core diameter 2.75 nm' in result.output
    base = ('InP', 'cuboctahedron', 2.7, 'Cl', 0, 'auto', 5.0, None, 2, 'default', 0, None, None, None, False, 0, None,
            1, 'abrupt')
    assert 'prefer' not in recipe_from_options(*base)
    assert recipe_from_options(*base, prefer='coordination')['prefer'] == 'coordination'
    tetra = CliRunner().invoke(cli, ['build', 'CdSe', '--shape', 'tetrahedron', '--diameter', '2.8', '--ligand', 'H',
                                     '-o', str(tmp_path / 'h.xyz')])
    assert tetra.exit_code == 0, tetra.output
    assert tetra.output.startswith('H48Cd56Se80: ') and ', stoichiometry swapped' in tetra.output
    bad = CliRunner().invoke(cli, ['build', 'InP', '--diameter', '2.0', '--center', 'cation', '--prefer',
                                   'coordination', '-o', str(tmp_path / 'bad.xyz')])
    assert bad.exit_code == 2 and "prefer 'coordination' applies to center 'auto' only" in bad.output


def test_complete_passivation_builds_the_perfectly_passivated_cuboctahedron(tmp_path):
    """Alexander et al.'s 2.7 nm InP cuboctahedron with Cl⁻ on every In dangling bond; the option is in the recipe."""
    out = tmp_path / 'inp.xyz'
    result = CliRunner().invoke(cli, ['build', 'InP', '--shape', 'cuboctahedron', '--diameter', '2.7', '--ligand',
                                      'Cl', '--passivation', 'complete', '-o', str(out)])
    assert result.exit_code == 0, result.output
    assert 'Cl180In164P104: 448 atoms, net charge +0 e' in result.output
    assert 'CN In 4:164' in result.output
    from aiida_qdtraps.cli.cmd_build import recipe_from_options

    base = ('InP', 'cuboctahedron', 2.7, 'Cl', 0, 'auto', 5.0, None, 2, 'default', 0, None, None, None, False, 0, None,
            1, 'abrupt')
    assert 'passivation' not in recipe_from_options(*base)
    assert recipe_from_options(*base, passivation='complete')['passivation'] == 'complete'
