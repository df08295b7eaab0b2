"""``benchmarks/mlff_reference_model.py``: the models of a run imported without their weights, supplied from files."""

from __future__ import annotations

import hashlib
import io
import types

import pytest
from aiida import orm


@pytest.fixture(scope='module')
def bench(load_script):
    return load_script('benchmarks/mlff_reference_model.py')


def test_stripped_models_are_taken_from_the_ensemble_files_by_sha256(aiida_profile, bench, tmp_path):
    kept = orm.SinglefileData(io.BytesIO(b'weights of model 1'), filename='model.pth').store()
    stripped = orm.SinglefileData(io.BytesIO(b''), filename='model.pth').store()
    content = b'weights of model 2'
    stripped.base.extras.set('qdtraps_stripped_files', [{'path': 'model.pth', 'size': len(content),
                                                         'sha256': hashlib.sha256(content).hexdigest()}])
    (tmp_path / 'model_1.pth').write_bytes(b'weights of model 1')
    (tmp_path / 'model_7.pth').write_bytes(content)
    run = types.SimpleNamespace(outputs=types.SimpleNamespace(models={'model_1': kept, 'model_2': stripped}))

    assert bench.previous_models(run, None) == {'model_1': kept, 'model_2': stripped}
    models = bench.previous_models(run, str(tmp_path))
    assert models['model_1'].uuid == kept.uuid  # its weights are there: the node itself
    assert models['model_2'].get_content('rb') == content and models['model_2'].filename == 'model.pth'
    assert models['model_2'].base.extras.get('same_content_as') == stripped.uuid
    (tmp_path / 'model_7.pth').write_bytes(b'other weights')
    with pytest.raises(SystemExit, match=r'no file with the sha256 of model_2<\d+>'):
        bench.previous_models(run, str(tmp_path))
