"""Vacancies of all four kinds, core@shell with domains, facet reconstruction, non-stoichiometric clusters, roles."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from aiida_qdtraps.builder import passivation, qd, roles, shapes, shell, vacancies


@pytest.fixture(scope='module')
def inp_qd():
    """In79P68F33: a 2.0 nm InP sphere around an In, neutral with F."""
    return qd.build_qd('InP', 20.0, ligand='F', center='cation')


@pytest.mark.parametrize('kind, removed, charge_change', [
    ('ligand', 'F', 1), ('anion', 'P', 3), ('cation', 'FIn', -2), ('pair', 'FInP', 1),
])
def test_vacancies_of_all_kinds_on_inp(inp_qd, kind, removed, charge_change, check_qd):
    sites = vacancies.distinct_vacancies(inp_qd, kind)
    candidates = vacancies.candidate_removals(inp_qd, kind)
    # symmetry reduction: the core is Td, so classes are fewer than removals and multiplicities add up
    assert 1 <= len(sites) < len(candidates)
    assert sum(site.multiplicity for site in sites) == len(candidates)
    assert sites[0].formula == removed and sites[0].charge_change == charge_change
    assert len({s.atoms for s in sites}) == len(sites)
    charged = vacancies.make_vacancy(inp_qd, kind, site=0)
    assert len(charged) == len(inp_qd) - len(sites[0].atoms)
    assert passivation.net_charge(charged) == charge_change == charged.info['qd_vacancy']['charge']
    neutral = vacancies.make_vacancy(inp_qd, kind, site=0, neutralize=True)
    check_qd(neutral, 'InP', charge=0)
    # the vacancy stays empty: no atom where the removed ones were
    gone = inp_qd.positions[list(sites[0].atoms)]
    assert np.linalg.norm(neutral.positions[:, None] - gone[None], axis=-1).min() > 0.5


def test_every_site_kind_is_charged_as_stated(inp_qd):
    for kind in vacancies.VACANCY_KINDS:
        for index, site in enumerate(vacancies.distinct_vacancies(inp_qd, kind)):
            result = vacancies.make_vacancy(inp_qd, kind, site=index)
            assert passivation.net_charge(result) == site.charge_change


def test_vacancy_site_from_seed_is_reproducible_and_sampling(inp_qd):
    a = vacancies.make_vacancy(inp_qd, 'cation', seed=7)
    b = vacancies.make_vacancy(inp_qd, 'cation', seed=7)
    assert a.info['qd_vacancy'] == b.info['qd_vacancy'] and np.array_equal(a.positions, b.positions)
    sample = vacancies.distinct_vacancies(inp_qd, 'cation', max_sites=3, seed=1)
    assert len(sample) == 3
    with pytest.raises(ValueError, match=r'vacancy site 99 is out of range: the QD has \d+ distinct cation sites'):
        vacancies.make_vacancy(inp_qd, 'cation', site=99)


@pytest.mark.parametrize('material, diameter', [('InP', 6.0), ('GaP', 5.5)])
def test_min_bonds_one_gives_the_cage_anion_and_pair_sites(material, diameter):
    """The 16-atom X6P4F6 cage: every P neighbour has 2 core bonds, so no anion / pair site at the default rule; at
    ``min_bonds=1`` (a neighbour keeps 1 core bond plus its F) the 4 equivalent P³⁻ and 12 FXP sites appear."""
    cage = qd.build_qd(material, diameter, center='interstitial', min_core_bonds=1, vacuum=2.5)
    cation = material[:2]
    assert cage.get_chemical_formula() == f'F6{cation}6P4'
    for kind in ('anion', 'pair'):
        with pytest.raises(ValueError, match=f'has no {kind} vacancy site that leaves every neighbour >= 2'):
            vacancies.distinct_vacancies(cage, kind)
    (anion,) = vacancies.distinct_vacancies(cage, 'anion', min_bonds=1)
    assert (anion.formula, anion.charge_change, anion.multiplicity) == ('P', 3, 4)
    (pair,) = vacancies.distinct_vacancies(cage, 'pair', min_bonds=1)
    assert (pair.formula, pair.charge_change, pair.multiplicity) == (f'F{cation}P', 1, 12)
    # through the one-call recipe: every cation keeps >= 1 core bond and the charge is the removed ions'
    for kind, formula, charge in (('anion', f'F6{cation}6P3', 3), ('pair', f'F5{cation}5P3', 1)):
        vacant = qd.build_qd(material, diameter, center='interstitial', min_core_bonds=1, vacuum=2.5,
                             vacancy=kind, vacancy_site=0, vacancy_min_bonds=1)
        assert vacant.get_chemical_formula() == formula and passivation.net_charge(vacant) == charge
        core = vacant[[i for i, s in enumerate(vacant.get_chemical_symbols()) if s != 'F']]
        d = np.linalg.norm(core.positions[:, None] - core.positions[None], axis=-1)
        is_p = np.array(core.get_chemical_symbols()) == 'P'
        bonds = ((d < 1.15 * d[d > 0.1].min()) & (is_p[:, None] != is_p[None])).sum(1)
        assert bonds.min() == 1


def test_min_bonds_is_checked(inp_qd):
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match='min_bonds must be an integer >= 1'):
            vacancies.candidate_removals(inp_qd, 'anion', min_bonds=bad)


@pytest.mark.parametrize('monolayers', [1, 2, 3])
@pytest.mark.parametrize('interlayer', ['abrupt', 'alloyed', 'ordered'])
def test_inas_cdse_core_shell_domains(monolayers, interlayer, check_qd):
    atoms = qd.build_qd('InAs', 16.0, ligand='Cl', center='cation', shell='CdSe', monolayers=monolayers,
                        interlayer=interlayer, seed=1)
    check_qd(atoms, 'InAs')
    symbols = np.array(atoms.get_chemical_symbols())
    domains = atoms.arrays['qd_domain']
    n_core = len(shapes.carve_core('InAs', 16.0, center='cation'))
    assert (domains == 'core').sum() == n_core and set(symbols[domains == 'core']) == {'In', 'As'}
    assert set(symbols[domains == 'ligand']) <= {'Cl'}
    assert ('shell' in domains) == (monolayers > 1)
    if monolayers > 1:
        assert set(symbols[domains == 'shell']) == {'Cd', 'Se'}
    interface = set(symbols[domains == 'interlayer'])
    assert interface == ({'Cd', 'Se'} if interlayer == 'abrupt' else {'In', 'As', 'Cd', 'Se'})
    # shells are outside the core: every interlayer atom is farther from the centre than the nearest core surface
    centre = atoms.positions[domains == 'core'].mean(0)
    radius = np.linalg.norm(atoms.positions - centre, axis=1)
    assert radius[domains == 'interlayer'].min() > radius[domains == 'core'].min()
    assert radius[domains == 'shell'].min() > radius[domains == 'core'].max() - 1e-6 if monolayers > 1 else True


def test_alloyed_interlayer_has_cation_vacancies_and_fewer_ligands():
    abrupt = qd.build_qd('InAs', 16.0, ligand='Cl', center='cation', shell='CdSe', monolayers=3, interlayer='abrupt')
    alloyed = qd.build_qd('InAs', 16.0, ligand='Cl', center='cation', shell='CdSe', monolayers=3,
                          interlayer='alloyed')
    count = {name: atoms.get_chemical_symbols().count('Cl') for name, atoms in (('a', abrupt), ('b', alloyed))}
    assert count['b'] < count['a']
    il = alloyed.arrays['qd_domain'] == 'interlayer'
    il_roles = alloyed.arrays['qd_role'][il]
    assert (il_roles == 'cation').sum() < (il_roles == 'anion').sum()


def test_reconstruction_replaces_two_thirds_of_3c_anions(check_qd):
    core = qd.build_qd('InAs', 25.0, shape='truncated_tetrahedron', ligand='Cl', center='anion')
    rebuilt = qd.build_qd('InAs', 25.0, shape='truncated_tetrahedron', ligand='Cl', center='anion', reconstruct=2 / 3)
    check_qd(rebuilt, 'InAs', min_bonds=1)  # In next to a substituted site keep their bond to its Cl
    three_c = [qd.describe(a).coordination['As'].get(3, 0) for a in (core, rebuilt)]
    assert three_c[1] < three_c[0]
    substituted = (rebuilt.arrays['qd_role'] == 'ligand') & (rebuilt.arrays['qd_domain'] == 'ligand')
    assert np.array(rebuilt.get_chemical_symbols())[substituted].tolist().count('Cl') > \
        core.get_chemical_symbols().count('Cl')
    # the standalone form on a passivated QD keeps the charge by adding Cl ligands
    again = shell.reconstruct_surface(core, 2 / 3, '-1-1-1', charge=0)
    assert passivation.net_charge(again) == 0 and len(again) > len(core)
    with pytest.raises(ValueError, match="no 3-coordinate anion on facet '111'"):
        shell.reconstruct_surface(core, 0.5, '111')


@pytest.mark.parametrize('stoichiometry, ligand, formula', [
    ('default', 'H', 'H18Cd19Se28'), ('swapped', 'Cl', 'Cd28Cl18Se19'),
])
def test_se_rich_and_cd_rich_clusters(stoichiometry, ligand, formula):
    """Bhati et al.'s pair of clusters: Se-rich with H on Se, Cd-rich (sublattices swapped) with Cl on Cd."""
    arrangements = [qd.build_qd('CdSe', 13.25, ligand=ligand, center='cation', min_core_bonds=1,
                                stoichiometry=stoichiometry, arrangement=k) for k in range(3)]
    for atoms in arrangements:
        assert atoms.get_chemical_formula() == formula
        assert passivation.net_charge(atoms) == 0
    inorganic = arrangements[0].arrays['qd_role'] != 'ligand'
    assert all(np.allclose(a.positions[inorganic], arrangements[0].positions[inorganic]) for a in arrangements)
    ligand_sets = {tuple(np.round(a.positions[~inorganic], 3).ravel()) for a in arrangements}
    assert len(ligand_sets) == 3  # several ligand arrangements from one core


def test_infer_roles_and_domains_of_an_external_core_shell(tmp_path):
    built = qd.build_qd('InAs', 16.0, ligand='Cl', center='cation', shell='CdSe', monolayers=2)
    plain = Atoms(built.get_chemical_symbols(), positions=built.positions)
    path = tmp_path / 'qd.xyz'
    plain.write(path, format='xyz')
    atoms = roles.read_structure(str(path), core_elements={'In', 'As'})
    assert np.array_equal(atoms.arrays['qd_role'], built.arrays['qd_role'])
    domains = atoms.arrays['qd_domain']
    assert np.array_equal(domains == 'core', built.arrays['qd_domain'] == 'core')
    assert np.array_equal(domains == 'ligand', built.arrays['qd_domain'] == 'ligand')
    assert set(domains) == {'core', 'interlayer', 'shell', 'ligand'}
    assert passivation.net_charge(atoms) == 0
    # the builder's own extxyz keeps its tags
    qd.write_qd(built, tmp_path / 'built.xyz')
    again = roles.read_structure(str(tmp_path / 'built.xyz'))
    assert np.array_equal(again.arrays['qd_domain'], built.arrays['qd_domain'])
    with pytest.raises(ValueError, match=r'elements cannot be both cation and anion: \[\'S\'\]'):
        roles.infer_roles(atoms, cations={'Cd', 'S'}, anions={'S'})
