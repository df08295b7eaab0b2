"""``qdtraps report PK`` and ``qdtraps report --group NAME`` on the relaxed library, imported into the test profile.

The ``report`` command is invoked on its own (the root ``qdtraps`` group would switch to the project profile); it
uses the profile that is loaded. One run of the whole ``qdtraps`` CLI checks the message without a project profile.
"""

from __future__ import annotations

import pathlib

import pytest
from aiida import orm
from click.testing import CliRunner

from aiida_qdtraps.cli.cmd_report import report

LIBRARY = pathlib.Path(__file__).parent.parent / 'data' / 'library'
GROUP = 'qdtraps/library-relaxed'


@pytest.fixture(scope='module')
def library_group(aiida_profile):
    from aiida.tools.archive import import_archive

    import_archive(LIBRARY / 'library_relaxed.aiida')
    return orm.load_group(GROUP)


def invoke(*args):
    return CliRunner().invoke(report, [*map(str, args)])


def test_report_of_a_pipeline(library_group, tmp_path):
    pipeline = min(library_group.nodes, key=lambda n: n.uuid).caller
    out = tmp_path / 'qd.html'
    result = invoke(pipeline.pk, '-o', out)
    assert result.exit_code == 0, result.output
    size = out.stat().st_size
    assert f'{out} ({size / 1e6:.2f} MB, self-contained)' in result.output
    assert out.read_text().startswith('<!DOCTYPE html>')


def test_group_reports_and_index(library_group, tmp_path):
    """A Group of two library QDs and a node without results: two reports, the index, the third named on stderr."""
    group = orm.Group(label='report-cli-two').store()
    members = sorted(library_group.nodes, key=lambda n: n.uuid)[:2]
    params = orm.Dict({'a': 1}).store()
    group.add_nodes([*members, params])
    result = CliRunner().invoke(report, ['--group', group.label, '-o', str(tmp_path / 'reports')])
    assert result.exit_code == 0, result.output
    size = sum(path.stat().st_size for path in (tmp_path / 'reports').glob('*_*.html'))
    assert f'2 report(s) ({size / 1e6:.2f} MB) and the index {tmp_path / "reports" / "index.html"}' in result.stdout
    assert f'skipped node {params.pk}: Dict<{params.pk}> has no results' in result.stderr
    assert len(list((tmp_path / 'reports').glob('*.html'))) == 3


@pytest.mark.parametrize(('args', 'message'), [
    ((), 'give either a PK or --group NAME'),
    ((1, '--group', GROUP), 'give either a PK or --group NAME'),
    ((99999999,), 'no node with pk 99999999'),
    (('--group', 'no/such/group'), "no Group with label 'no/such/group'"),
])
def test_bad_arguments(library_group, args, message):
    result = invoke(*args)
    assert result.exit_code != 0 and message in result.output, result.output


def test_node_without_results_and_unwritable_output(library_group, tmp_path):
    params = orm.Dict({'a': 1}).store()
    result = invoke(params.pk)
    assert result.exit_code == 1 and f'Dict<{params.pk}> has no results to report' in result.output
    pipeline = min(library_group.nodes, key=lambda n: n.uuid).caller
    result = invoke(pipeline.pk, '-o', tmp_path / 'missing' / 'qd.html')
    assert result.exit_code == 1 and 'missing does not exist' in result.output
    assert not (tmp_path / 'missing').exists()


def test_without_a_project_profile(run_qdtraps, tmp_path):
    result = run_qdtraps(['report', '1'], tmp_path / '.aiida')
    assert result.returncode == 1 and 'run `qdtraps setup`' in result.stderr
