"""The archives shipped with the force fields (``tests/data/mlff/in4pf9``: PBE labels; ``tests/data/mlff/cd6se4oac4``:
GFN1-xTB labels): every training and held-out frame traces to the CP2K calculation that labelled it, and the shipped
model is the run's ensemble member with the lowest force RMSE on the loop's own validation frames."""

from __future__ import annotations

import hashlib
import pathlib

import pytest
from aiida import orm

pytestmark = pytest.mark.usefixtures('aiida_profile')


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def model_sha256(model: orm.SinglefileData) -> str:
    """The sha256 of a model's weights, also of a model whose weights the archive left out (its extra
    ``qdtraps_stripped_files`` records them)."""
    stripped = model.base.extras.get('qdtraps_stripped_files', [])
    return stripped[0]['sha256'] if stripped else sha256(model.get_content('rb'))


@pytest.fixture(scope='module', params=['in4pf9', 'cd6se4oac4'])
def reference(aiida_profile, request):
    """The imported archive: the folder, the run whose ensemble holds the shipped model, the import group."""
    from aiida.tools.archive import import_archive

    folder = pathlib.Path(__file__).parents[1] / 'data' / 'mlff' / request.param
    group = orm.load_group(import_archive(folder / 'training.aiida'))
    shipped = sha256((folder / 'model.pth').read_bytes())
    # The archive also holds earlier runs of the same initial data, whose CalcJobs the shipped run reused from the cache
    # (some of them stopped before they had models).
    runs = [node for node in group.nodes if isinstance(node, orm.WorkChainNode)
            and node.process_label == 'MlffActiveLearningWorkChain' and 'models' in node.outputs
            and any(model_sha256(model) == shipped for model in node.outputs.models.values())]
    assert len(runs) == 1 and runs[0].is_finished_ok
    return folder, runs[0], group


def test_the_shipped_model_is_the_run_model_with_the_lowest_validation_force_rmse(reference):
    folder, run, _ = reference
    errors = {name: node.creator.outputs.output_parameters['force_rmse'] for name, node in run.outputs.models.items()}
    assert len(errors) == 4
    chosen = min(errors, key=errors.get)
    assert sha256(run.outputs.models[chosen].get_content('rb')) == sha256((folder / 'model.pth').read_bytes())
    # the other members' weights: left out of the archive or shipped in ensemble/ (the shipped member first)
    ensemble = sorted((folder / 'ensemble').glob('model_*.pth')) if (folder / 'ensemble').is_dir() else []
    if ensemble:
        order = [chosen, *sorted(set(errors) - {chosen})]
        assert [sha256(path.read_bytes()) for path in ensemble] == [model_sha256(run.outputs.models[name])
                                                                    for name in order]


def test_every_training_frame_traces_to_a_cp2k_calculation(reference):
    _, run, _ = reference
    dataset = run.outputs.dataset
    sources = dataset.base.attributes.get('frame_sources')
    uuids = {uuid for values in sources.values() for uuid in values}
    assert sum(len(values) for values in sources.values()) >= 100
    for uuid in uuids:
        node = orm.load_node(uuid)
        assert node.process_type == 'aiida.calculations:cp2k'
        assert node.is_finished_ok
        run_type = node.inputs.parameters['GLOBAL']['RUN_TYPE']
        assert run_type in ('MD', 'ENERGY_FORCE')
    # At least one label of an MLFF MD frame (active learning), not only the initial CP2K MD.
    types = {orm.load_node(uuid).inputs.parameters['GLOBAL']['RUN_TYPE'] for uuid in uuids}
    assert types == {'MD', 'ENERGY_FORCE'}


def test_the_held_out_frames_come_from_another_cp2k_md(reference):
    _, run, group = reference
    imported = {node.uuid for node in group.nodes}
    query = orm.QueryBuilder().append(orm.CalcFunctionNode, filters={'attributes.process_label': 'grow_dataset'},
                                      tag='grow').append(orm.FolderData, with_incoming='grow', project='*')
    training_sources = {uuid for values in run.outputs.dataset.base.attributes.get('frame_sources').values()
                        for uuid in values}
    held_out = []
    for dataset in query.all(flat=True):
        if dataset.uuid not in imported:
            continue
        sources = {uuid for values in dataset.base.attributes.get('frame_sources').values() for uuid in values}
        if not sources & training_sources:
            held_out.append(sources)
    assert len(held_out) == 1
    (md_uuid,) = held_out[0]
    md = orm.load_node(md_uuid)
    assert md.inputs.parameters['GLOBAL']['RUN_TYPE'] == 'MD'
    assert md.inputs.parameters['MOTION']['MD']['TEMPERATURE'] == 300.0
    initial = [orm.load_node(uuid) for uuid in training_sources
               if orm.load_node(uuid).inputs.parameters['GLOBAL']['RUN_TYPE'] == 'MD']
    assert all(node.inputs.parameters['GLOBAL']['SEED'] != md.inputs.parameters['GLOBAL']['SEED'] for node in initial)
