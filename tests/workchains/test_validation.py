"""Bad input ends the work chains with named exit codes before any CP2K run (nothing half-stored)."""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_qdtraps.workchains.hybrid_scf import HybridScfWorkChain
from aiida_qdtraps.workchains.relax import QdRelaxWorkChain


def no_cp2k_ran(node):
    return not [n for n in node.called_descendants if isinstance(n, orm.CalcJobNode)]


def test_missing_kind(cp2k_code, tiny_qd):
    builder = QdRelaxWorkChain.get_builder_from_protocol(cp2k_code, tiny_qd, protocol='fast')
    params = builder.base.cp2k.parameters.get_dict()
    params['FORCE_EVAL']['SUBSYS']['KIND'] = [k for k in params['FORCE_EVAL']['SUBSYS']['KIND'] if k['_'] != 'P']
    builder.base.cp2k.parameters = orm.Dict(params)
    _, node = run_get_node(builder)
    assert node.exit_status == QdRelaxWorkChain.exit_codes.ERROR_MISSING_KIND.status
    assert "['P']" in node.exit_message and no_cp2k_ran(node)


@pytest.mark.parametrize('charge, multiplicity', [(0, 2), (1, 1), (0, 0)])
def test_inconsistent_charge_and_multiplicity(cp2k_code, tiny_qd, charge, multiplicity):
    builder = QdRelaxWorkChain.get_builder_from_protocol(cp2k_code, tiny_qd, protocol='fast', charge=charge,
                                                         multiplicity=multiplicity)
    _, node = run_get_node(builder)
    assert node.exit_status == QdRelaxWorkChain.exit_codes.ERROR_INCONSISTENT_CHARGE_MULTIPLICITY.status
    assert no_cp2k_ran(node)


def test_unboxed_structure(cp2k_code, tiny_qd):
    atoms = tiny_qd.get_ase()
    atoms.set_cell([0, 0, 0])
    atoms.pbc = False
    unboxed = orm.StructureData(ase=atoms)
    builder = HybridScfWorkChain.get_builder_from_protocol(cp2k_code, unboxed, protocol='fast')
    del builder.box_vacuum
    _, node = run_get_node(builder)
    assert node.exit_status == HybridScfWorkChain.exit_codes.ERROR_NO_BOX.status


def test_too_few_added_mos(cp2k_code, tiny_qd):
    builder = HybridScfWorkChain.get_builder_from_protocol(
        cp2k_code, tiny_qd, protocol='fast', overrides={
            'mo_window': {'occupied': 5, 'virtual': 40},
            'scf': {'cp2k': {'parameters': {'FORCE_EVAL': {'DFT': {'SCF': {'ADDED_MOS': 12}}}}}}})
    _, node = run_get_node(builder)
    assert node.exit_status == HybridScfWorkChain.exit_codes.ERROR_TOO_FEW_ADDED_MOS.status
    assert 'ADDED_MOS = 12' in node.exit_message


def test_invalid_window_and_engine_rejected_at_launch(cp2k_code, tiny_qd):
    builder = HybridScfWorkChain.get_builder_from_protocol(cp2k_code, tiny_qd, protocol='fast')
    with pytest.raises(ValueError, match='mo_window.occupied must be a positive integer'):
        builder.mo_window = orm.Dict({'occupied': 0, 'virtual': 5})
    relax = QdRelaxWorkChain.get_builder_from_protocol(cp2k_code, tiny_qd, protocol='fast')
    with pytest.raises(ValueError, match="engine 'siesta' is not available"):
        relax.engine = orm.Str('siesta')
