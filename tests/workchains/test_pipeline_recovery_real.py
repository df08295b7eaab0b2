"""Real CP2K: the pipeline recovers from a cached relax whose remote folder was cleaned (the hybrid stage starts from
the atomic guess instead of a dead parent) and from an MO window without a band-like conduction state (the single
point runs again from its own wavefunction with more virtual MOs). One test for both, on cheap settings (the relax
and the hybrid stage are plumbing here; test_pipeline_real.py runs the protocol's own PBE0): In4PF9 relaxed with
``fast``, a loose BFGS relax on a 150 Ry grid, the hybrid stage with ``functional='pbe'`` on 150 Ry."""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.engine import run_get_node
from aiida.manage.caching import enable_caching
from aiida_quantumespresso.workflows.protocols.utils import recursive_merge

from aiida_qdtraps.workchains.pipeline import QdTrapsPipelineWorkChain
from aiida_qdtraps.workchains.traps import TrapLabelingWorkChain

#: GEO_OPT thresholds that the ``fast`` minimum meets after the first BFGS step, on a coarser grid and SCF
LOOSE_RELAX = {'MOTION': {'GEO_OPT': {'OPTIMIZER': 'BFGS', 'MAX_FORCE': 5.0e-2, 'RMS_FORCE': 3.0e-2,
                                      'MAX_DR': 5.0e-1, 'RMS_DR': 3.0e-1}},
               'FORCE_EVAL': {'DFT': {'MGRID': {'CUTOFF': 150}, 'SCF': {'EPS_SCF': 1.0e-4}}}}
#: a cheaper single point than ``fast``'s (150 instead of 300 Ry, EPS_SCF 1e-5; PBE through ``functional``)
CHEAP_SCF = {'FORCE_EVAL': {'DFT': {'MGRID': {'CUTOFF': 150}, 'SCF': {'EPS_SCF': 1.0e-5}}}}


def calcs(node, run_type: str) -> list:
    return sorted((n for n in node.called_descendants if isinstance(n, orm.CalcJobNode)
                   and n.inputs.parameters['GLOBAL']['RUN_TYPE'] == run_type), key=lambda n: n.ctime)


@pytest.mark.slow
def test_cleaned_cached_relax_then_a_window_without_conduction_edge(cp2k_code, data_dir):
    from ase.io import read

    structure = orm.StructureData(ase=read(data_dir / 'cp2k' / 'relaxed' / 'in4pf9_fast.xyz'))
    structure.pbc = (False, False, False)
    structure.store()

    def pipeline(hybrid_overrides: dict):
        builder = QdTrapsPipelineWorkChain.get_builder_from_protocol(
            cp2k_code, structure, protocol='fast',
            overrides={'relax': {'base': {'cp2k': {'parameters': LOOSE_RELAX}}}, 'hybrid_scf': hybrid_overrides},
            functional='pbe')
        return run_get_node(builder)

    _, first = pipeline({'scf': {'cp2k': {'parameters': CHEAP_SCF}}})
    assert first.is_finished_ok, first.exit_message
    relax = calcs(first, 'GEO_OPT')[-1]
    assert calcs(first, 'ENERGY')[0].inputs.parent_calc_folder.get_remote_path() == \
        relax.outputs.remote_folder.get_remote_path()
    relax.outputs.remote_folder._clean()

    # The same relax again with caching on: a clone of the cleaned one. A window of 3 virtual MOs (ADDED_MOS 5):
    # In4PF9's three lowest virtual MOs are electron traps, so the labels find no conduction band edge.
    small = {'mo_window': {'occupied': 10, 'virtual': 3},
             'scf': {'cp2k': {'parameters': recursive_merge(CHEAP_SCF,
                                                            {'FORCE_EVAL': {'DFT': {'SCF': {'ADDED_MOS': 5}}}})}}}
    with enable_caching(identifier='aiida.calculations:cp2k'):
        results, second = pipeline(small)
    assert second.is_finished_ok, second.exit_message

    # dead parent: the cached relax points at the cleaned folder; the hybrid stage starts from the atomic guess
    cached = calcs(second, 'GEO_OPT')[-1]
    assert cached.base.caching.is_created_from_cache
    assert cached.outputs.remote_folder.get_remote_path() == relax.outputs.remote_folder.get_remote_path()
    hybrids = sorted((n for n in second.called if n.process_label == 'HybridScfWorkChain'), key=lambda n: n.ctime)
    first_scf = [n for n in hybrids[0].called_descendants if isinstance(n, orm.CalcJobNode)][0]
    assert 'parent_calc_folder' not in first_scf.inputs
    assert first_scf.inputs.parameters['FORCE_EVAL']['DFT']['SCF']['SCF_GUESS'] == 'ATOMIC'
    logs = '\n'.join(log.message for log in orm.Log.collection.get_logs_for(hybrids[0]))
    assert 'the PBE starts from the atomic guess instead of its wavefunction' in logs

    # no conduction edge in 3 virtual MOs: the single point again from its own wavefunction with 6 (ADDED_MOS 8)
    labelings = sorted((n for n in second.called if n.process_label == 'TrapLabelingWorkChain'),
                       key=lambda n: n.ctime)
    assert 2 <= len(hybrids) <= 3 and len(labelings) == len(hybrids)
    assert labelings[0].exit_status == TrapLabelingWorkChain.exit_codes.ERROR_NO_CONDUCTION_EDGE.status
    assert labelings[-1].is_finished_ok
    assert hybrids[1].inputs.mo_window.get_dict() == {'occupied': 10, 'virtual': 6}
    again = [n for n in hybrids[1].called_descendants if isinstance(n, orm.CalcJobNode)][0]
    scf = again.inputs.parameters['FORCE_EVAL']['DFT']['SCF']
    assert scf['ADDED_MOS'] == 8 and scf['SCF_GUESS'] == 'RESTART'
    assert again.inputs.parent_calc_folder.get_remote_path() == hybrids[0].outputs.remote_folder.get_remote_path()
    spin = results['labels']['summary']['spins'][0]
    energies = results['hybrid_scf']['mo_energies'].get_array('energies')[0]
    lumo = int(results['hybrid_scf']['output_parameters']['homo_index']) + 1
    # beyond the 3 virtual MOs of the first window (less 0.05 eV: a Pipek-Mezey cluster's energy is a weighted mean)
    assert spin['cbm_ev'] > energies[lumo + 2] - 0.05
