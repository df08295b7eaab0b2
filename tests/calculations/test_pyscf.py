"""``PyscfCalculation``: the job reproduces PySCF run in-process, its MO window is orthonormal and ``label_traps``
reads it; bad charge/multiplicity/basis is refused before anything is stored."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase import Atoms

from aiida_qdtraps.calculations.pyscf import SCRIPT, PyscfCalculation, pyscf_parameters
from aiida_qdtraps.workchains.traps import label_traps

WATER = Atoms('OH2', positions=[(0.0, 0.0, 0.1173), (0.0, 0.7572, -0.4692), (0.0, -0.7572, -0.4692)])
PHOSPHINE = Atoms('PH3', positions=[(0.0, 0.0, 0.1270), (1.1920, 0.0, -0.5920), (-0.5960, 1.0323, -0.5920),
                                    (-0.5960, -1.0323, -0.5920)])


def test_job_input_writes_script_structure_and_settings(pyscf_code, prepare_calcjob):
    """The job's folder holds the settings, the structure and the script; one serial command logs to pyscf.log."""
    structure = orm.StructureData(ase=WATER)
    folder, calcinfo = prepare_calcjob(PyscfCalculation, {'code': pyscf_code, 'structure': structure,
                                                          'parameters': orm.Dict({'basis': 'sto-3g'})})
    params = json.loads(pathlib.Path(folder.get_abs_path('input.json')).read_text())
    assert params['basis'] == 'sto-3g' and params['structure_file'] == 'structure.xyz'
    assert pathlib.Path(folder.get_abs_path('structure.xyz')).read_text().splitlines()[0] == '3'
    assert pathlib.Path(folder.get_abs_path('pyscf_script.py')).read_text() == SCRIPT.read_text()
    (codeinfo,) = calcinfo.codes_info
    assert codeinfo.cmdline_params == ['pyscf_script.py', 'input.json']
    assert (codeinfo.stdout_name, codeinfo.join_files) == ('pyscf.log', True)
    assert calcinfo.retrieve_list == ['results.npz', 'results.json', 'pyscf.log', 'input.json', 'mo_*.cube']
    assert calcinfo.local_copy_list == [] and calcinfo.remote_copy_list == []
    options = PyscfCalculation.spec().inputs['metadata']['options']
    assert options['parser_name'].default == 'qdtraps.pyscf' and options['withmpi'].default is False
    assert options['resources'].default == {'num_machines': 1, 'num_mpiprocs_per_machine': 1}


def _run(code, atoms, **parameters):
    structure = orm.StructureData(ase=atoms)
    structure.pbc = (False, False, False)
    return run_get_node(PyscfCalculation, code=code, structure=structure, parameters=orm.Dict(parameters))


def _direct_energy(atoms, basis, charge=0, spin=0):
    """Energy of PBE0 in PySCF's own API (no project code): the reference."""
    from pyscf import dft, gto

    mol = gto.M(atom=[(s, tuple(p)) for s, p in zip(atoms.get_chemical_symbols(), atoms.positions)], basis=basis,
                charge=charge, spin=spin, verbose=0)
    mf = dft.RKS(mol) if spin == 0 else dft.UKS(mol)
    mf.xc = 'pbe0'
    mf.conv_tol = 1e-11
    return mf.kernel(), mf


@pytest.mark.parametrize(('atoms', 'basis'), [(WATER, 'sto-3g'), (PHOSPHINE, 'def2-svp')], ids=['H2O', 'PH3'])
def test_job_reproduces_pyscf_and_window_is_orthonormal(pyscf_code, atoms, basis):
    results, node = _run(pyscf_code, atoms, basis=basis, conv_tol=1e-11, mo_window={'occupied': 3, 'virtual': 2})
    assert node.is_finished_ok, node.exit_message
    reference, mf = _direct_energy(atoms, basis)
    out = results['output_parameters']
    assert abs(out['energy_ha'] - reference) < 1e-8
    assert out['converged'] and out['scf_step'] == 'diis'
    homo = int(np.flatnonzero(mf.mo_occ > 0).max())
    assert out['homo_ev'] == pytest.approx(mf.mo_energy[homo] * 27.211386245988, abs=1e-6)
    assert out['gap_ev'] == pytest.approx((mf.mo_energy[homo + 1] - mf.mo_energy[homo]) * 27.211386245988, abs=1e-6)

    window = results['mo_window']
    c, s = window.get_array('coefficients'), window.get_array('overlap')
    assert c.shape == (1, mf.mol.nao, 5)
    assert np.abs(c[0].T @ s @ c[0] - np.eye(5)).max() < 1e-8
    assert list(window.get_array('occupations')[0]) == [2.0, 2.0, 2.0, 0.0, 0.0]
    assert list(window.get_array('indices')[0]) == list(range(homo - 2, homo + 3))
    assert window.base.attributes.get('symbols') == atoms.get_chemical_symbols()
    assert np.bincount(window.get_array('ao_atom')).sum() == mf.mol.nao
    charges = results['charges']
    # neutral molecule: charges sum to zero; H is positive in both H2O and (Mulliken) in PH3 is not asserted
    assert abs(charges.get_array('mulliken').sum()) < 1e-8
    assert abs(charges.get_array('lowdin').sum()) < 1e-8
    assert charges.get_array('mulliken')[0] < 0 if atoms is WATER else True


def test_doublet_runs_unrestricted(pyscf_code):
    results, node = _run(pyscf_code, WATER, basis='sto-3g', charge=1, multiplicity=2,
                         mo_window={'occupied': 2, 'virtual': 2}, cube_mos=['homo'])
    assert node.is_finished_ok, node.exit_message
    reference, _ = _direct_energy(WATER, 'sto-3g', charge=1, spin=1)
    out = results['output_parameters']
    assert abs(out['energy_ha'] - reference) < 1e-8
    assert out['nspin'] == 2 and out['nelectron'] == 9
    occ = results['mo_window'].get_array('occupations')
    assert occ.tolist() == [[1, 1, 0, 0], [1, 1, 0, 0]]
    assert results['mo_window'].get_array('indices').tolist() == [[3, 4, 5, 6], [2, 3, 4, 5]]  # 5 alpha, 4 beta
    assert list(results['cubes']) == ['mo_4']
    assert abs(results['charges'].get_array('lowdin').sum() - 1) < 1e-8


def test_unconverged_scf_exits_310_after_the_ladder(pyscf_code):
    results, node = _run(pyscf_code, PHOSPHINE, basis='sto-3g', max_cycle=1, conv_tol=1e-12)
    assert node.exit_status == 310
    attempts = results['output_parameters']['attempts']
    assert [a['step'] for a in attempts] == ['diis', 'level_shift', 'damping', 'newton']
    assert not any(a['converged'] for a in attempts)


@pytest.mark.parametrize(('changes', 'symbols', 'message'), [
    ({'multiplicity': 2}, ['O', 'H', 'H'], 'charge 0 and multiplicity 2 are impossible together: 10 electrons'),
    ({'charge': 1}, ['O', 'H', 'H'], 'charge 1 and multiplicity 1 are impossible'),
    ({'multiplicity': 0}, ['O', 'H', 'H'], 'multiplicity must be an integer >= 1, got 0'),
    ({'basis': '6-31g'}, ['In', 'P'], "basis '6-31g' has no functions for element 'In'"),
    ({'basis': 'no-such-basis'}, ['P'], "basis 'no-such-basis' has no functions for element 'P'"),
    ({'basis': 'sto-3g'}, ['In', 'P'], "basis 'sto-3g' has no ECP for element 'In' (Z = 49)"),
    ({'xc': 'pbe7'}, ['P'], "unknown exchange-correlation functional 'pbe7'"),
    ({'smearing': 0.1}, ['P'], "unknown PySCF parameter(s) ['smearing']"),
])
def test_parameters_refused_with_the_value_named(changes, symbols, message):
    with pytest.raises(ValueError, match=message.replace('(', r'\(').replace(')', r'\)').replace('[', r'\[')
                       .replace(']', r'\]')):
        pyscf_parameters(changes, symbols)


def test_heavy_elements_take_an_ecp_basis_or_all_electron_on_request():
    for basis in ('def2-svp', 'lanl2dz'):
        assert pyscf_parameters({'basis': basis}, ['In', 'In', 'P', 'P'])['basis'] == basis
    heavy = ['Cd', 'Se', 'Pb', 'S', 'Cs', 'Br', 'Br', 'Cl']
    assert pyscf_parameters({'basis': 'def2-svp'}, heavy)['all_electron'] is False
    assert pyscf_parameters({'basis': 'sto-3g', 'all_electron': True}, ['In', 'In', 'P', 'P'])['all_electron'] is True


def test_bad_multiplicity_stores_nothing(pyscf_code):
    before = orm.QueryBuilder().append(orm.CalcJobNode).count()
    with pytest.raises(ValueError, match='multiplicity 1 are impossible'):
        _run(pyscf_code, WATER, basis='sto-3g', charge=1)
    assert orm.QueryBuilder().append(orm.CalcJobNode).count() == before


def _label_pyscf_window(code, structure, parameters):
    results, node = run_get_node(PyscfCalculation, code=code, structure=structure, parameters=orm.Dict(parameters))
    assert node.is_finished_ok, node.exit_message
    labels, label_node = label_traps.run_get_node(structure, results['mo_window'])
    assert label_node.is_finished_ok, label_node.exit_message
    spin = labels['summary']['spins'][0]
    assert spin['homo_ev'] == pytest.approx(results['output_parameters']['homo_ev'], abs=1e-9)
    assert spin['lumo_ev'] == pytest.approx(results['output_parameters']['lumo_ev'], abs=1e-9)
    assert spin['vbm_ev'] <= spin['homo_ev'] < spin['lumo_ev'] <= spin['cbm_ev']
    assert labels['atom_labels'].get_array('label').shape == (len(structure.sites),)


@pytest.mark.slow  # 87 s wall on 2 shared cores (load 6)
def test_label_traps_reads_a_pyscf_window(pyscf_code, tiny_qd):
    """In4PF9 with a small ECP basis (LANL2DZ), density fitting and a coarse grid: label_traps reads the window."""
    _label_pyscf_window(pyscf_code, tiny_qd, {'basis': 'lanl2dz', 'density_fit': True, 'grid_level': 1,
                                                 'conv_tol': 1e-7, 'mo_window': {'occupied': 12, 'virtual': 8}})

