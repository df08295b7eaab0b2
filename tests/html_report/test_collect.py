"""What a report shows, read from the provenance of the recorded In4PF9 labelling (tests/html_report/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm

from aiida_qdtraps.html_report import ReportError, default_filename, render_report, write_demo_report, write_report
from aiida_qdtraps.html_report.collect import ARROW_LENGTH, collect, find_labeling


def test_every_entry_point_finds_the_same_labelling(labelled_qd):
    label = labelled_qd['label_traps']
    starts = [labelled_qd['workchain'], label, label.outputs.atom_labels, labelled_qd['structure'],
              next(iter(label.outputs.traps.values()))]
    assert {find_labeling(node).uuid for node in starts} == {label.uuid}


def test_report_contents(labelled_qd):
    report = collect(labelled_qd['workchain'])
    facts = dict(report['facts'])
    assert facts['formula'] == 'F9In4P (14 atoms)'
    assert facts['charge'] == '+0 e (SCF input)' and facts['multiplicity'] == '1'
    assert facts['protocol'] == 'fast' and facts['engine'] == 'CP2K (SCF)'
    assert facts['recipe'] == 'not built from a recipe'
    steps = {row['step']: row for row in report['provenance']}
    assert steps['SCF (MO window)']['uuid'] == labelled_qd['scf'].uuid
    assert steps['trap labelling']['uuid'] == labelled_qd['label_traps'].uuid
    assert steps['charge flow (Bader)']['uuid'] == labelled_qd['charge_flow'].uuid
    assert 'relax' not in steps and 'build' not in steps
    # trap rows are the TrapRecords, in output order; their centres are highlighted
    records = [labelled_qd['label_traps'].outputs.traps[f'trap_{i}'] for i in range(len(report['traps']))]
    assert report['traps'] and [r['depth'] for r in report['traps']] == [t['depth'] for t in records]
    assert {h['index'] for h in report['highlights']} == {t['center'] for t in records}
    # Bader Δq per element: Z_val − population, averaged (tests/html_report/conftest.py POPULATIONS)
    bader = {row['element']: row for row in report['bader']}
    assert bader['P']['dq_mean'] == pytest.approx(5 - 5.54349)
    assert bader['In']['dq_mean'] == pytest.approx(13 - np.mean([11.23312, 11.55697, 11.53433, 11.55067]))
    assert bader['F']['n_atoms'] == 9
    # arrows: the longest is ARROW_LENGTH long
    lengths = [np.linalg.norm(np.subtract(a['end'], a['start'])) for a in report['arrows']]
    assert max(lengths) == pytest.approx(ARROW_LENGTH, abs=1e-3)
    titles = [figure['title'] for figure in report['figures']]
    assert titles == ['Participation ratio vs energy', 'PDOS by element and coordination', 'Charge-flow map',
                      'Domain PDOS']
    assert all(figure['png'][:4] == b'\x89PNG' for figure in report['figures'])
    assert all('Stored plot' in figure['caption'] for figure in report['figures'])  # nothing redrawn
    assert any('MLFF parity' in note for note in report['notes'])


def test_bare_label_traps_gets_its_plots_drawn(labelled_qd):
    """label_traps alone (run outside the work chain, so no stored plots): the figures are drawn, nothing stored."""
    from aiida_qdtraps.workchains.traps import label_traps

    label = labelled_qd['label_traps']
    _, node = label_traps.run_get_node(structure=label.inputs.structure, mo_window=label.inputs.mo_window)
    count = orm.QueryBuilder().append(orm.Node).count()
    report = collect(node)
    assert orm.QueryBuilder().append(orm.Node).count() == count
    assert [f['title'] for f in report['figures']][:2] == ['Participation ratio vs energy',
                                                          'PDOS by element and coordination']
    assert 'Drawn for this report' in report['figures'][0]['caption']
    assert report['figures'][0]['png'][:4] == b'\x89PNG'


def test_nodes_without_results_are_refused(labelled_qd, tmp_path):
    bare = orm.StructureData(cell=np.eye(3) * 10)
    bare.append_atom(position=(0, 0, 0), symbols='In')
    bare.store()
    with pytest.raises(ReportError, match=rf'StructureData<{bare.pk}> \(In\) has no trap labelling'):
        write_report(bare, tmp_path / 'x.html')
    with pytest.raises(ReportError, match=r'Dict<\d+> has no results to report'):
        collect(orm.Dict({'a': 1}).store())
    scf = labelled_qd['scf']
    with pytest.raises(ReportError, match=rf'Cp2kCalculation<{scf.pk}> \(finished\) has no results to report'):
        collect(scf)
    assert not list(tmp_path.iterdir())


def test_unwritable_output_is_refused_before_any_work(labelled_qd, tmp_path):
    node = labelled_qd['workchain']
    with pytest.raises(ReportError, match='the folder .*missing does not exist'):
        write_report(node, tmp_path / 'missing' / 'r.html')
    with pytest.raises(ReportError, match='is a directory'):
        write_report(node, tmp_path)
    locked = tmp_path / 'locked'
    locked.mkdir(mode=0o500)
    import os

    if os.geteuid() != 0:  # root writes anywhere
        with pytest.raises(ReportError, match='permission denied'):
            write_report(node, locked / 'r.html')
    with pytest.raises(ReportError, match='cannot write /proc/qdtraps-report.html'):  # refused even to root
        write_report(node, '/proc/qdtraps-report.html')


def test_written_report_is_self_contained(labelled_qd, tmp_path):
    path = write_report(labelled_qd['workchain'], tmp_path / default_filename(labelled_qd['workchain']))
    assert path.name == f"F9In4P_{labelled_qd['label_traps'].uuid[:8]}.html"
    text = path.read_text()
    assert text == render_report(labelled_qd['label_traps'])  # the same labelling from label_traps: the same page
    assert text.count('class="trap-row"') == len(labelled_qd['label_traps'].outputs.traps)
    assert text.count('data:image/png;base64,') == 4


def test_demo_report_is_written_and_announced(labelled_qd, tmp_path, capsys):
    path = write_demo_report(labelled_qd['workchain'], tmp_path / 'demo_output')
    assert path.parent == tmp_path / 'demo_output' and path.read_text().startswith('<!DOCTYPE html>')
    assert f'HTML report: {path.resolve()} ({path.stat().st_size / 1e6:.2f} MB' in capsys.readouterr().out
