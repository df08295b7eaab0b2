"""``BaderChargeFlowWorkChain`` steps and calcfunctions without running a Bader program (named exit codes, domains,
domain PDOS from the recorded CP2K PBE0 MOLDEN file)."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from ase.io import read

from aiida_qdtraps.workchains.charge_flow import (
    BaderChargeFlowWorkChain,
    compute_charge_flow,
    compute_domain_pdos,
    valence_from_parameters,
)
from aiida_qdtraps.workchains.mo_window import extract_mo_window

KINDS = [{'_': 'In', 'POTENTIAL': 'GTH-PBE-q13'}, {'_': 'P', 'POTENTIAL': 'GTH-PBE-q5'},
         {'_': 'F', 'POTENTIAL': 'GTH-PBE-q7'}]
#: baderkit populations of the recorded In4PF9 density (atom_summary.tsv), reordered to qd.xyz (P first).
POPULATIONS = [5.54349, 11.23312, 11.55697, 11.53433, 11.55067, 7.66649, 7.64899, 7.65710, 7.58452, 7.58039,
               7.59702, 7.60413, 7.59819, 7.59531]


@pytest.fixture
def qd(data_dir):
    atoms = read(data_dir / 'cp2k' / 'pbe0_success' / 'qd.xyz')
    return orm.StructureData(ase=atoms).store()


@pytest.fixture
def fake_bader_job(process_nodes, aiida_localhost):
    """``fake_bader_job(populations, vacuum=0.0, positions=None)``: a finished Bader ShellJob node with its parsed
    ``bader_populations``."""
    def make(populations, vacuum=0.0, positions=None) -> orm.CalcJobNode:
        result = orm.ArrayData()
        result.set_array('populations', np.asarray(populations, float))
        result.set_array('volumes', np.ones(len(populations)))
        result.set_array('positions', positions)
        result.base.attributes.set('vacuum_charge', vacuum)
        node = process_nodes.calcjob(aiida_localhost, 'aiida.calculations:core.shell',
                                     options={'resources': {'num_machines': 1, 'tot_num_mpiprocs': 1}})
        return process_nodes.finish(node, {'bader_populations': result})
    return make


def make_workchain(generate_workchain, qd, aiida_code_installed, **extra):
    code = aiida_code_installed(label='baderkit-fake', filepath_executable='/bin/true',
                                default_calc_job_plugin='core.shell')
    inputs = {'structure': qd, 'density_cube': orm.SinglefileData.from_string('x', filename='density.cube'),
              'bader': {'code': code}, **extra}
    return generate_workchain(BaderChargeFlowWorkChain, inputs)


@pytest.mark.parametrize(('extra', 'message'), [
    ({'regularization': -1.0}, 'regularization must be >= 0'),
    ({'bond_scale': 0.0}, 'bond_scale must be > 0'),
    ({'domains': ['core'] * 3}, 'domains has 3 tags but the structure has 14 atoms'),
    ({'plane': [0, 0, 0]}, 'plane must be three Miller indices'),
])
def test_invalid_inputs_are_refused(qd, extra, message):
    from aiida_qdtraps.workchains.charge_flow import validate_inputs

    nodes = {key: orm.List(value) if isinstance(value, list) else orm.Float(value) for key, value in extra.items()}
    assert message in validate_inputs({'structure': qd, **nodes}, None)


def test_valence_from_cp2k_parameters():
    assert valence_from_parameters({'FORCE_EVAL': {'SUBSYS': {'KIND': KINDS}}}) == {'In': 13, 'P': 5, 'F': 7}


def test_missing_valence_is_a_named_exit_code(generate_workchain, qd, aiida_code_installed):
    parameters = orm.Dict({'FORCE_EVAL': {'SUBSYS': {'KIND': KINDS[:2]}}})
    process = make_workchain(generate_workchain, qd, aiida_code_installed, parameters=parameters)
    exit_code = process.setup()
    assert exit_code.status == BaderChargeFlowWorkChain.exit_codes.ERROR_MISSING_VALENCE.status
    assert "['F']" in exit_code.message
    process = make_workchain(generate_workchain, qd, aiida_code_installed, parameters=parameters,
                             valence=orm.Dict({'F': 7}))
    assert process.setup() is None and process.ctx.valence == {'F': 7, 'In': 13, 'P': 5}


@pytest.mark.parametrize(('valence', 'conserved'), [({'In': 13, 'P': 5, 'F': 7}, True),
                                                    ({'In': 13, 'P': 5, 'F': 5}, False)])
def test_electron_conservation_exit_code(generate_workchain, qd, aiida_code_installed, fake_bader_job, valence,
                                         conserved):
    """Populations that do not add up to the valence electrons (here: wrong F valence) end the work chain."""
    process = make_workchain(generate_workchain, qd, aiida_code_installed, valence=orm.Dict(valence))
    assert process.setup() is None
    process.ctx.program = 'baderkit'
    process.ctx.bader_job = fake_bader_job(POPULATIONS, 0.0867, qd.get_ase().positions + 1.5)
    exit_code = process.inspect_bader()
    if conserved:
        assert exit_code is None
    else:
        assert exit_code.status == BaderChargeFlowWorkChain.exit_codes.ERROR_ELECTRONS_NOT_CONSERVED.status
        assert '102.0000 valence electrons' in exit_code.message


def test_atom_mismatch_exit_code(generate_workchain, qd, aiida_code_installed, fake_bader_job):
    process = make_workchain(generate_workchain, qd, aiida_code_installed, valence=orm.Dict({'In': 13, 'P': 5, 'F': 7}))
    process.setup()
    process.ctx.program = 'baderkit'
    positions = qd.get_ase().positions[::-1].copy()  # another atom order
    process.ctx.bader_job = fake_bader_job(POPULATIONS, 0.0867, positions)
    assert process.inspect_bader().status == BaderChargeFlowWorkChain.exit_codes.ERROR_ATOM_MISMATCH.status


def test_domains_from_input_and_domain_pdos(qd, fake_bader_job, data_dir):
    """User-given domains reach the summary; the domain PDOS of the real PBE0 MOs sums to 1 per MO."""
    bader = fake_bader_job(POPULATIONS, 0.0867, qd.get_ase().positions).outputs.bader_populations
    domains = ['core'] * 5 + ['ligand'] * 9
    domains[1] = 'shell'  # one In as a pretend shell atom
    results = compute_charge_flow(qd, bader, orm.Dict({'In': 13, 'P': 5, 'F': 7}), orm.Dict({'net_charge': 0}),
                                  orm.List(domains))
    summary = results['summary'].get_dict()
    assert summary['domain_source'] == 'input'
    assert summary['domains'] == ['core', 'shell', 'ligand']
    assert summary['per_domain']['ligand']['n_atoms'] == 9
    assert summary['per_domain']['ligand']['dq_total'] < 0
    assert sum(d['dq_total'] for d in summary['per_domain'].values()) == pytest.approx(summary['sum_dq'])
    retrieved = orm.FolderData()
    retrieved.base.repository.put_object_from_file(str(data_dir / 'cp2k' / 'pbe0_success' / 'aiida-MOS-1_0.molden'),
                                                   'aiida-MOS-1_0.molden')
    retrieved.store()
    window = extract_mo_window(retrieved, orm.Dict({'occupied': 5, 'virtual': 5}))['mo_window']
    pdos = compute_domain_pdos(window, results['charge_flow'], orm.Dict({'sigma': 0.1}))
    weights = pdos['domain_pdos'].get_array('domain_weights')
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-4)
    assert pdos['domain_pdos'].base.attributes.get('domains') == ['core', 'shell', 'ligand']
    assert pdos['domain_pdos_plot'].get_content(mode='rb')[:4] == b'\x89PNG'


def test_domains_from_the_builder_through_provenance(qd, fake_bader_job):
    """Tags on an ancestor structure (the builder's ``qd_domains``) reach a boxed descendant's charge flow."""
    from aiida_qdtraps.workchains.build import center_in_box

    tagged = orm.StructureData(ase=qd.get_ase())
    tags = ['core'] * 5 + ['ligand'] * 8 + ['shell']
    tagged.base.attributes.set('qd_domains', tags)
    tagged.store()
    boxed = center_in_box(tagged, orm.Float(3.0))
    bader = fake_bader_job(POPULATIONS, 0.0867, boxed.get_ase().positions).outputs.bader_populations
    results = compute_charge_flow(boxed, bader, orm.Dict({'In': 13, 'P': 5, 'F': 7}), orm.Dict({}))
    summary = results['summary'].get_dict()
    assert summary['domain_source'] == 'builder'
    assert results['charge_flow'].base.attributes.get('domains') == tags
    assert summary['per_domain']['shell']['n_atoms'] == 1
