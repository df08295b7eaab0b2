"""The CP2K inputs every stage builder generates, per protocol, against recorded fixtures.

Each case renders the CP2K input file of every CP2K namespace of a builder (``Cp2kInput``, the text aiida-cp2k
writes) and records the rest of the builder's inputs (options, settings, monitors, iterations, box, window), so that
a change of how the builders are composed that changes any generated input fails here. The fixtures are in
``test_stage_inputs/``; regenerate them with ``--force-regen`` only for an intended change of a protocol.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest
from aiida import orm
from aiida_cp2k.utils import Cp2kInput

from aiida_qdtraps.workchains.hybrid_scf import HybridScfWorkChain
from aiida_qdtraps.workchains.md import QdMdWorkChain
from aiida_qdtraps.workchains.md_gaps import MdGapsWorkChain
from aiida_qdtraps.workchains.mlff import MlffActiveLearningWorkChain
from aiida_qdtraps.workchains.pipeline import QdTrapsPipelineWorkChain
from aiida_qdtraps.workchains.relax import QdRelaxWorkChain

PROTOCOLS = ('fast', 'moderate', 'precise')

#: Overrides that reach every merge path of the CP2K builders: a user &KIND replacing a generated one, a parameter,
#: the monitor settings, the iterations, the box, the protocol's basis and ADMM keys, the MO window.
PIPELINE_OVERRIDES = {
    'relax': {
        'box_vacuum': 4.0,
        'basis_set': 'TZV2P-MOLOPT-GTH',
        'base': {'max_iterations': 3, 'scf_monitor': {'scf_window': 80},
                 'cp2k': {'parameters': {'FORCE_EVAL': {
                     'DFT': {'MGRID': {'CUTOFF': 250}},
                     'SUBSYS': {'KIND': [{'_': 'In', 'BASIS_SET': 'DZVP-MOLOPT-GTH', 'POTENTIAL': 'GTH-PBE-q13'}]}}}}},
    },
    'hybrid_scf': {
        'admm': False,
        'mo_window': {'occupied': 4},
        'scf': {'scf_monitor': False,
                'cp2k': {'parameters': {'FORCE_EVAL': {'DFT': {'XC': {'HF': {'FRACTION': 0.3}}}}},
                         'settings': {'additional_retrieve_list': ['aiida-MOS-1_0.molden']}}},
    },
}
OPTIONS = {'max_wallclock_seconds': 1200, 'resources': {'num_mpiprocs_per_machine': 2}, 'queue_name': 'short'}


def plain(value):
    """Builder inputs as plain YAML data: nodes by value (codes by label, structures by formula)."""
    if isinstance(value, orm.Dict):
        return value.get_dict()
    if isinstance(value, orm.List):
        return value.get_list()
    if isinstance(value, (orm.Int, orm.Float, orm.Bool, orm.Str)):
        return value.value
    if isinstance(value, orm.AbstractCode):
        return f'code {value.label}'
    if isinstance(value, orm.StructureData):
        return f'StructureData {value.get_formula()}'
    if isinstance(value, orm.Data):
        return type(value).__name__
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def record(builder, cp2k_namespaces: tuple[str, ...]) -> dict:
    """The builder's inputs, with the rendered CP2K input (lines) of each CP2K namespace (dotted path) beside them."""
    inputs = plain(builder._inputs(prune=True))
    rendered = {}
    for path in cp2k_namespaces:
        namespace = builder
        for key in path.split('.'):
            namespace = namespace[key]
        rendered[path] = Cp2kInput(namespace.cp2k.parameters.get_dict()).render().splitlines()
    return {'cp2k_input': rendered, 'inputs': inputs}


@pytest.fixture
def codes(aiida_code_installed):
    """Codes that are never run: CP2K and the two Pythons of the MLFF loop."""
    def make(label, plugin):
        return aiida_code_installed(label=label, default_calc_job_plugin=plugin, filepath_executable='/bin/true')
    return {'cp2k': make('cp2k-recorded', 'cp2k'), 'dp': make('dp-recorded', 'qdtraps.deepmd.train'),
            'md': make('md-recorded', 'qdtraps.mlff_md')}


@pytest.fixture
def tiny_trajectory(tiny_qd):
    """Two frames of the tiny QD, the second one shifted, as an MD trajectory."""
    positions = np.array([site.position for site in tiny_qd.sites])
    trajectory = orm.TrajectoryData()
    trajectory.set_trajectory(symbols=[tiny_qd.get_kind(site.kind_name).symbol for site in tiny_qd.sites],
                              positions=np.array([positions, positions + 0.1]), stepids=np.array([0, 10]),
                              times=np.array([0.0, 10.0]))
    return trajectory


STAGES = ('relax', 'hybrid_scf', 'md', 'md_overridden', 'mlff', 'md_gaps', 'pipeline_overridden')


def build(stage, protocol, codes, structure, trajectory):
    """``(builder, CP2K namespaces)`` of one stage."""
    code = codes['cp2k']
    if stage == 'relax':
        return QdRelaxWorkChain.get_builder_from_protocol(code, structure, protocol), ('base',)
    if stage == 'hybrid_scf':
        return HybridScfWorkChain.get_builder_from_protocol(code, structure, protocol), ('scf',)
    if stage == 'md':
        return QdMdWorkChain.get_builder_from_protocol(code, structure, protocol), ('base',)
    if stage == 'md_overridden':
        overrides = {'md': {'temperature': 400.0}, 'base': PIPELINE_OVERRIDES['relax']['base']}
        return QdMdWorkChain.get_builder_from_protocol(code, structure, protocol, overrides, charge=1,
                                                       multiplicity=2, options=OPTIONS), ('base',)
    if stage == 'mlff':
        return MlffActiveLearningWorkChain.get_builder_from_protocol(code, codes['dp'], codes['md'], structure,
                                                                     protocol, options=OPTIONS), ('label',)
    if stage == 'md_gaps':
        return MdGapsWorkChain.get_builder_from_protocol(code, trajectory, protocol), ('scf_frame.scf',)
    if stage == 'pipeline_overridden':
        return QdTrapsPipelineWorkChain.get_builder_from_protocol(
            code, structure, protocol, PIPELINE_OVERRIDES, charge=1, multiplicity=2,
            options=OPTIONS), ('relax.base', 'hybrid_scf.scf')
    raise ValueError(stage)


@pytest.mark.parametrize('protocol', PROTOCOLS)
@pytest.mark.parametrize('stage', STAGES)
def test_stage_cp2k_inputs(stage, protocol, codes, tiny_qd, tiny_trajectory, data_regression):
    builder, namespaces = build(stage, protocol, codes, tiny_qd, tiny_trajectory)
    recorded = record(builder, namespaces)
    for lines in recorded['cp2k_input'].values():
        assert '&FORCE_EVAL' in lines and '      &KIND In' in lines
    data_regression.check(recorded)


def test_base_builder_is_the_stages_cp2k_namespace(codes, tiny_qd):
    """``QdCp2kBaseWorkChain.get_builder_from_protocol`` on a stage's protocol file is that stage's CP2K namespace,
    with the structure set for a run of its own."""
    from aiida_qdtraps.workchains.cp2k_base import QdCp2kBaseWorkChain

    code = codes['cp2k']
    for protocol_file, stage, namespace in (('relax', QdRelaxWorkChain, 'base'), ('hybrid_scf', None, 'scf')):
        base = QdCp2kBaseWorkChain.get_builder_from_protocol(code, tiny_qd, 'fast', protocol_file=protocol_file)
        assert base.cp2k.structure.uuid == tiny_qd.uuid
        if stage is None:  # the hybrid stage adds its ADMM section and scales ADDED_MOS with the QD
            kinds = base.cp2k.parameters['FORCE_EVAL']['SUBSYS']['KIND']
            assert base.cp2k.parameters['GLOBAL']['RUN_TYPE'] == 'ENERGY'
            assert kinds[1] == {'_': 'In', 'BASIS_SET': ['ORB DZVP-MOLOPT-SR-GTH', 'AUX_FIT cFIT10'],
                                'POTENTIAL': 'GTH-PBE-q13'}
            continue
        expected = stage.get_builder_from_protocol(code, tiny_qd, 'fast')[namespace]
        base.cp2k.pop('structure')
        assert plain(base._inputs(prune=True)) == plain(expected._inputs(prune=True))


def test_base_builder_overrides_and_refusals(codes, tiny_qd):
    from aiida_qdtraps.workchains.cp2k_base import QdCp2kBaseWorkChain

    code = codes['cp2k']
    base = QdCp2kBaseWorkChain.get_builder_from_protocol(
        code, tiny_qd, 'fast', overrides={'basis_set': 'TZV2P-MOLOPT-GTH', 'max_iterations': 2, 'scf_monitor': False},
        options={'max_wallclock_seconds': 600})
    kinds = {kind['_']: kind for kind in base.cp2k.parameters['FORCE_EVAL']['SUBSYS']['KIND']}
    assert kinds['P'] == {'_': 'P', 'BASIS_SET': 'TZV2P-MOLOPT-GTH', 'POTENTIAL': 'GTH-PBE-q5'}
    assert kinds['In']['HARD_EXP_RADIUS'] == 3.0  # GAPW: the semicore metal's hard radius
    assert base.max_iterations.value == 2 and dict(base.cp2k.monitors) == {}
    assert base.cp2k.metadata['options']['max_wallclock_seconds'] == 600
    with pytest.raises(ValueError, match=r"`ultra` is not a valid protocol of relax\.yaml"):
        QdCp2kBaseWorkChain.get_builder_from_protocol(code, tiny_qd, 'ultra')
    with pytest.raises(ValueError, match=r"no protocol file 'relx'.*\['hybrid_scf', 'relax'\]"):
        QdCp2kBaseWorkChain.get_builder_from_protocol(code, tiny_qd, protocol_file='relx')
    with pytest.raises(ValueError, match=r'md\.yaml has no CP2K namespace'):
        QdCp2kBaseWorkChain.get_builder_from_protocol(code, tiny_qd, protocol_file='md')
