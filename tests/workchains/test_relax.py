"""``QdRelaxWorkChain`` dispatches to the engine's relax work chain (``QdCp2kRelaxWorkChain``, ``QdQeRelaxWorkChain``):
the builder follows the code, a failed engine is named in the exit message, and the relaxed structure it exposes is
still traced to the relax CalcJob and the built QD through the two levels of work chains.

No engine runs: the failures stop at the input checks, and the relax CalcJob of the provenance test is a recorded
one (``generate_cp2k_calc``) returned by a stand-in for the engine's base work chain.
"""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import WorkChain, run_get_node
from aiida_quantumespresso.workflows.pw.base import PwBaseWorkChain

from aiida_qdtraps import provenance
from aiida_qdtraps.workchains import stage
from aiida_qdtraps.workchains.cp2k_base import QdCp2kBaseWorkChain
from aiida_qdtraps.workchains.cp2k_relax import QdCp2kRelaxWorkChain
from aiida_qdtraps.workchains.pipeline import QdTrapsPipelineWorkChain
from aiida_qdtraps.workchains.qe import ensure_upf_family
from aiida_qdtraps.workchains.qe_relax import QdQeRelaxWorkChain
from aiida_qdtraps.workchains.relax import QdRelaxWorkChain

#: Engine -> (its relax work chain, the base work chain it submits, where that one takes the structure).
ENGINES = {'cp2k': (QdCp2kRelaxWorkChain, QdCp2kBaseWorkChain, 'cp2k'),
           'qe': (QdQeRelaxWorkChain, PwBaseWorkChain, 'pw')}


@pytest.fixture
def recorded_pw_code(aiida_code_installed):
    """A pw.x code that is never run (``/bin/true``)."""
    return aiida_code_installed(label='pw-recorded', default_calc_job_plugin='quantumespresso.pw',
                                filepath_executable='/bin/true')


@pytest.fixture
def code_of(recorded_cp2k_code, recorded_pw_code):
    """Engine -> a code of that engine; the QE one with the GTH-PBE UPF family installed (the elements of the QE
    tests' family, so that either test module may make it first)."""
    assert ensure_upf_family(elements=['In', 'P', 'F', 'H'])[0] in ('created', 'exists')
    return {'cp2k': recorded_cp2k_code, 'qe': recorded_pw_code}


@pytest.mark.parametrize('engine', ENGINES)
def test_the_builder_is_the_engine_builder_with_the_engine_set(code_of, tiny_qd, engine):
    process_class, _, _ = ENGINES[engine]
    builder = QdRelaxWorkChain.get_builder_from_protocol(code_of[engine], tiny_qd, protocol='fast')
    engine_builder = process_class.get_builder_from_protocol(code_of[engine], tiny_qd, protocol='fast')
    assert builder.engine.value == engine
    inputs, engine_inputs = builder._inputs(prune=True), engine_builder._inputs(prune=True)
    assert set(inputs) - set(engine_inputs) == {'engine'}
    namespace, other = ('base', 'qe') if engine == 'cp2k' else ('qe', 'base')
    assert other not in inputs
    assert inputs[namespace]['max_iterations'].value == engine_inputs[namespace]['max_iterations'].value
    code = inputs['base']['cp2k']['code'] if engine == 'cp2k' else inputs['qe']['pw']['code']
    assert code.uuid == code_of[engine].uuid
    assert builder.box_vacuum.value == engine_builder.box_vacuum.value


def test_qe_only_codes_and_inputs_are_refused_for_cp2k(code_of, tiny_qd):
    with pytest.raises(ValueError, match=r"\['pp_code'\] need a quantumespresso.pw code; got a 'cp2k' code"):
        QdRelaxWorkChain.get_builder_from_protocol(code_of['cp2k'], tiny_qd, protocol='fast', pp_code=code_of['qe'])
    with pytest.raises(ValueError, match=r"unknown keyword\(s\) \['pw_code'\]"):
        QdRelaxWorkChain.get_builder_from_protocol(code_of['qe'], tiny_qd, protocol='fast', pw_code=code_of['qe'])
    builder = QdRelaxWorkChain.get_builder_from_protocol(code_of['qe'], tiny_qd, protocol='fast')
    builder.mlff_model = orm.SinglefileData.from_string('not a model', 'model.pth')
    with pytest.raises(ValueError, match=r"input\(s\) \['mlff_model'\] are not used by engine 'qe'"):
        run_get_node(builder)


def test_the_prerelax_namespace_holds_the_prerelax_protocols_cp2k_inputs(code_of, tiny_qd):
    builder = QdRelaxWorkChain.get_builder_from_protocol(code_of['cp2k'], tiny_qd, protocol='fast', prerelax='xtb')
    prerelax = builder.prerelax.cp2k.parameters.get_dict()
    assert prerelax['FORCE_EVAL']['DFT']['QS']['METHOD'] == 'xTB'
    assert prerelax['MOTION']['GEO_OPT']['TYPE'] == 'MINIMIZATION'
    assert 'structure' not in builder.prerelax.cp2k  # the relax submits its boxed QD
    assert builder.base.cp2k.parameters['FORCE_EVAL']['DFT']['QS']['METHOD'] == 'GAPW'  # the main relax is fast's
    assert builder.box_vacuum.value == QdRelaxWorkChain.get_builder_from_protocol(
        code_of['cp2k'], tiny_qd, protocol='fast').box_vacuum.value  # the pre-relax runs in the main relax's box
    assert 'prerelax' not in QdRelaxWorkChain.get_builder_from_protocol(code_of['cp2k'], tiny_qd,
                                                                       protocol='fast')._inputs(prune=True)
    pipeline = QdTrapsPipelineWorkChain.get_builder_from_protocol(code_of['cp2k'], tiny_qd, protocol='fast',
                                                                 prerelax='xtb')
    assert pipeline.relax.prerelax.cp2k.parameters['FORCE_EVAL']['DFT']['QS']['METHOD'] == 'xTB'


def test_a_bad_prerelax_is_refused(code_of, tiny_qd):
    with pytest.raises(ValueError, match=r"prerelax protocol 'xtb2' is not one of \['fast', "):
        QdRelaxWorkChain.get_builder_from_protocol(code_of['cp2k'], tiny_qd, protocol='fast', prerelax='xtb2')
    with pytest.raises(ValueError, match=r"prerelax 'xtb' is a CP2K pre-relaxation; the QE engine has none"):
        QdRelaxWorkChain.get_builder_from_protocol(code_of['qe'], tiny_qd, protocol='fast', prerelax='xtb')
    builder = QdRelaxWorkChain.get_builder_from_protocol(code_of['cp2k'], tiny_qd, protocol='fast', prerelax='xtb')
    builder.mlff_model = orm.SinglefileData.from_string('not a model', 'model.pth')
    with pytest.raises(ValueError, match=r'give one pre-relaxation: `prerelax` \(a CP2K GEO_OPT\) or `mlff_model`'):
        run_get_node(builder)


def _chain(symbols, spacing):
    """A linear chain of atoms ``spacing`` Å apart in a 30 Å box."""
    from ase import Atoms

    atoms = Atoms(symbols, positions=[(5.0 + spacing * i, 15.0, 15.0) for i in range(len(symbols))],
                  cell=[30.0] * 3)
    return orm.StructureData(ase=atoms)


def test_prerelax_verdict_refuses_like_charge_bonds_and_names_at_most_eight():
    from aiida_qdtraps.workchains.cp2k_relax import prerelax_verdict

    start = _chain(['Cd', 'Se'] * 10, 2.6)  # Cd-Se bonded, Cd-Cd and Se-Se 5.2 Å apart
    moved = _chain(['Cd', 'Se'] * 10, 2.0)  # Cd-Se still bonded; Cd-Cd and Se-Se 4.0 Å: no new bonds
    result = prerelax_verdict(start, moved)
    summary = result['output_parameters'].get_dict()
    assert summary['accepted'] and summary['like_charge_bonds'] == [] and summary['reason'].startswith('accepted: RMSD')
    assert np.allclose(result['structure'].get_ase().positions, moved.get_ase().positions)
    fused = _chain(['Cd', 'Se'] * 10, 1.4)  # Cd-Cd 2.8 Å (< 1.1 × 2.88): 9 like-charge bonds; Se-Se (> 1.1 × 2.40) not
    result = prerelax_verdict(start, fused)
    summary = result['output_parameters'].get_dict()
    assert not summary['accepted'] and len(summary['like_charge_bonds']) == 9
    assert 'refused: it bonds atoms of like formal charge (Cd0-Cd2, ' in summary['reason']
    assert 'Cd14-Cd16, ... 9 in all; RMSD' in summary['reason'] and 'Cd16-Cd18' not in summary['reason']
    assert np.allclose(result['structure'].get_ase().positions, start.get_ase().positions)  # the input geometry
    with pytest.raises(ValueError, match=r'the pre-relaxed structure \(Cd10Se9, 19 atoms\) is not the input QD'):
        prerelax_verdict(start, _chain(['Cd', 'Se'] * 9 + ['Cd'], 2.6))


@pytest.mark.parametrize('engine, name', [('cp2k', 'CP2K'), ('qe', 'QE')])
def test_a_failed_engine_is_named_and_its_exit_status_kept(code_of, tiny_qd, engine, name):
    """An impossible spin state (120 valence electrons, doublet) stops the engine's work chain before any CalcJob."""
    process_class, _, _ = ENGINES[engine]
    builder = QdRelaxWorkChain.get_builder_from_protocol(code_of[engine], tiny_qd, protocol='fast', multiplicity=2)
    _, node = run_get_node(builder)
    status = QdRelaxWorkChain.exit_codes.ERROR_INCONSISTENT_CHARGE_MULTIPLICITY.status
    assert node.exit_status == status == process_class.exit_codes.ERROR_INCONSISTENT_CHARGE_MULTIPLICITY.status
    (child,) = node.called
    assert child.process_label == process_class.__name__ and child.exit_status == status
    assert node.base.links.get_outgoing(link_label_filter=f'{engine}_relax').one().node.uuid == child.uuid
    assert node.exit_message == (f'the {name} relax ({process_class.__name__}<{child.pk}>) failed: '
                                 f'{child.exit_message}')
    assert 'cannot have multiplicity 2' in node.exit_message
    assert [c.process_label for c in child.called] == ['center_in_box']  # no engine ran


def test_an_excepted_engine_is_named(code_of, tiny_qd, monkeypatch):
    def broken(*_):
        raise RuntimeError('broken input check')

    monkeypatch.setattr(stage, 'check_electronic_state', broken)  # called by the engine's input check
    builder = QdRelaxWorkChain.get_builder_from_protocol(code_of['cp2k'], tiny_qd, protocol='fast')
    _, node = run_get_node(builder)
    (child,) = node.called
    assert child.is_excepted
    assert node.exit_status == QdRelaxWorkChain.exit_codes.ERROR_ENGINE_RELAX_FAILED.status == 400
    assert node.exit_message == f'the CP2K relax (QdCp2kRelaxWorkChain<{child.pk}>) failed: excepted'
    assert [c.process_label for c in child.called] == ['center_in_box']  # no CP2K


class RecordedBaseWorkChain(WorkChain):
    """Stands in for the engine's base work chain: returns the outputs of a recorded relax CalcJob (by pk)."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('calcjob', valid_type=orm.Int)
        spec.outline(cls.results)
        spec.outputs.dynamic = True

    def results(self):
        calcjob = orm.load_node(self.inputs.calcjob.value)
        for label in ('output_structure', 'output_parameters', 'remote_folder'):
            self.out(label, calcjob.outputs[label])


@pytest.mark.parametrize('engine', ENGINES)
def test_the_relaxed_structure_is_traced_through_the_engine_work_chain(code_of, tiny_qd, generate_cp2k_calc,
                                                                      monkeypatch, engine):
    """dispatcher → engine relax → (base work chain → relax CalcJob): the exposed ``relaxed_structure`` is the node
    the CalcJob created, so ``geometry_origin`` finds the CalcJob and ``build_of`` the built QD behind the boxing."""
    process_class, base_class, structure_namespace = ENGINES[engine]
    recorded = {}

    def submit(self, submitted_class, **inputs):
        assert submitted_class is base_class
        boxed = inputs[structure_namespace]['structure']
        atoms = boxed.get_ase()
        atoms.positions += np.linspace(-0.05, 0.05, atoms.positions.size).reshape(atoms.positions.shape)
        recorded['calcjob'] = generate_cp2k_calc(
            {'aiida.out': 'recorded\n'}, structure=orm.StructureData(ase=atoms), input_structure=boxed,
            parameters={'GLOBAL': {'RUN_TYPE': 'GEO_OPT'}}, outputs={'output_parameters': orm.Dict({'energy': -1.5})})
        _, node = run_get_node(RecordedBaseWorkChain, calcjob=orm.Int(recorded['calcjob'].pk))
        return node

    monkeypatch.setattr(process_class, 'submit', submit)
    builder = QdRelaxWorkChain.get_builder_from_protocol(code_of[engine], tiny_qd, protocol='fast')
    results, node = run_get_node(builder)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    calcjob = recorded['calcjob']

    relaxed = results['relaxed_structure']
    assert relaxed.uuid == calcjob.outputs.output_structure.uuid  # returned, not copied, through both levels
    assert results['remote_folder'].uuid == calcjob.outputs.remote_folder.uuid
    assert results['output_parameters']['energy'] == -1.5
    assert [c.process_label for c in node.called] == [process_class.__name__]
    assert relaxed.creator.uuid == calcjob.uuid
    assert provenance.geometry_origin(relaxed).uuid == calcjob.uuid
    (boxed,) = provenance.parent_structures(relaxed)
    assert boxed.creator.process_label == 'center_in_box' and boxed.creator.caller.uuid == node.called[0].uuid
    build = provenance.build_of(relaxed)
    assert build.structure.uuid == tiny_qd.uuid and build.calcfunction.process_label in provenance.BUILD_FUNCTIONS
    assert [s.uuid for s in provenance.ancestor_structures(relaxed)] == [relaxed.uuid, boxed.uuid, tiny_qd.uuid]


def test_the_pipeline_exposes_the_dispatcher():
    relax_outputs = QdTrapsPipelineWorkChain.spec().outputs['relax']
    assert {'relaxed_structure', 'output_parameters', 'remote_folder'} <= set(relax_outputs)
    assert 'engine' in QdTrapsPipelineWorkChain.spec().inputs['relax']
