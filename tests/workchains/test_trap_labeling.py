"""TrapLabelingWorkChain / label_traps on the recorded PBE0 run of In4PF9, and the query helpers on its records."""

from __future__ import annotations

import ase.io
import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_qdtraps.data import TrapRecord
from aiida_qdtraps.workchains.mo_window import extract_mo_window
from aiida_qdtraps.workchains.traps import TrapLabelingWorkChain, label_traps

PBE0 = 'cp2k/pbe0_success'


@pytest.fixture
def recorded_scf(data_dir):
    """(structure, mo_window) nodes of the recorded PBE0 run, through the same calcfunction the workchain uses."""
    retrieved = orm.FolderData()
    retrieved.base.repository.put_object_from_file(str(data_dir / PBE0 / 'aiida-MOS-1_0.molden'),
                                                   'aiida-MOS-1_0.molden')
    retrieved.store()
    window = extract_mo_window(retrieved, orm.Dict({'occupied': 30, 'virtual': 10}))['mo_window']
    structure = orm.StructureData(ase=ase.io.read(data_dir / PBE0 / 'qd.xyz')).store()
    return structure, window


def test_workchain_outputs(recorded_scf):
    structure, window = recorded_scf
    results, node = run_get_node(TrapLabelingWorkChain, structure=structure, mo_window=window,
                                 protocol=orm.Str('fast'))
    assert node.is_finished_ok, node.exit_message
    summary = results['summary']
    spin = summary['spins'][0]
    assert spin['vbm_ev'] <= spin['homo_ev'] < spin['lumo_ev'] <= spin['cbm_ev']
    labels = results['atom_labels']
    names = np.array(labels.base.attributes.get('label_names'))[labels.get_array('label')]
    symbols = np.array(labels.base.attributes.get('symbols'))
    assert set(names[symbols == 'F']) == {'ligand'}
    assert 'ligand' not in set(names[symbols != 'F'])
    for record in results.get('traps', {}).values():
        assert isinstance(record, TrapRecord)
        assert record['protocol'] == 'fast'
        assert record['depth'] >= 0
        assert record['center_element'] in ('In', 'P')
    assert results['participation_plot'].get_content('rb')[:4] == b'\x89PNG'
    assert results['pdos_plot'].get_content('rb')[:4] == b'\x89PNG'


def test_label_traps_rejects_other_structure(recorded_scf):
    structure, window = recorded_scf
    atoms = structure.get_ase()
    del atoms[-1]
    _, node = label_traps.run_get_node(orm.StructureData(ase=atoms), window)
    assert node.exit_status == 301
    assert 'structure has 13 atoms' in node.exit_message
    assert not node.base.links.get_outgoing().all()


def test_label_traps_rejects_window_without_lumo(recorded_scf):
    structure, window = recorded_scf
    occupied = orm.ArrayData()
    mask = window.get_array('occupations')[0] > 0
    for name in ('energies', 'occupations'):
        occupied.set_array(name, window.get_array(name)[:, mask])
    occupied.set_array('coefficients', window.get_array('coefficients')[:, :, mask])
    for name in ('overlap', 'ao_atom'):
        occupied.set_array(name, window.get_array(name))
    _, node = label_traps.run_get_node(structure, occupied)
    assert node.exit_status == 300
    assert 'must contain the HOMO and the LUMO' in node.exit_message
    assert not node.base.links.get_outgoing().all()


def test_label_traps_rejects_unknown_parameter(recorded_scf):
    structure, window = recorded_scf
    _, node = label_traps.run_get_node(structure, window, parameters=orm.Dict({'pr_cutoff': 0.4}))
    assert node.exit_status == 302
    assert 'pr_cutoff' in node.exit_message


def test_find_traps_filters_and_provenance(aiida_profile_clean, recorded_scf):
    from aiida_qdtraps.query import find_traps, trap_filters, trap_provenance, trap_table

    structure, window = recorded_scf
    results, node = run_get_node(TrapLabelingWorkChain, structure=structure, mo_window=window,
                                 protocol=orm.Str('fast'), plots=orm.Bool(False))
    assert node.is_finished_ok
    records = list(results['traps'].values())
    assert records, 'the recorded In4PF9 run has trap states'
    assert {n.pk for n in find_traps(protocol='fast')} == {n.pk for n in records}
    holes = find_traps(carrier='hole', protocol='fast')
    assert holes and all(n['carrier'] == 'hole' for n in holes)
    depths = [n['depth'] for n in find_traps(protocol='fast')]
    assert depths == sorted(depths, reverse=True)
    threshold = sorted(depths)[len(depths) // 2]
    assert {n.pk for n in find_traps(protocol='fast', min_depth=threshold)} == \
        {n.pk for n in records if n['depth'] >= threshold}
    assert find_traps(protocol='fast', center_element='Ga') == []
    assert find_traps(protocol='moderate') == []
    rows = trap_table(holes)
    assert rows[0]['pk'] == holes[0].pk and rows[0]['carrier'] == 'hole'
    walk = trap_provenance(records[0])
    assert walk['structure'].uuid == structure.uuid and walk['mo_window'].uuid == window.uuid
    assert walk['recipe'] is None  # this structure was read from a file, not built
    with pytest.raises(ValueError, match="carrier must be 'hole' or 'electron', got 'holes'"):
        trap_filters(carrier='holes')


def test_trap_provenance_finds_the_relax_behind_a_box(aiida_profile_clean, recorded_scf, generate_cp2k_calc):
    """A PBE0 run on a relaxed structure that was put in a new box (``center_in_box``, what the work chains do with
    ``box_vacuum``) still names the GEO_OPT CalcJob as ``relax_calculation``; a structure from a file has none."""
    from aiida_qdtraps.query import geometry_origin, trap_provenance
    from aiida_qdtraps.workchains.build import center_in_box

    read, window = recorded_scf
    relax = generate_cp2k_calc({'aiida.out': 'GEOMETRY OPTIMIZATION COMPLETED\n'}, structure=read,
                               parameters={'GLOBAL': {'RUN_TYPE': 'GEO_OPT'}}, input_structure=read.clone())
    relaxed = relax.outputs.output_structure
    boxed = center_in_box(relaxed, orm.Float(4.0))
    assert geometry_origin(boxed).uuid == relax.uuid
    trap = next(iter(label_traps(boxed, window)['traps'].values()))
    assert isinstance(trap, TrapRecord)
    walk = trap_provenance(trap)
    assert walk['structure'].uuid == boxed.uuid
    assert walk['relax_calculation'].uuid == relax.uuid
    unrelaxed = next(iter(label_traps(read, window)['traps'].values()))
    assert geometry_origin(read) is None and trap_provenance(unrelaxed)['relax_calculation'] is None


def test_label_traps_takes_roles_from_the_structure_a_relax_started_from(recorded_scf, generate_cp2k_calc):
    """A CP2K relax's ``output_structure`` carries no tags: ``label_traps`` takes the roles of the tagged structure
    the relax started from (output_structure ← CalcJob ← its ``structure`` input), not roles re-inferred from the
    elements. Here the recipe placed one F on an anion lattice site, which element inference cannot see."""
    read, window = recorded_scf
    symbols = read.get_ase().get_chemical_symbols()
    roles = ['anion' if s == 'P' else 'cation' if s == 'In' else 'ligand' for s in symbols]
    lattice_fluoride = symbols.index('F')
    roles[lattice_fluoride] = 'anion'
    tagged = read.clone()
    tagged.base.attributes.set('qd_roles', roles)
    tagged.store()
    moved = read.get_ase()
    moved.translate([0.1, 0.0, -0.1])  # the relaxed geometry: same atoms, new positions, no tags
    relax = generate_cp2k_calc({'aiida.out': 'GEOMETRY OPTIMIZATION COMPLETED\n'},
                               structure=orm.StructureData(ase=moved), parameters={'GLOBAL': {'RUN_TYPE': 'GEO_OPT'}},
                               input_structure=tagged)
    relaxed = relax.outputs.output_structure
    assert relaxed.base.attributes.get('qd_roles', None) is None

    results, node = label_traps.run_get_node(relaxed, window)
    assert node.is_finished_ok, node.exit_message
    labels = results['atom_labels']
    found = list(np.array(labels.base.attributes.get('role_names'))[labels.get_array('role')])
    assert found == roles
    assert found[lattice_fluoride] == 'anion'
