"""MLFF work chain pieces without engines: CP2K label inputs, input checks, select_candidates and grow_dataset.

``grow_dataset`` reads a real CP2K ENERGY_FORCE output of In4PF9 (``tests/data/deepmd/cp2k_energy_force.out``).
"""

from __future__ import annotations

import io
import re
import sys

import numpy as np
import pytest
from aiida import orm
from ase import Atoms

from aiida_qdtraps.analysis.mlff import HARTREE_EV, HARTREE_PER_BOHR_EV_PER_ANGSTROM
from aiida_qdtraps.workchains.mlff import (
    MlffActiveLearningWorkChain,
    grow_dataset,
    is_converged,
    select_candidates,
    validate_settings,
)

ENERGY_HA = -449.704066590349612  # the recorded output's total energy


@pytest.fixture
def dp_python(aiida_code_installed):
    return aiida_code_installed(label='dp-python', default_calc_job_plugin='qdtraps.deepmd.train',
                                filepath_executable=sys.executable)


@pytest.fixture
def fast_builder(cp2k_code, dp_python, tiny_qd):
    return MlffActiveLearningWorkChain.get_builder_from_protocol(cp2k_code, dp_python, dp_python, tiny_qd,
                                                                 protocol='fast')


def test_labels_are_energy_force_single_points_of_the_relax_protocol(fast_builder):
    parameters = fast_builder.label.cp2k.parameters.get_dict()
    assert parameters['GLOBAL']['RUN_TYPE'] == 'ENERGY_FORCE'
    assert 'MOTION' not in parameters
    assert parameters['FORCE_EVAL']['PRINT']['FORCES'] == {'_': 'ON'}
    assert parameters['FORCE_EVAL']['DFT']['MGRID']['CUTOFF'] == 200  # relax.yaml `fast`
    assert {kind['_'] for kind in parameters['FORCE_EVAL']['SUBSYS']['KIND']} == {'F', 'In', 'P'}
    assert fast_builder.box_vacuum.value == 3.5
    assert fast_builder.num_models.value == 2


@pytest.mark.parametrize(('section', 'changes', 'message'), [
    ('selection', {'trust_lo': 0.3, 'trust_hi': 0.1}, 'trust_lo < trust_hi'),
    ('convergence', {'accurate_fraction': 1.5}, r'accurate_fraction must be in \(0, 1\]'),
    ('convergence', {'max_iter': 3}, 'unknown convergence key'),
    ('exploration', {'temperatures_K': []}, 'at least one temperature'),
    ('exploration', {'md': {'timestep_fs': 20.0}}, 'timestep_fs must be in'),
    ('initial', {'n_frames': 1}, 'initial.n_frames must be >= 2'),
])
def test_bad_settings_are_refused_with_the_value(fast_builder, section, changes, message):
    inputs = {key: fast_builder[key] for key in ('selection', 'convergence', 'exploration', 'initial', 'num_models')}
    inputs[section] = orm.Dict({**inputs[section].get_dict(), **changes})
    error = validate_settings(inputs, None)
    assert error is not None
    assert re.search(message, error), error


def test_convergence_criteria():
    assert is_converged({'accurate': 0.96}, {}, {'accurate_fraction': 0.95})
    assert not is_converged({'accurate': 0.5}, {'energy_mae_per_atom': 2e-3}, {})
    assert is_converged({'accurate': 0.5}, {'energy_mae_per_atom': 5e-4}, {})
    assert not is_converged({'accurate': 0.5}, {'energy_mae_per_atom': 5e-4, 'force_mae': 0.2}, {'force_mae': 0.1})


def trajectory(devi, n_atoms=3):
    node = orm.TrajectoryData()
    positions = np.array([[[0, 0, 0], [2.0 + 0.01 * i, 0, 0], [0, 2.0, 0]] for i in range(len(devi))], float)
    node.set_trajectory(symbols=['In', 'P', 'F'], positions=positions, pbc=(False, False, False))
    node.set_array('max_devi_f', np.asarray(devi, float))
    return node.store()


def test_select_candidates_over_trajectories():
    reference = orm.StructureData(ase=Atoms('InPF', positions=np.zeros((3, 3)), cell=[12, 12, 12])).store()
    result = select_candidates(reference, orm.Dict({'trust_lo': 0.05, 'trust_hi': 0.15, 'max_candidates': 2}),
                               md_0=trajectory([0.01, 0.1, 0.2, 0.12]), md_1=trajectory([0.02, 0.03, 0.07]))
    stats = result['statistics'].get_dict()
    assert stats['n_frames'] == 7 and stats['n_selected'] == 2
    assert stats['accurate'] == pytest.approx(3 / 7) and stats['failed'] == pytest.approx(1 / 7)
    assert stats['per_trajectory']['md_1'] == pytest.approx({'n_frames': 3, 'accurate': 2 / 3, 'candidate': 1 / 3,
                                                             'failed': 0.0})
    candidates = [result[k] for k in sorted(result) if k.startswith('candidate_')]
    assert len(candidates) == 2
    for node in candidates:
        atoms = node.get_ase()
        assert atoms.cell.array == pytest.approx(np.eye(3) * 12)
        assert atoms.get_positions().mean(axis=0) == pytest.approx([6, 6, 6])
        assert node.pbc == (False, False, False)


def test_grow_dataset_traces_frames_and_converts_units(generate_cp2k_calc, data_dir):
    output = (data_dir / 'deepmd' / 'cp2k_energy_force.out').read_text()
    frames = []
    for i in range(3):
        calc = generate_cp2k_calc({'aiida.out': output}, parameters={'GLOBAL': {'RUN_TYPE': 'ENERGY_FORCE'}})
        structure = orm.StructureData(ase=Atoms('In4PF9', positions=np.random.default_rng(i).normal(size=(14, 3)),
                                                cell=[13, 13, 13])).store()
        frames.append((structure, orm.Dict({'energy': ENERGY_HA, 'energy_units': 'a.u.'}).store(),
                       calc.outputs.retrieved))

    def labels(selection, offset=0):
        out = {}
        for n, (structure, parameters, retrieved) in enumerate(selection):
            out.update({f'structure_{offset + n:03d}': structure, f'output_parameters_{offset + n:03d}': parameters,
                        f'retrieved_{offset + n:03d}': retrieved})
        return out

    settings = orm.Dict({'type_map': ['F', 'In', 'P'], 'validation_every': 2})
    first = grow_dataset(settings, **labels(frames[:2]))['dataset']
    second = grow_dataset(settings, dataset=first, **labels(frames[2:]))['dataset']
    sources = second.base.attributes.get('frame_sources')
    creators = [f[2].creator.uuid for f in frames]
    assert sources == {'validation/F9In4P1': [creators[0], creators[2]], 'training/F9In4P1': [creators[1]]}

    def array(name):
        return np.load(io.BytesIO(second.base.repository.get_object_content(name, mode='rb')))

    assert array('validation/F9In4P1/set.000/energy.npy') == pytest.approx([ENERGY_HA * HARTREE_EV] * 2)
    forces = array('training/F9In4P1/set.000/force.npy').reshape(14, 3)
    # atom 1 (In) of the recorded output: -0.01858124 -0.01367049 -0.01668233 Ha/Bohr; dpdata keeps the atom order
    assert forces[0] == pytest.approx(np.array([-0.01858124, -0.01367049, -0.01668233])
                                      * HARTREE_PER_BOHR_EV_PER_ANGSTROM)
    assert second.base.repository.get_object_content('training/F9In4P1/type_map.raw').split() == ['F', 'In', 'P']


def test_grow_dataset_refuses_output_without_forces(generate_cp2k_calc):
    calc = generate_cp2k_calc({'aiida.out': 'ENERGY| Total FORCE_EVAL ( QS ) energy [a.u.]: -1.0\n'})
    structure = orm.StructureData(ase=Atoms('InPF', positions=np.eye(3), cell=[9, 9, 9])).store()
    with pytest.raises(ValueError, match='PRINT/FORCES'):
        grow_dataset(orm.Dict({'type_map': ['F', 'In', 'P'], 'validation_every': 0}), structure_000=structure,
                     output_parameters_000=orm.Dict({'energy': -1.0, 'energy_units': 'a.u.'}).store(),
                     retrieved_000=calc.outputs.retrieved)
