"""``qdtraps traps`` and ``qdtraps trace`` against a project profile holding the labels of a recorded PBE0 run."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest

ROW = re.compile(r'^\s*\d+\s+\S+\s+(hole|electron)\s')

LABEL_RECORDED_RUN = textwrap.dedent("""
    import ase.io
    from aiida import orm
    from aiida.engine import run_get_node
    from aiida_qdtraps.profile import load_project_profile
    load_project_profile()
    from aiida_qdtraps.workchains.mo_window import extract_mo_window
    from aiida_qdtraps.workchains.traps import TrapLabelingWorkChain
    data = {data!r}
    retrieved = orm.FolderData()
    retrieved.base.repository.put_object_from_file(data + '/aiida-MOS-1_0.molden', 'aiida-MOS-1_0.molden')
    window = extract_mo_window(retrieved.store(), orm.Dict({{'occupied': 30, 'virtual': 10}}))['mo_window']
    structure = orm.StructureData(ase=ase.io.read(data + '/qd.xyz')).store()
    _, node = run_get_node(TrapLabelingWorkChain, structure=structure, mo_window=window, protocol=orm.Str('fast'),
                           plots=orm.Bool(False))
    assert node.is_finished_ok, node.exit_message
    print('TRAPS', ' '.join(str(n.pk) for n in node.outputs.traps.values()))
    label = node.base.links.get_outgoing(link_label_filter='label_traps').one().node
    print('CACHED', label.base.caching.is_created_from_cache)
""")


@pytest.fixture(scope='module')
def labelled_profile(tmp_path_factory, run_qdtraps, run_python, data_dir_module):
    aiida_path = tmp_path_factory.mktemp('traps_cli') / '.aiida'
    assert run_qdtraps(['setup'], aiida_path).returncode == 0
    script = LABEL_RECORDED_RUN.format(data=str(data_dir_module / 'cp2k' / 'pbe0_success'))
    stdout = run_python(script, aiida_path)
    pks = [int(pk) for pk in re.search(r'^TRAPS (.*)$', stdout, re.M).group(1).split()]
    assert 'CACHED False' in stdout
    return aiida_path, pks, script


@pytest.fixture(scope='module')
def data_dir_module():
    import pathlib

    return pathlib.Path(__file__).parent.parent / 'data'


@pytest.mark.slow
def test_traps_lists_and_filters(labelled_profile, run_qdtraps):
    aiida_path, pks, _ = labelled_profile
    result = run_qdtraps(['traps'], aiida_path)
    assert result.returncode == 0, result.stderr
    listed = [int(line.split()[0]) for line in result.stdout.splitlines() if ROW.match(line)]
    assert sorted(listed) == sorted(pks)
    assert f'{len(pks)} trap state(s)' in result.stdout
    holes = run_qdtraps(['traps', '--carrier', 'hole', '--protocol', 'fast'], aiida_path)
    hole_rows = [line for line in holes.stdout.splitlines() if ROW.match(line)]
    assert hole_rows and all(' hole ' in line for line in hole_rows)
    none = run_qdtraps(['traps', '--element', 'Ga'], aiida_path)
    assert 'no trap states' in none.stdout and '0 trap state(s)' in none.stdout
    bad = run_qdtraps(['traps', '--carrier', 'holes'], aiida_path)
    assert bad.returncode != 0 and "'holes' is not one of" in bad.stderr


@pytest.mark.slow
def test_trace_walks_back(labelled_profile, run_qdtraps):
    aiida_path, pks, _ = labelled_profile
    result = run_qdtraps(['trace', str(pks[0])], aiida_path)
    assert result.returncode == 0, result.stderr
    assert re.search(r'label_traps\s+CalcFunctionNode<\d+>', result.stdout)
    assert re.search(r'structure\s+StructureData<\d+>\s+F9In4P', result.stdout)
    assert re.search(r'recipe\s+-', result.stdout)
    wrong = run_qdtraps(['trace', '1'], aiida_path)
    assert wrong.returncode != 0 and 'not a TrapRecord' in wrong.stderr


@pytest.mark.slow
def test_setup_enables_caching(labelled_profile, run_python):
    """`qdtraps setup` turns on caching: the same labeling run again reuses label_traps instead of recomputing."""
    aiida_path, _, script = labelled_profile
    assert 'CACHED True' in run_python(script, aiida_path)


@pytest.mark.slow
def test_archive_round_trip(labelled_profile, run_qdtraps, run_python, tmp_path):
    """Export the labelled profile, import it into a fresh project profile: same nodes, same trap table."""
    aiida_path, _, _ = labelled_profile
    verdi = str(pathlib.Path(sys.executable).parent / 'verdi')
    archive = tmp_path / 'traps.aiida'

    def verdi_run(args, path):
        environment = {k: v for k, v in os.environ.items() if k != 'QDTRAPS_AIIDA_PATH'} | {'AIIDA_PATH': str(path)}
        return subprocess.run([verdi, '-p', 'qdtraps', *args], env=environment, capture_output=True, text=True,
                              timeout=300, check=False)

    created = verdi_run(['archive', 'create', '--all', str(archive)], aiida_path)
    assert created.returncode == 0, created.stdout + created.stderr
    fresh = tmp_path / '.aiida'
    assert run_qdtraps(['setup'], fresh).returncode == 0
    imported = verdi_run(['archive', 'import', str(archive)], fresh)
    assert imported.returncode == 0, imported.stdout + imported.stderr

    def rows(path):
        output = run_qdtraps(['traps'], path).stdout
        return sorted(line.split()[1:] for line in output.splitlines() if ROW.match(line))  # all columns but the pk

    assert rows(fresh) == rows(aiida_path)
    # Codes and UPF pseudopotentials are made by each profile's own set-up; compare everything else.
    count = ('from aiida import orm; print("NODES", orm.QueryBuilder().append(orm.Node, filters={"node_type": {"and": '
             '[{"!like": "data.core.code%"}, {"!like": "data.pseudo%"}]}}).count())')
    counts = []
    for path in (aiida_path, fresh):
        script = f'from aiida_qdtraps.profile import load_project_profile; load_project_profile(); {count}'
        counts.append(re.search(r'NODES (\d+)', run_python(script, path)).group(1))
    assert counts[0] == counts[1]
