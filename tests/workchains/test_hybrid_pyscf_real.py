"""``HybridScfWorkChain`` with ``engine: pyscf`` (``fast``: PBE0/def2-SVP, density fitting) runs for real on the
relaxed In4PF9 and ``TrapLabelingWorkChain`` labels its window."""

from __future__ import annotations

import ase.io
import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_qdtraps.workchains.hybrid_scf import HybridScfWorkChain
from aiida_qdtraps.workchains.traps import TrapLabelingWorkChain

#: In4PF9 with the def2 ECPs of In (28 core electrons each): 4 × (49 − 28) + 15 + 9 × 9 electrons in the SCF
VALENCE_ELECTRONS = 180
#: def2-SVP functions: In 4 × 32 (ECP basis), P 18, F 9 × 14 (pure d); the PySCF benchmark's count (docs/cutouts.md)
N_AO = 248


@pytest.mark.slow
def test_pbe0_def2svp_labels_the_relaxed_in4pf9(pyscf_code, data_dir, record_property):
    # `fast` on PySCF's coarsest XC grid (level 0 instead of 3): the job, its window and the labels are under test
    # here, not the last meV (docs/cutouts.md has the protocol's own numbers)
    atoms = ase.io.read(data_dir / 'cp2k' / 'relaxed' / 'in4pf9_fast.xyz')
    structure = orm.StructureData(ase=atoms)
    structure.pbc = (False, False, False)
    builder = HybridScfWorkChain.get_builder_from_protocol(None, structure, protocol='fast', engine='pyscf',
                                                          pyscf_code=pyscf_code,
                                                          overrides={'pyscf': {'parameters': {'grid_level': 0}}})
    assert builder.pyscf.parameters['grid_level'] == 0 and builder.pyscf.parameters['xc'] == 'pbe0'
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    assert 'density_cube' not in results and 'pdos' not in results  # the Bader stage needs CP2K
    params = results['output_parameters']
    assert params['converged'] and params['xc'] == 'pbe0' and params['basis'] == 'def2-svp'
    assert params['nelectron'] == VALENCE_ELECTRONS and params['n_ao'] == N_AO
    assert params['homo_index'] == VALENCE_ELECTRONS // 2 - 1
    assert params['gap_ev'] == pytest.approx(params['lumo_ev'] - params['homo_ev'], abs=1e-12)
    occupations = results['mo_energies'].get_array('occupations')
    assert occupations.sum() == pytest.approx(VALENCE_ELECTRONS)
    window = results['mo_window']
    c, s = window.get_array('coefficients')[0], window.get_array('overlap')
    assert c.shape == (N_AO, 20)  # fast: 10 + 10 (5 core atoms)
    assert np.abs(c.T @ s @ c - np.eye(20)).max() < 1e-6
    assert abs(results['atomic_charges'].get_array('lowdin').sum()) < 1e-6  # neutral
    assert results['structure'].uuid == structure.uuid

    labels, labeling = run_get_node(TrapLabelingWorkChain, structure=results['structure'],
                                    mo_window=results['mo_window'], plots=orm.Bool(False))
    assert labeling.is_finished_ok, labeling.exit_message
    spin = labels['summary']['spins'][0]
    assert spin['homo_ev'] == pytest.approx(params['homo_ev'], abs=1e-9)
    assert spin['lumo_ev'] == pytest.approx(params['lumo_ev'], abs=1e-9)
    assert spin['vbm_ev'] <= spin['homo_ev'] < spin['lumo_ev'] <= spin['cbm_ev']
    assert labels['atom_labels'].get_array('label').shape == (len(atoms),)
    calc = node.base.links.get_outgoing(link_label_filter='hybrid_scf').one().node
    for key, value in (('homo_ev', params['homo_ev']), ('lumo_ev', params['lumo_ev']), ('gap_ev', params['gap_ev']),
                       ('energy_ha', params['energy_ha']), ('vbm_ev', spin['vbm_ev']), ('cbm_ev', spin['cbm_ev']),
                       ('hole_traps', spin['n_hole_traps']), ('electron_traps', spin['n_electron_traps']),
                       ('scf_cycles', [a['cycles'] for a in params['attempts']]),
                       ('pyscf_wall_s', params['wall_time_s']),
                       ('calcjob_wall_s', (calc.mtime - calc.ctime).total_seconds()),
                       ('trap_counts', labels['summary']['trap_counts'])):
        record_property(key, value)
