"""``qdtraps classify train / report / predict`` in subprocesses, on a fresh project profile that imported the shipped
library archive with ``qdtraps archive import`` (what a collaborator who receives the archive does)."""

from __future__ import annotations

import json
import pathlib
import re

import pytest

LIBRARY = pathlib.Path(__file__).parent.parent / 'data' / 'library'

#: The trained model and its provenance, read back with QueryBuilder in another interpreter.
DESCRIBE = """
import json, sys
from aiida import orm
from aiida_qdtraps.profile import load_project_profile
load_project_profile()
from aiida_qdtraps.analysis.classifier import model_from_json

model = orm.load_node(int(sys.argv[1]))
qb = orm.QueryBuilder().append(orm.SinglefileData, filters={'uuid': model.uuid}, tag='model')
qb.append(orm.CalcFunctionNode, with_outgoing='model', tag='train', project='attributes.process_label')
qb.append(orm.ArrayData, with_outgoing='train', edge_filters={'label': 'dataset'}, project='uuid')
label, dataset_uuid = qb.one()
dataset = orm.load_node(dataset_uuid)
group = orm.load_group('qdtraps/library')
sources = {str(u) for u in dataset.get_array('source_uuid')}
labels = {n.outputs.atom_labels.uuid for n in group.nodes}
_, meta = model_from_json(model.get_content('rb'))
print('DESCRIPTION', json.dumps({'creator': label, 'n_rows': len(dataset.get_array('y')),
                                 'n_positive': int(dataset.get_array('y').sum()),
                                 'sources_in_library': sources <= labels, 'n_sources': len(sources),
                                 'dataset_uuid': meta['dataset_uuid'] == dataset.uuid,
                                 'labeling': next(iter(group.nodes)).pk}))
"""

EXAMPLE = f"""
import runpy, sys
from aiida_qdtraps.profile import load_project_profile
load_project_profile()
sys.argv = ['classify_library.py']
runpy.run_path({str(LIBRARY.parent.parent.parent / 'examples' / 'classify_library.py')!r}, run_name='__main__')
"""


@pytest.mark.slow
def test_classify_train_report_predict_on_imported_library(tmp_path, run_qdtraps, run_python):
    aiida_path = tmp_path / '.aiida'
    run_python('from aiida_qdtraps.profile import ensure_profile; ensure_profile()', aiida_path)
    imported = run_qdtraps(['archive', 'import', str(LIBRARY / 'library.aiida')], aiida_path, timeout=600)
    assert imported.returncode == 0, imported.stdout + imported.stderr
    manifest = json.loads((LIBRARY / 'manifest.json').read_text())

    # the default samples: 4-coordinate P; split by QD
    trained = run_qdtraps(['classify', 'train', 'qdtraps/library'], aiida_path, timeout=900)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert 'macro-F1' in trained.stdout and 'geometry (21)' in trained.stdout
    model = int(re.search(r'model: SinglefileData<(\d+)>', trained.stdout).group(1))
    description = json.loads(run_python(DESCRIBE, aiida_path, argv=[str(model)]).split('DESCRIPTION ', 1)[1])
    assert description['creator'] == 'train_classifier' and description['dataset_uuid']
    # every row comes from a library QD; QDs without a P-4c (the MF3 vacancies leave P 3-coordinate) give no row
    assert description['sources_in_library'] and 2 <= description['n_sources'] <= len(manifest)
    assert description['n_positive'] > 0 and description['n_rows'] > description['n_positive']
    samples = re.search(r'samples (\d+) \((\d+) trapping\)', trained.stdout)
    assert (int(samples.group(1)), int(samples.group(2))) == (description['n_rows'], description['n_positive'])

    report = run_qdtraps(['classify', 'report', str(model), '--output-dir', str(tmp_path / 'report')], aiida_path)
    assert report.returncode == 0, report.stdout + report.stderr
    assert 'top features by gain' in report.stdout
    assert (tmp_path / 'report' / 'importance_plot.png').read_bytes()[:4] == b'\x89PNG'

    predicted = run_qdtraps(['classify', 'predict', str(model), str(description['labeling'])], aiida_path)
    assert predicted.returncode == 0, predicted.stdout + predicted.stderr
    assert re.search(r'^\d+\s+P\s', predicted.stdout, re.M)

    # examples/classify_library.py on the same profile (library already imported): all core atoms, split by QD, and
    # the QueryBuilder walk from the model to a trapping sample's built structure
    example = run_python(EXAMPLE, aiida_path, timeout=600)
    assert f"qdtraps/library: {len(manifest)} labelled QDs" in example
    assert re.search(r'samples (\d+) \((\d+) trapping\)', example).group(1) != samples.group(1)  # not P-4c only
    assert '(labelled trapping: True)' in example and '<- built structure' in example
