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


def _calcs(node):
    return sorted((n for n in node.called_descendants if isinstance(n, orm.CalcJobNode)), key=lambda n: n.ctime)


def _messages(node):
    return [log.message for n in (node, *node.called_descendants) for log in orm.Log.collection.get_logs_for(n)]


def _relax_after_xtb_prerelax(cp2k_code, structure):
    """``QdRelaxWorkChain`` (``xtb``) with ``prerelax='xtb'``, finished ok: its results, node, the pre-relaxation and
    relax CalcJobs, the ``prerelax_verdict`` calcfunction and its summary."""
    builder = QdRelaxWorkChain.get_builder_from_protocol(cp2k_code, structure, protocol='xtb', prerelax='xtb')
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    prerelax, relax = _calcs(node)
    verdict = next(n for n in node.called_descendants if n.process_label == 'prerelax_verdict')
    return results, node, prerelax, relax, verdict, verdict.outputs.output_parameters.get_dict()


def test_xtb_relax_of_the_built_tiny_qd_after_its_prerelax_is_refused(cp2k_code, tiny_qd):
    """With ``prerelax='xtb'`` the same GFN1-xTB GEO_OPT runs twice: GFN1-xTB bonds F of the built In4PF9 to its P
    (P–F ~1.6 Å, docs/protocols.md), a change of chemistry, so the pre-relaxed geometry is refused and the relax starts
    from the built geometry again, and the report says why."""
    results, node, prerelax, calc, verdict, summary = _relax_after_xtb_prerelax(cp2k_code, tiny_qd)
    assert prerelax.inputs.parameters['GLOBAL']['RUN_TYPE'] == 'GEO_OPT'
    assert summary['accepted'] is False
    assert any(bond.startswith('P') and '-F' in bond for bond in summary['like_charge_bonds']), summary
    assert calc.inputs.structure.uuid == verdict.outputs.structure.uuid
    assert np.allclose(calc.inputs.structure.get_ase().positions, prerelax.inputs.structure.get_ase().positions)
    assert any('refused: it bonds atoms of like formal charge (' in m and 'starts from the input geometry' in m
               for m in _messages(node)), _messages(node)
    relaxed = results['relaxed_structure']
    assert relaxed.get_formula() == tiny_qd.get_formula()
    assert aligned_rmsd(tiny_qd.get_ase(), relaxed.get_ase())[0] > 0.05  # it moved
    assert calc.inputs.parameters['FORCE_EVAL']['DFT']['QS']['METHOD'] == 'xTB'
    output = calc.outputs.retrieved.base.repository.get_object_content('aiida.out')
    assert 'GEOMETRY OPTIMIZATION COMPLETED' in output
    # the last printed largest force component meets the protocol's MAX_FORCE (4.5e-4 Ha/bohr)
    forces = [float(x) for x in re.findall(r'Max\. gradient\s+=\s+(\S+)', output)]
    assert forces and forces[-1] < 4.5e-4 and np.isfinite(results['output_parameters']['energy'])
    # the report names the level of theory it relaxed with
    messages = _messages(node)
    assert any('relaxed: E(GFN1-xTB) = ' in m for m in messages), messages
    assert any('CP2K GFN1-xTB GEO_OPT' in m for m in messages), messages


def test_lbfgs_stop_above_the_criterion_is_continued_with_bfgs(cp2k_code, tiny_qd):
    """With LBFGS (the DFT protocols' optimiser) the same relax stops on LBFGS's own criteria above MAX_FORCE: the
    parser refuses it (exit 500) and the handler continues from its last geometry with BFGS, which converges."""
    builder = QdRelaxWorkChain.get_builder_from_protocol(
        cp2k_code, tiny_qd, protocol='xtb',
        overrides={'base': {'cp2k': {'parameters': {'MOTION': {'GEO_OPT': {'OPTIMIZER': 'LBFGS'}},
                                                    'FORCE_EVAL': {'DFT': {'SCF': {'EPS_SCF': 1.0e-6}}}}}}})
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    calcs = sorted((n for n in node.called_descendants if isinstance(n, orm.CalcJobNode)), key=lambda n: n.ctime)
    assert [calc.exit_status for calc in calcs] == [500, 0]
    assert [calc.inputs.parameters['MOTION']['GEO_OPT']['OPTIMIZER'] for calc in calcs] == ['LBFGS', 'BFGS']
    assert calcs[1].inputs.parent_calc_folder.uuid == calcs[0].outputs.remote_folder.uuid
    output = calcs[1].outputs.retrieved.base.repository.get_object_content('aiida.out')
    assert 'GEOMETRY OPTIMIZATION COMPLETED' in output
    assert float(re.findall(r'Max\. gradient\s+=\s+(\S+)', output)[-1]) < 4.5e-4


def test_relax_killed_repeatedly_continues_from_its_last_geometry(cp2k_code):
    """CP2K killed mid-GEO_OPT again and again (``ulimit -t 4``: CPU seconds, ~25 optimisation steps per run here,
    whatever the load): each truncated run is continued from its last geometry and wavefunction, and the relax ends
    where an unbroken one ends (measured: −35.950531 against −35.950537 Ha for Cd6Se4Cl4; the optimiser restarts its
    history)."""
    from aiida_qdtraps.workchains.build import build_qd

    structure = build_qd(orm.Dict({'material': 'CdSe', 'diameter': 7.0, 'ligand': 'Cl', 'center': 'interstitial'}))
    builder = QdRelaxWorkChain.get_builder_from_protocol(cp2k_code, structure, protocol='xtb',
                                                         options={'prepend_text': 'ulimit -t 4'})
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    calcs = sorted((n for n in node.called_descendants if isinstance(n, orm.CalcJobNode)), key=lambda n: n.ctime)
    incomplete = calcs[0].process_class.exit_codes.ERROR_OUTPUT_INCOMPLETE.status
    assert len(calcs) >= 2 and all(c.exit_status == incomplete for c in calcs[:-1]) and calcs[-1].exit_status == 0
    # every continued run starts from the geometry the run before it reached, not from the built one
    for before, after in zip(calcs, calcs[1:]):
        assert after.inputs.structure.uuid != structure.uuid
        assert after.inputs.parent_calc_folder.uuid == before.outputs.remote_folder.uuid
    output = calcs[-1].outputs.retrieved.base.repository.get_object_content('aiida.out')
    forces = [float(x) for x in re.findall(r'Max\. gradient\s+=\s+(\S+)', output)]
    assert forces and forces[-1] < 4.5e-4
    assert abs(results['output_parameters']['energy'] - (-35.950537)) < 1e-4


def test_xtb_prerelax_of_a_cdse_qd_is_the_start_of_the_relax(cp2k_code):
    """The pre-relaxed Cd6Se4Cl4 keeps its chemistry: the GEO_OPT starts from it (here the same level, so the GEO_OPT
    has next to nothing left to do; with a DFT protocol this is the path that lets the PBE SCF of a built 35-atom
    CdSe QD converge, docs/protocols.md)."""
    from aiida_qdtraps.workchains.build import build_qd

    structure = build_qd(orm.Dict({'material': 'CdSe', 'diameter': 7.0, 'ligand': 'Cl', 'center': 'interstitial'}))
    results, node, prerelax, relax, verdict, summary = _relax_after_xtb_prerelax(cp2k_code, structure)
    assert summary['accepted'] is True and summary['like_charge_bonds'] == [] and summary['rmsd'] > 0.05
    assert verdict.inputs.prerelaxed.uuid == prerelax.outputs.output_structure.uuid
    assert relax.inputs.structure.uuid == verdict.outputs.structure.uuid
    assert np.allclose(relax.inputs.structure.get_ase().positions,
                       prerelax.outputs.output_structure.get_ase().positions)
    steps = [len(re.findall(r'OPTIMIZATION STEP', c.outputs.retrieved.base.repository.get_object_content('aiida.out')))
             for c in (prerelax, relax)]
    assert steps[1] < steps[0] / 3, steps  # the second GEO_OPT starts at the minimum of the first
    assert abs(results['output_parameters']['energy'] - prerelax.outputs.output_parameters['energy']) < 1e-4
    assert any('pre-relaxation (GFN1-xTB, E = ' in m and 'accepted: RMSD' in m for m in _messages(node))
