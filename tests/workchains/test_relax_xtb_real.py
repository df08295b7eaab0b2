"""Real CP2K: ``QdRelaxWorkChain`` with the ``xtb`` protocol relaxes the built, unrelaxed In4PF9 (GFN1-xTB, about
10 s). Its first SCF passes through charges that CP2K's ``CHECK_ATOMIC_CHARGES`` would abort on ("xTB Charges"),
which the protocol switches off."""

from __future__ import annotations

import re

import numpy as np
from aiida import orm
from aiida.engine import run_get_node

from aiida_qdtraps.analysis.cross_engine import aligned_rmsd
from aiida_qdtraps.workchains.relax import QdRelaxWorkChain


def test_xtb_relax_of_the_built_tiny_qd(cp2k_code, tiny_qd):
    builder = QdRelaxWorkChain.get_builder_from_protocol(cp2k_code, tiny_qd, protocol='xtb')
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    relaxed = results['relaxed_structure']
    assert relaxed.get_formula() == tiny_qd.get_formula()
    assert aligned_rmsd(tiny_qd.get_ase(), relaxed.get_ase())[0] > 0.05  # it moved
    calc = next(n for n in node.called_descendants if isinstance(n, orm.CalcJobNode))
    assert calc.inputs.parameters['FORCE_EVAL']['DFT']['QS']['METHOD'] == 'xTB'
    output = calc.outputs.retrieved.base.repository.get_object_content('aiida.out')
    assert 'GEOMETRY OPTIMIZATION COMPLETED' in output
    # the last printed largest force component meets the protocol's MAX_FORCE (4.5e-4 Ha/bohr)
    forces = [float(x) for x in re.findall(r'Max\. gradient\s+=\s+(\S+)', output)]
    assert forces and forces[-1] < 4.5e-4 and np.isfinite(results['output_parameters']['energy'])
