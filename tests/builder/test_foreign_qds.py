"""QDs from outside the builder: cluster check, roles, ligand groups, formal charge and multiplicity.

Charges are counted by hand from formal oxidation states (Cd²⁺ Pb²⁺ In³⁺, Se²⁻ S²⁻ P³⁻, Cl⁻ F⁻, acetate⁻, H⁺ on an
anion, thiolate⁻, amine 0); electron counts from atomic numbers (H 1, C 6, N 7, O 8, F 9, P 15, S 16, Cl 17, Se 34,
Cd 48, In 49, Pb 82).
"""

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule

from aiida_qdtraps.builder import foreign
from aiida_qdtraps.builder.passivation import net_charge
from aiida_qdtraps.builder.qd import build_qd


def _plain(atoms):
    """The atoms as a foreign file would give them: elements and positions only."""
    return Atoms(atoms.get_chemical_symbols(), positions=atoms.positions)


def _cap(axis, length):
    """Three substituent offsets around an atom whose fourth (back) bond points along -axis (tetrahedral)."""
    axis = axis / np.linalg.norm(axis)
    helper = np.array([1.0, 0, 0]) if abs(axis[0]) < 0.9 else np.array([0, 1.0, 0])
    e1 = np.cross(axis, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(axis, e1)
    return [length * (axis / 3 + np.sqrt(8) / 3 * (np.cos(p) * e1 + np.sin(p) * e2))
            for p in np.radians([0.0, 120.0, 240.0])]


def _swap_halides(atoms, count, ligand):
    """Replace the first ``count`` Cl of a Cl-capped QD by a methylamine (``'amine'``) or methanethiolate
    (``'thiolate'``) bound to the same metal along the same bond (Cd–N 2.30 Å, Cd–S 2.50 Å, N–C 1.47 Å, N–H 1.01 Å,
    S–C 1.82 Å at Cd–S–C 105°, C–H 1.09 Å, tetrahedral N and C)."""
    symbols = np.array(atoms.get_chemical_symbols())
    metals = np.flatnonzero(np.isin(symbols, ['Cd', 'Pb', 'In']))
    chlorides = np.flatnonzero(symbols == 'Cl')[:count]
    new_symbols, new_positions = [], []
    for x in chlorides:
        metal = atoms.positions[metals[np.argmin(np.linalg.norm(atoms.positions[metals] - atoms.positions[x], axis=1))]]
        u = (atoms.positions[x] - metal) / np.linalg.norm(atoms.positions[x] - metal)
        if ligand == 'amine':
            n = metal + 2.30 * u
            c_dir, *h_dirs = [v / np.linalg.norm(v) for v in _cap(u, 1.0)]
            c = n + 1.47 * c_dir
            new_symbols += ['N', 'C', 'H', 'H', 'H', 'H', 'H']
            new_positions += [n, c, n + 1.01 * h_dirs[0], n + 1.01 * h_dirs[1], *(c + v for v in _cap(c_dir, 1.09))]
        else:
            s = metal + 2.50 * u
            side = np.cross(u, [0.0, 0.0, 1.0] if abs(u[2]) < 0.9 else [1.0, 0.0, 0.0])
            side /= np.linalg.norm(side)
            c_dir = np.cos(np.radians(75.0)) * u + np.sin(np.radians(75.0)) * side  # 105° from S→Cd
            c = s + 1.82 * c_dir
            new_symbols += ['S', 'C', 'H', 'H', 'H']
            new_positions += [s, c, *(c + v for v in _cap(c_dir, 1.09))]
    keep = np.setdiff1d(np.arange(len(atoms)), chlorides)
    return Atoms(list(symbols[keep]) + new_symbols, positions=np.vstack([atoms.positions[keep], new_positions]))


@pytest.fixture(scope='module')
def cd_rich():
    return _plain(build_qd('CdSe', model='Cd28Se17Cl22'))


@pytest.fixture(scope='module')
def se_rich():
    return _plain(build_qd('CdSe', model='Cd17Se28H22'))


def test_cd_rich_chloride_cdse(cd_rich):
    found = foreign.classify_qd(cd_rich)
    symbols = np.array(cd_rich.get_chemical_symbols())
    assert found.charge == 28 * 2 - 17 * 2 - 22 == 0
    assert found.electrons == 28 * 48 + 17 * 34 + 22 * 17 and found.multiplicity == 1
    assert list(found.roles[symbols == 'Cd']) == ['cation'] * 28
    assert list(found.roles[symbols == 'Se']) == ['anion'] * 17
    assert set(found.groups[symbols == 'Cl']) == {'halide'} and found.ligand_counts() == {'halide': 22}


def test_non_stoichiometric_and_charged_cd_rich(cd_rich):
    """Two Cl⁻ fewer: Cd28Se17Cl20²⁺, closed shell (the electron count drops by 2 × 17 + 2)."""
    chlorides = np.flatnonzero(np.array(cd_rich.get_chemical_symbols()) == 'Cl')
    found = foreign.classify_qd(cd_rich[np.setdiff1d(np.arange(len(cd_rich)), chlorides[:2])])
    assert found.charge == 2 and found.electrons == 28 * 48 + 17 * 34 + 20 * 17 - 2 and found.multiplicity == 1


def test_se_rich_protons_and_charge(se_rich):
    found = foreign.classify_qd(se_rich)
    assert found.charge == 17 * 2 - 28 * 2 + 22 == 0 and found.ligand_counts() == {'proton': 22}
    protons = np.flatnonzero(np.array(se_rich.get_chemical_symbols()) == 'H')
    anion_rich = foreign.classify_qd(se_rich[np.setdiff1d(np.arange(len(se_rich)), protons[:2])])
    assert anion_rich.charge == -2 and anion_rich.multiplicity == 1


def test_se_rich_cdse_with_chloride():
    """The builder's Se-rich carve with Cl on its Cd: Cd19Se28 is −18 before its 18 H⁺; Cl⁻ on a Cd adds −1."""
    atoms = _plain(build_qd('CdSe', 13.25, ligand='H', center='cation', min_core_bonds=1))
    cd = atoms.positions[np.array(atoms.get_chemical_symbols()) == 'Cd']
    outer = cd[np.argmax(np.linalg.norm(cd - cd.mean(0), axis=1))]
    atoms += Atoms('Cl', positions=[outer + 2.45 * (outer - cd.mean(0)) / np.linalg.norm(outer - cd.mean(0))])
    found = foreign.classify_qd(atoms)
    assert atoms.get_chemical_formula() == 'H18Cd19ClSe28'
    assert found.charge == 19 * 2 - 28 * 2 + 18 - 1 == -1
    assert found.ligand_counts() == {'halide': 1, 'proton': 18}
    assert found.multiplicity == 1  # 19·48 + 28·34 + 18 + 17 + 1 = 1900 electrons


def test_acetate_capped_pbs():
    atoms = _plain(build_qd('PbS', model='Pb19S6(OAc)26'))
    found = foreign.classify_qd(atoms)
    symbols = np.array(atoms.get_chemical_symbols())
    assert found.charge == 19 * 2 - 6 * 2 - 26 == 0 and found.multiplicity == 1
    assert found.ligand_counts() == {'carboxylate': 26}
    assert set(found.groups[np.isin(symbols, ['C', 'O', 'H'])]) == {'carboxylate'}
    assert list(found.roles[symbols == 'S']) == ['anion'] * 6
    assert all(sorted(atoms[unit].get_chemical_symbols()) == ['C', 'C', 'H', 'H', 'H', 'O', 'O']
               for unit, _, _ in found.units)


def test_a_radical_is_a_doublet():
    """An acetate that lost a methyl H (•CH2COO⁻) keeps its charge; the electron count turns odd."""
    atoms = _plain(build_qd('PbS', model='Pb19S6(OAc)26'))
    hydrogen = np.flatnonzero(np.array(atoms.get_chemical_symbols()) == 'H')[0]
    found = foreign.classify_qd(atoms[np.setdiff1d(np.arange(len(atoms)), [hydrogen])])
    assert found.charge == 0 and found.electrons % 2 == 1 and found.multiplicity == 2


def test_amine_capped_cdse(cd_rich):
    """Two Cl⁻ replaced by neutral methylamine: Cd28Se17Cl20(CH3NH2)2²⁺."""
    atoms = _swap_halides(cd_rich, 2, 'amine')
    found = foreign.classify_qd(atoms)
    symbols = np.array(atoms.get_chemical_symbols())
    assert found.charge == 2 and found.multiplicity == 1
    assert found.ligand_counts() == {'amine': 2, 'halide': 20}
    assert set(found.groups[np.isin(symbols, ['N', 'C', 'H'])]) == {'amine'}


def test_thiolate_on_cds_is_a_ligand_by_its_carbon():
    """Methanethiolate replacing Cl⁻ on CdS: the same charge; its S is a ligand atom, the lattice S stay anions."""
    capped = build_qd('CdS', 12.0, ligand='Cl', center='cation', min_core_bonds=1)
    q0 = net_charge(capped)
    lattice_s = int((np.array(capped.get_chemical_symbols()) == 'S').sum())
    atoms = _swap_halides(_plain(capped), 3, 'thiolate')
    found = foreign.classify_qd(atoms)
    symbols = np.array(atoms.get_chemical_symbols())
    assert found.charge == q0 and found.multiplicity == 1
    assert int((found.roles == 'anion').sum()) == lattice_s and int((symbols == 'S').sum()) == lattice_s + 3
    assert list(found.groups[(symbols == 'S') & (found.roles == 'ligand')]) == ['thiolate'] * 3
    assert found.ligand_counts()['thiolate'] == 3


def test_hydride_on_a_cation():
    """An H in place of an F⁻ on In is a hydride (H⁻): the charge stays that of the F-capped QD."""
    atoms = _plain(build_qd('InP', 15.0, ligand='F', charge=2))
    fluorine = np.flatnonzero(np.array(atoms.get_chemical_symbols()) == 'F')[0]
    indium = np.flatnonzero(np.array(atoms.get_chemical_symbols()) == 'In')
    metal = indium[np.argmin(atoms.get_distances(fluorine, indium))]
    u = atoms.positions[fluorine] - atoms.positions[metal]
    atoms[fluorine].symbol = 'H'
    atoms.positions[fluorine] = atoms.positions[metal] + 1.75 * u / np.linalg.norm(u)
    found = foreign.classify_qd(atoms)
    assert found.charge == 2 and found.groups[fluorine] == 'hydride'


@pytest.mark.parametrize('recipe', [
    {'material': 'InP', 'diameter': 15.0, 'ligand': 'F', 'charge': 2},
    {'material': 'InP', 'diameter': 15.0, 'ligand': 'OAc', 'binding': 'chelating'},
    {'material': 'InP', 'diameter': 15.0, 'ligand': 'OAc', 'binding': 'mixed', 'charge': -1},
    {'material': 'CdSe', 'diameter': 13.25, 'ligand': 'H', 'center': 'cation', 'min_core_bonds': 1},
])
def test_builder_qds_get_their_recipe_charge_back(recipe):
    atoms = build_qd(**recipe)
    found = foreign.classify_qd(_plain(atoms))
    assert found.charge == recipe.get('charge', 0) == net_charge(atoms)
    assert list(found.roles) == list(atoms.arrays['qd_role'])


def test_given_roles_keep_a_lattice_halide():
    """CsPbBr3 from the builder's extended xyz: Br is a lattice anion by the file's roles (a halide without them)."""
    atoms = build_qd('CsPbBr3', 17.6, shape='cube', termination='PbBr2')
    tagged = foreign.classify_qd(atoms, roles=atoms.arrays['qd_role'])
    untagged = foreign.classify_qd(_plain(atoms))
    assert tagged.charge == untagged.charge == 8 + 27 * 2 - 62 == 0
    assert (tagged.roles == 'anion').sum() == (atoms.arrays['qd_role'] == 'anion').sum() > 0
    assert (untagged.roles == 'anion').sum() == 0


@pytest.mark.parametrize('extra, named, reason', [
    (Atoms('C', positions=[[0.0, 0.0, 0.0]]), ['C'], 'a lone C in no recognised ligand'),
    (molecule('CH4'), ['C', 'H', 'H', 'H', 'H'], 'no carboxylate, amine or thiolate group'),
    (molecule('H2O'), ['O', 'H', 'H'], 'O'),
    (Atoms('Fe', positions=[[0.0, 0.0, 0.0]]), ['Fe'], 'a lone Fe'),
])
def test_unclassified_atoms_are_named(cd_rich, extra, named, reason):
    far = extra.copy()
    far.translate(cd_rich.positions.max(axis=0) + 6.0)
    atoms = cd_rich + far
    first = len(cd_rich)
    expected = ', '.join(f'{first + k} {symbol}' for k, symbol in enumerate(named))
    with pytest.raises(ValueError, match='cannot classify') as error:
        foreign.classify_qd(atoms)
    assert expected in str(error.value) and reason in str(error.value)


def test_a_core_element_without_formal_charge_is_refused_then_accepted(cd_rich):
    atoms = cd_rich.copy()
    first = atoms.get_chemical_symbols().index('Cd')
    atoms[first].symbol = 'Mn'
    with pytest.raises(ValueError, match=rf"no formal charge for core element\(s\) \['Mn'\] \(atoms {first} Mn\)"):
        foreign.classify_qd(atoms, cations={'Cd', 'Mn'})
    assert foreign.classify_qd(atoms, cations={'Cd', 'Mn'}, formal_charges={'Mn': 2}).charge == 0


def test_both_cation_and_anion_is_refused(cd_rich):
    with pytest.raises(ValueError, match=r"both cation and anion: \['Se'\]"):
        foreign.classify_qd(cd_rich, cations={'Cd', 'Se'}, anions={'Se'})


@pytest.mark.parametrize('crystal', [bulk('CdSe', 'zincblende', a=6.05).repeat(2), bulk('PbS', 'rocksalt', a=5.94),
                                     bulk('CdSe', 'zincblende', a=6.05, cubic=True)])
def test_a_periodic_crystal_is_not_a_cluster(crystal):
    with pytest.raises(ValueError, match='not a cluster: the bonds form a periodic crystal'):
        foreign.as_cluster(crystal)


def test_a_cell_without_vacuum_is_refused():
    """Cl–Cd–Cl (Cd–Cl 2.30 Å) in a 7.6 Å cell: Cl 3.0 Å from its image, not bonded (< 1.25 × 2.04 Å) but in contact."""
    atoms = Atoms('ClCdCl', positions=[[0.5, 5, 5], [2.8, 5, 5], [5.1, 5, 5]], cell=[7.6, 10, 10], pbc=True)
    with pytest.raises(ValueError, match=r'not a cluster: the cell is filled without vacuum \(atom \d Cl is 3.00 Å'):
        foreign.as_cluster(atoms)
    atoms.cell = [12.0, 10, 10]
    assert not foreign.as_cluster(atoms).pbc.any()


def test_a_wrapped_cluster_is_made_whole(se_rich):
    atoms = se_rich.copy()
    atoms.cell = [30.0, 31.0, 32.0]
    atoms.pbc = True
    atoms.translate(-atoms.positions.mean(axis=0))  # centred on a cell corner: split into eight pieces by wrapping
    atoms.wrap()
    cluster = foreign.as_cluster(atoms)
    assert not cluster.pbc.any()
    assert np.allclose(cluster.get_all_distances(), se_rich.get_all_distances())
    assert np.allclose(cluster.positions.mean(axis=0), [15.0, 15.5, 16.0])
    assert foreign.classify_qd(cluster).charge == 0


def test_label_qd_sets_the_arrays(se_rich):
    cluster, found = foreign.label_qd(se_rich, core_elements={'Cd', 'Se'})
    assert list(cluster.arrays['qd_role']) == list(found.roles)
    assert set(cluster.arrays['qd_domain']) == {'core', 'ligand'}
    assert set(cluster.arrays['qd_group']) == {'cation', 'anion', 'proton'}


def test_a_ligand_with_two_groups_adds_their_charges():
    """Thioglycolate ⁻S–CH2–COO⁻ on its own (approximate geometry: S–C 1.82, C–C 1.53, C–O 1.26, C–H 1.09 Å)."""
    atoms = Atoms('SCHHCOO', positions=[[0, 0, 0], [1.82, 0, 0], [2.18, -0.5, 0.89], [2.18, -0.5, -0.89],
                                        [2.40, 1.42, 0], [1.77, 2.51, 0], [3.66, 1.42, 0]])
    found = foreign.classify_qd(atoms)
    assert found.charge == -2 and found.ligand_counts() == {'carboxylate+thiolate': 1}
    assert found.electrons == 16 + 2 * 6 + 2 + 2 * 8 + 2 and found.multiplicity == 1
