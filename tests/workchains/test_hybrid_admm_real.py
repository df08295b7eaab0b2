"""The ``moderate`` hybrid protocol (PBE0 + ADMM, DZVP-MOLOPT-SR-GTH) runs for real on a tiny InF3 molecule."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase import Atoms

from aiida_qdtraps.workchains.hybrid_scf import HybridScfWorkChain


@pytest.mark.slow
def test_moderate_hybrid_with_admm(cp2k_code):
    angles = np.radians([90, 210, 330])
    molecule = Atoms('InF3', positions=[[0, 0, 0]] + [[1.95 * np.cos(a), 1.95 * np.sin(a), 0] for a in angles])
    structure = orm.StructureData(ase=molecule)
    overrides = {'mo_window': {'occupied': 4, 'virtual': 4},
                 'scf': {'cp2k': {'parameters': {'FORCE_EVAL': {'DFT': {'MGRID': {'CUTOFF': 300}}}}}}}
    builder = HybridScfWorkChain.get_builder_from_protocol(cp2k_code, structure, protocol='moderate',
                                                          overrides=overrides)
    builder.box_vacuum = orm.Float(3.5)
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    calc = [n for n in node.called_descendants if isinstance(n, orm.CalcJobNode)][-1]
    stdout = calc.outputs.retrieved.base.repository.get_object_content('aiida.out')
    assert 'ADMM' in stdout and 'AUX_FIT' in stdout
    params = results['output_parameters']
    assert 3.0 < params['gap_ev'] < 12.0
    window = results['mo_window']
    c, s = window.get_array('coefficients')[0], window.get_array('overlap')
    assert np.abs(c.T @ s @ c - np.eye(8)).max() < 1e-5
