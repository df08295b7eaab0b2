"""A labelled QD with a charge flow, made from recorded outputs (no engine runs): the In4PF9 PBE0 MOLDEN file of
tests/data/cp2k/pbe0_success as the MO window of a finished CP2K CalcJob, ``TrapLabelingWorkChain`` on it (with its
plots), and the charge-flow calcfunctions on the baderkit populations of the same run's density."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from ase.io import read

#: baderkit populations of the recorded In4PF9 density (tests/data/bader/atom_summary.tsv) in qd.xyz order (P first).
POPULATIONS = [5.54349, 11.23312, 11.55697, 11.53433, 11.55067, 7.66649, 7.64899, 7.65710, 7.58452, 7.58039,
               7.59702, 7.60413, 7.59819, 7.59531]
VALENCE = {'In': 13, 'P': 5, 'F': 7}
CP2K_PARAMETERS = {'GLOBAL': {'RUN_TYPE': 'ENERGY'}, 'FORCE_EVAL': {'DFT': {'CHARGE': 0, 'MULTIPLICITY': 1}}}


def recorded_scf(process_nodes, computer, code, data) -> orm.CalcJobNode:
    """A finished CP2K CalcJob whose retrieved folder holds the recorded PBE0 MOLDEN file."""
    calc = process_nodes.calcjob(computer, 'aiida.calculations:cp2k', code, {'parameters': orm.Dict(CP2K_PARAMETERS)})
    calc.set_process_label('Cp2kCalculation')
    retrieved = orm.FolderData()
    retrieved.base.repository.put_object_from_file(str(data / 'aiida-MOS-1_0.molden'), 'aiida-MOS-1_0.molden')
    return process_nodes.finish(calc, {'retrieved': retrieved})


@pytest.fixture(scope='session')
def labelled_qd(aiida_profile, process_nodes):
    """``{'workchain', 'label_traps', 'structure', 'scf', 'charge_flow'}``: the recorded In4PF9 PBE0 run labelled by
    ``TrapLabelingWorkChain`` (plots stored) with a Bader charge flow, domain PDOS and charge-flow map."""
    import pathlib

    from aiida.engine import run_get_node

    from aiida_qdtraps.workchains.charge_flow import compute_charge_flow, compute_domain_pdos, plot_charge_flow_map
    from aiida_qdtraps.workchains.mo_window import extract_mo_window
    from aiida_qdtraps.workchains.traps import TrapLabelingWorkChain

    data = pathlib.Path(__file__).parent.parent / 'data' / 'cp2k' / 'pbe0_success'
    computer = orm.Computer(label='report-recorded', hostname='localhost', transport_type='core.local',
                            scheduler_type='core.direct', workdir='/tmp').store()
    code = orm.InstalledCode(label='cp2k-recorded-report', computer=computer, filepath_executable='/bin/true',
                             default_calc_job_plugin='cp2k').store()
    scf = recorded_scf(process_nodes, computer, code, data)
    retrieved = scf.outputs.retrieved
    window = extract_mo_window(retrieved, orm.Dict({'occupied': 30, 'virtual': 10}))['mo_window']
    structure = orm.StructureData(ase=read(data / 'qd.xyz')).store()
    _, workchain = run_get_node(TrapLabelingWorkChain, structure=structure, mo_window=window,
                                protocol=orm.Str('fast'))
    assert workchain.is_finished_ok, workchain.exit_message
    populations = orm.ArrayData()
    populations.set_array('populations', np.array(POPULATIONS))
    populations.set_array('volumes', np.ones(len(POPULATIONS)))
    populations.base.attributes.set_many({'vacuum_charge': 0.0, 'program': 'baderkit'})
    flow = compute_charge_flow(structure, populations.store(), orm.Dict(VALENCE), orm.Dict({'net_charge': 0}))
    plot_charge_flow_map(structure, flow['charge_flow'], orm.Dict({'miller': [0, 0, 1]}))
    compute_domain_pdos(window, flow['charge_flow'], orm.Dict({'sigma': 0.1}))
    label = workchain.base.links.get_outgoing(link_label_filter='label_traps').one().node
    return {'workchain': workchain, 'label_traps': label, 'structure': structure, 'scf': scf,
            'charge_flow': flow['charge_flow'].creator}
