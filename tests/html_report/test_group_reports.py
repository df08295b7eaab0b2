"""Reports of the two test libraries written for their Groups (tests/data/library: ``library.aiida``, PBE0 -> labels
on the built geometries, ``TrapLabelingWorkChain`` per QD; ``library_relaxed.aiida``, built -> PBE relax -> PBE0 ->
labels, ``QdTrapsPipelineWorkChain`` per QD), and the report of an exported labelling imported into a fresh profile,
which must equal the original's but for the pks."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest
from aiida import orm

from aiida_qdtraps.html_report import ReportError, render_report, write_group_reports
from aiida_qdtraps.html_report.collect import collect

LIBRARY = pathlib.Path(__file__).parent.parent / 'data' / 'library'
GROUP = 'qdtraps/library-relaxed'
#: archive, Group, manifest (tests/data/library/build_library.py)
LIBRARIES = {'built': ('library.aiida', 'qdtraps/library', 'manifest.json'),
             'relaxed': ('library_relaxed.aiida', GROUP, 'manifest_relaxed.json')}


def import_library(name: str):
    from aiida.tools.archive import import_archive

    archive, group, manifest = LIBRARIES[name]
    import_archive(LIBRARY / archive)
    return orm.load_group(group), json.loads((LIBRARY / manifest).read_text())


@pytest.fixture(scope='module')
def relaxed_library(aiida_profile):
    return import_library('relaxed')


@pytest.mark.parametrize('name', LIBRARIES)
def test_group_reports_of_the_libraries(aiida_profile, name, tmp_path):
    group, manifest = import_library(name)
    index, rows = write_group_reports(group.label, tmp_path / 'reports')
    assert [row for row in rows if 'error' in row] == []
    assert sorted(row['formula'] for row in rows) == sorted(entry['formula'] for entry in manifest)
    # per QD, the trap counts of the manifest (built when the library was made)
    by_labels = {entry['atom_labels']: entry for entry in manifest}
    for row in rows:
        label = orm.load_node(row['pk'])
        entry = by_labels[label.outputs.atom_labels.uuid]
        counts = entry['trap_counts']
        assert row['n_hole_traps'] == sum(v for k, v in counts.items() if k.startswith('hole'))
        assert row['n_electron_traps'] == sum(v for k, v in counts.items() if k.startswith('electron'))
        page = (index.parent / row['href']).read_text()
        assert page.count('class="trap-row"') == sum(counts.values())
        assert f"<td>{entry['formula']} ({entry['n_atoms']} atoms)</td>" in page
    text = index.read_text()
    assert text.count('class="qd-row"') == len(manifest)
    assert all(f'href="{row["href"]}"' in text for row in rows)


def test_pipeline_report_walks_relax_and_build(relaxed_library):
    group, manifest = relaxed_library
    pipeline = min(group.nodes, key=lambda n: n.uuid).caller  # the Group holds the pipelines' labelling work chains
    assert pipeline.process_label == 'QdTrapsPipelineWorkChain'
    report = collect(pipeline)
    facts = dict(report['facts'])
    recipe = pipeline.inputs.structure.creator.inputs.recipe.get_dict()
    assert facts['recipe'] == ', '.join(f'{k} {v}' for k, v in recipe.items())
    assert facts['engine'] == 'CP2K (relax), CP2K (SCF)' and facts['protocol'] == 'fast'
    assert facts['charge'] == f'{pipeline.inputs.charge.value:+d} e (pipeline inputs)'
    steps = [row['step'] for row in report['provenance']]
    assert steps[:4] == ['build', 'built structure', 'relax', 'SCF (MO window)'] and steps[-1] == 'pipeline'
    relax = next(row for row in report['provenance'] if row['step'] == 'relax')
    assert orm.load_node(relax['uuid']).inputs.parameters['GLOBAL']['RUN_TYPE'] == 'GEO_OPT'
    # the built structure gives the same report as the pipeline (its labelling hangs off a structure made from it)
    built = pipeline.inputs.structure
    assert render_report(built) == render_report(pipeline)


def test_missing_group_and_unwritable_folder_are_refused(relaxed_library, tmp_path):
    with pytest.raises(ReportError, match="no Group with label 'no/such/group'"):
        write_group_reports('no/such/group', tmp_path)
    with pytest.raises(ReportError, match='cannot create the folder /proc/qdtraps-reports'):
        write_group_reports(GROUP, '/proc/qdtraps-reports')


#: In a fresh project profile (own AIIDA_PATH): import the archive, write the report of the labelling by uuid.
FRESH_PROFILE_REPORT = textwrap.dedent("""
    import sys
    from aiida_qdtraps.profile import ensure_profile, load_project_profile
    ensure_profile()
    load_project_profile()
    from aiida import orm
    from aiida.tools.archive import import_archive
    from aiida_qdtraps.html_report import write_report
    archive, uuid, path = sys.argv[1:]
    import_archive(archive)
    write_report(orm.load_node(uuid), path)
""")


def _without_pks(text: str) -> str:
    return re.sub(r'<span class="pk">\d+</span>', '<span class="pk">PK</span>', text)


def test_report_survives_an_archive(labelled_qd, tmp_path):
    """Export the labelling, its charge flow and plots; import into a fresh profile: the same report but the pks."""
    from aiida.tools.archive import create_archive

    workchain, flow = labelled_qd['workchain'], labelled_qd['charge_flow']
    plots = flow.outputs.charge_flow.base.links.get_outgoing().all_nodes()  # map and domain PDOS calcfunctions
    archive = tmp_path / 'qd.aiida'
    create_archive([workchain, flow, *plots], filename=archive)
    original = render_report(workchain)
    env = {k: v for k, v in os.environ.items() if k != 'AIIDA_PATH'} | {
        'QDTRAPS_AIIDA_PATH': str(tmp_path / '.aiida'), 'OMP_NUM_THREADS': '1'}
    copy = tmp_path / 'imported.html'
    result = subprocess.run([sys.executable, '-c', FRESH_PROFILE_REPORT, str(archive), workchain.uuid, str(copy)],
                            env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    imported = copy.read_text()
    assert 'id="bader"' in imported and imported.count('data:image/png;base64,') == 4
    assert _without_pks(imported) == _without_pks(original)
