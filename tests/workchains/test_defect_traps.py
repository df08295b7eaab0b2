"""Intact versus F⁻-vacancy In10P4F18: real CP2K PBE0 (`fast`) outputs, labelled again (regression).

The MOLDEN files were recorded from ``examples/defect_traps.py`` (HybridScfWorkChain → TrapLabelingWorkChain on the
builder's unrelaxed geometries); docs/traps.md discusses the numbers. The tests check that the labels stay
consistent with the defects: the electron traps sit on exactly the under-coordinated In atoms, the hole traps of
the intact QD on 4-coordinate P, and the In that lost its F in the vacancy QD carries a new electron trap.
"""

from __future__ import annotations

import gzip

import ase.io
import numpy as np
import pytest
from aiida import orm

from aiida_qdtraps.analysis.bonds import bond_pairs, coordination_numbers
from aiida_qdtraps.builder.qd import build_qd
from aiida_qdtraps.workchains.mo_window import extract_mo_window
from aiida_qdtraps.workchains.traps import label_traps

DATA = 'cp2k/defect_fast'
RECIPE = {'material': 'InP', 'diameter': 11.0, 'ligand': 'F', 'charge': 0, 'center': 'interstitial',
          'shape': 'tetrahedron', 'min_core_bonds': 1, 'vacuum': 3.5}
QDS = {'intact': RECIPE, 'ligand_vacancy': {**RECIPE, 'vacancy': 'ligand', 'vacancy_site': 1}}


def labelled(data_dir, name):
    """Label the recorded run ``name`` through the same calcfunctions as the pipeline."""
    folder = data_dir / DATA / name
    retrieved = orm.FolderData()
    with gzip.open(folder / 'aiida-MOS-1_0.molden.gz', 'rb') as handle:
        retrieved.base.repository.put_object_from_bytes(handle.read(), 'aiida-MOS-1_0.molden')
    retrieved.store()
    window = extract_mo_window(retrieved, orm.Dict({'occupied': 10, 'virtual': 10}))['mo_window']
    structure = orm.StructureData(ase=ase.io.read(folder / 'qd.xyz')).store()
    results, node = label_traps.run_get_node(structure, window, context=orm.Dict({'protocol': 'fast'}))
    assert node.is_finished_ok, node.exit_message
    atoms = structure.get_ase()
    cn = coordination_numbers(bond_pairs(atoms.positions, atoms.get_chemical_symbols()), len(atoms))
    traps = [record.get_dict() for _, record in sorted(results.get('traps', {}).items())]
    return atoms, cn, results['summary']['spins'][0], traps


@pytest.mark.parametrize('name', QDS)
def test_recorded_geometry_is_the_builders(data_dir, name):
    """The recorded QDs are what the builder makes from the recipe today (same atoms, same order, same place)."""
    recorded = ase.io.read(data_dir / DATA / name / 'qd.xyz')
    built = build_qd(**QDS[name])
    assert recorded.get_chemical_symbols() == built.get_chemical_symbols()
    shift = recorded.positions.mean(0) - built.positions.mean(0)  # the SCF box may re-centre the QD
    np.testing.assert_allclose(recorded.positions, built.positions + shift, atol=1e-4)


def test_intact_qd(data_dir):
    atoms, cn, edges, traps = labelled(data_dir, 'intact')
    symbols = np.array(atoms.get_chemical_symbols())
    assert sorted(cn[symbols == 'P']) == [4, 4, 4, 4]
    under_coordinated_in = set(np.flatnonzero((symbols == 'In') & (cn < 4)))
    assert under_coordinated_in == {0, 10, 12, 13}
    # regression (eV): PBE0 fast, HOMO-LUMO gap 0.922 eV
    assert edges['homo_ev'] == pytest.approx(-8.428, abs=2e-3) and edges['lumo_ev'] == pytest.approx(-7.506, abs=2e-3)
    assert edges['vbm_ev'] == pytest.approx(-8.592, abs=2e-3) and edges['cbm_ev'] == pytest.approx(-3.176, abs=2e-3)
    electron = [t for t in traps if t['carrier'] == 'electron']
    hole = [t for t in traps if t['carrier'] == 'hole']
    # every electron trap sits on an under-coordinated In, and every such In carries one
    assert {t['center'] for t in electron} == under_coordinated_in
    assert all(t['kind'] == 'under-coordinated' for t in electron)
    assert max(t['depth'] for t in electron) == pytest.approx(4.329, abs=5e-3)
    # no P is under-coordinated, so the hole traps are structural (a degenerate pair on P-4c at the HOMO)
    assert [(t['center_element'], t['center_coordination'], t['kind']) for t in hole] == [('P', 4, 'structural')] * 2
    assert hole[0]['depth'] == pytest.approx(0.158, abs=2e-3)


def test_ligand_vacancy_adds_an_electron_trap_on_the_bared_in(data_dir):
    """Removing the F of the 4-coordinate In2 (QD charge +1) makes In2 3-coordinate and puts an electron trap on
    it; the traps of the other under-coordinated In stay, the P-4c hole pair of the intact QD is gone."""
    _, cn_intact, _, traps_intact = labelled(data_dir, 'intact')
    atoms, cn, edges, traps = labelled(data_dir, 'ligand_vacancy')
    symbols = np.array(atoms.get_chemical_symbols())
    assert cn_intact[2] == 4 and cn[2] == 3  # In2 lost its F (atom order of the cores is unchanged)
    under_coordinated_in = set(np.flatnonzero((symbols == 'In') & (cn < 4)))
    assert under_coordinated_in == {0, 2, 10, 12, 13}
    electron = [t for t in traps if t['carrier'] == 'electron']
    assert {t['center'] for t in electron} == under_coordinated_in
    assert 2 not in {t['center'] for t in traps_intact}
    (bared,) = [t for t in electron if t['center'] == 2]
    assert bared['kind'] == 'under-coordinated' and bared['center_coordination'] == 3
    # regression (eV): PBE0 fast, HOMO-LUMO gap 1.381 eV
    assert edges['homo_ev'] == pytest.approx(-11.495, abs=2e-3) and edges['lumo_ev'] == pytest.approx(-10.114, abs=2e-3)
    assert edges['cbm_ev'] == pytest.approx(-5.763, abs=2e-3)
    assert bared['depth'] == pytest.approx(2.420, abs=5e-3)
    assert bared['participation_ratio'] == pytest.approx(0.18, abs=0.01)
    assert not [t for t in traps if t['carrier'] == 'hole']
