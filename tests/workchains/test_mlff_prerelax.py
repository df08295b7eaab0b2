"""MLFF pre-relaxation: the ``mlff_prerelax`` calcfunction with a recorded real DeePMD model, and its place in
``QdRelaxWorkChain``'s CP2K engine (``QdCp2kRelaxWorkChain``). The GEO_OPT with and without it: docs/mlff.md (a real
run, not in CI)."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from ase.io import read

from aiida_qdtraps.workchains.cp2k_relax import QdCp2kRelaxWorkChain
from aiida_qdtraps.workchains.mlff_prerelax import mlff_prerelax, prerelax_settings
from aiida_qdtraps.workchains.relax import QdRelaxWorkChain


@pytest.fixture
def model(data_dir):
    return orm.SinglefileData(data_dir / 'deepmd' / 'model_in4pf9_fast.pth').store()


@pytest.fixture
def rattled_qd(data_dir):
    atoms = read(data_dir / 'deepmd' / 'in4pf9_relaxed_fast.xyz')
    atoms.positions += np.random.default_rng(1).normal(0, 0.05, atoms.positions.shape)
    structure = orm.StructureData(ase=atoms)
    structure.pbc = (False, False, False)
    return structure.store()


def test_mlff_prerelax_keeps_cell_and_kinds_and_records_its_steps(rattled_qd, model):
    result = mlff_prerelax(rattled_qd, model, orm.Dict({'steps': 5, 'maxstep': 0.05, 'fmax': 0.3}))
    relaxed, summary = result['structure'], result['output_parameters'].get_dict()
    assert relaxed.creator.inputs.model.uuid == model.uuid
    assert relaxed.get_site_kindnames() == rattled_qd.get_site_kindnames()
    assert np.allclose(relaxed.cell, rattled_qd.cell) and relaxed.pbc == (False, False, False)
    assert 0 <= summary['n_steps'] <= 5 and len(summary['energies']) == summary['n_steps'] + 1
    assert summary['settings'] == {'fmax': 0.3, 'steps': 5, 'maxstep': 0.05, 'max_move': 1.0, 'max_deviation': 0.2}
    assert 'end_deviation' not in summary  # no ensemble
    assert summary['converged'] == (summary['fmax'][-1] < 0.3)
    moved = np.linalg.norm(relaxed.get_ase().positions - rattled_qd.get_ase().positions, axis=1)
    assert summary['accepted'] == (summary['converged'] and summary['max_displacement'] <= 1.0)
    if summary['accepted']:
        assert moved.max() == pytest.approx(summary['max_displacement'])
    else:  # the GEO_OPT then starts from the input geometry
        assert moved.max() == 0


def test_mlff_prerelax_keeps_the_input_geometry_when_the_model_slides_away(data_dir, model):
    """From the DFT minimum, the CI-sized model's BFGS does not converge (its forces grow): the input is kept."""
    structure = orm.StructureData(ase=read(data_dir / 'deepmd' / 'in4pf9_relaxed_fast.xyz'))
    summary = mlff_prerelax(structure, model, orm.Dict({'steps': 20, 'maxstep': 0.05}))
    output = summary['output_parameters'].get_dict()
    assert not output['accepted'] and output['reason'].startswith('not converged')
    assert np.allclose(summary['structure'].get_ase().positions, structure.get_ase().positions)


def test_an_ensemble_that_disagrees_at_the_end_geometry_keeps_the_input(data_dir):
    """The reference model relaxes the DFT minimum of In4PF9 in a few BFGS steps, moving atoms by less than
    ``max_move``: accepted on its own. With the CI-sized model as the ensemble, the two disagree at the end geometry by
    about 0.15 eV/Å: refused at ``max_deviation`` 0.05 eV/Å (input geometry kept, deviation recorded), accepted at
    0.5 eV/Å; with a copy of the driving model as the ensemble the deviation is zero."""
    structure = orm.StructureData(ase=read(data_dir / 'cp2k' / 'relaxed' / 'in4pf9_fast.xyz'))
    structure.pbc = (False, False, False)
    reference = orm.SinglefileData(data_dir / 'mlff' / 'in4pf9' / 'model.pth')
    alone = mlff_prerelax(structure, reference, orm.Dict({}))['output_parameters']
    assert alone['accepted'] and alone['max_displacement'] < 1.0

    poor = orm.SinglefileData(data_dir / 'deepmd' / 'model_in4pf9_fast.pth')
    refused = mlff_prerelax(structure, reference, orm.Dict({'max_deviation': 0.05}), member_1=poor)
    summary = refused['output_parameters'].get_dict()
    assert not summary['accepted'] and 0.05 < summary['end_deviation'] < 0.5 and summary['n_ensemble'] == 2
    assert summary['reason'].startswith('the ensemble force deviation at the end')
    assert np.allclose(refused['structure'].get_ase().positions, structure.get_ase().positions)
    loose = mlff_prerelax(structure, reference, orm.Dict({'max_deviation': 0.5}), member_1=poor)['output_parameters']
    assert loose['accepted'] and loose['end_deviation'] == pytest.approx(summary['end_deviation'])

    copy = orm.SinglefileData(data_dir / 'mlff' / 'in4pf9' / 'model.pth')
    agreed = mlff_prerelax(structure, reference, orm.Dict({}), member_1=copy)['output_parameters']
    assert agreed['accepted'] and agreed['end_deviation'] == pytest.approx(0, abs=1e-6)
    assert 'ensemble force deviation' in agreed['reason']


def test_prerelax_settings_refuse_unknown_keys():
    assert prerelax_settings({}) == {'fmax': 0.05, 'steps': 200, 'maxstep': 0.1, 'max_move': 1.0,
                                     'max_deviation': 0.2}
    with pytest.raises(ValueError, match=r"unknown MLFF pre-relaxation parameter\(s\) \['fmx'\]"):
        prerelax_settings({'fmx': 0.1})


def test_relax_work_chain_takes_an_optional_model(cp2k_code, tiny_qd, model):
    builder = QdRelaxWorkChain.get_builder_from_protocol(cp2k_code, tiny_qd, protocol='fast')
    builder.mlff_model = model
    builder.mlff_ensemble = {'model_2': model}
    builder.mlff_prerelax = orm.Dict({'fmax': 0.1, 'max_deviation': 0.3})
    assert not QdRelaxWorkChain.spec().inputs['mlff_model'].required
    assert not QdRelaxWorkChain.spec().inputs['mlff_ensemble'].required
    assert not QdCp2kRelaxWorkChain.spec().inputs['mlff_model'].required  # the engine that runs it
    outline = str(QdCp2kRelaxWorkChain.spec().get_outline().get_description())
    assert outline.index('prerelax') < outline.index('run_relax')


def test_an_ensemble_without_a_model_is_refused(generate_workchain, cp2k_code, tiny_qd, model):
    """``mlff_ensemble`` alone: the pre-relaxation step fails with a message that names the missing model, before any
    CP2K job."""
    builder = QdCp2kRelaxWorkChain.get_builder_from_protocol(cp2k_code, tiny_qd, protocol='fast')
    builder.mlff_ensemble = {'model_2': model}
    process = generate_workchain(QdCp2kRelaxWorkChain, builder._inputs(prune=True))
    process.setup()
    assert process.should_prerelax()
    exit_code = process.prerelax()
    assert exit_code.status == QdCp2kRelaxWorkChain.exit_codes.ERROR_RELAX_FAILED.status
    assert 'mlff_ensemble (model_2) needs mlff_model' in exit_code.message


def test_ensemble_deviation_names_an_element_a_model_does_not_know(data_dir):
    from ase import Atoms

    from aiida_qdtraps.analysis.mlff_relax import ensemble_deviation

    model = str(data_dir / 'mlff' / 'in4pf9' / 'model.pth')
    with pytest.raises(ValueError, match=r"element\(s\) \['Cd'\] that the model does not know \(type map "
                                         r"\['F', 'In', 'P'\]\)"):
        ensemble_deviation(Atoms('CdP', positions=[[0, 0, 0], [2.5, 0, 0]]), [model, model])
