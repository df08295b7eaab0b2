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
    assert summary['settings'] == {'fmax': 0.3, 'steps': 5, 'maxstep': 0.05, 'max_move': 1.0}
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


def test_prerelax_settings_refuse_unknown_keys():
    assert prerelax_settings({}) == {'fmax': 0.05, 'steps': 200, 'maxstep': 0.1, 'max_move': 1.0}
    with pytest.raises(ValueError, match=r"unknown MLFF pre-relaxation parameter\(s\) \['fmx'\]"):
        prerelax_settings({'fmx': 0.1})


def test_relax_work_chain_takes_an_optional_model(cp2k_code, tiny_qd, model):
    builder = QdRelaxWorkChain.get_builder_from_protocol(cp2k_code, tiny_qd, protocol='fast')
    builder.mlff_model = model
    builder.mlff_prerelax = orm.Dict({'fmax': 0.1})
    assert not QdRelaxWorkChain.spec().inputs['mlff_model'].required
    assert not QdCp2kRelaxWorkChain.spec().inputs['mlff_model'].required  # the engine that runs it
    outline = str(QdCp2kRelaxWorkChain.spec().get_outline().get_description())
    assert outline.index('prerelax') < outline.index('run_relax')
