"""``qdtraps archive create --no-cubes`` / ``check`` / ``import`` on project profiles in subprocesses."""

from __future__ import annotations

import pathlib
import re
import sqlite3
import textwrap
import zipfile

import pytest

import aiida_qdtraps

DATA = pathlib.Path(__file__).parent.parent / 'data'
ROW = re.compile(r'^\s*\d+\s+\S+\s+(hole|electron)\s')

#: A recorded CP2K PBE0 run as a finished CalcJob of the project profile (its retrieved folder holds the recorded
#: MOLDEN file and a real CP2K density cube), then the real labeling and the real cube → CHGCAR conversion on it.
PROFILE_WITH_CUBES = textwrap.dedent("""
    import gzip, io
    import ase.io
    from aiida import orm
    from aiida.common import LinkType
    from aiida.engine import run_get_node
    from aiida_qdtraps.profile import ensure_codes, ensure_computer, ensure_profile, load_project_profile
    ensure_profile(); ensure_computer(); ensure_codes()  # `qdtraps setup` without the UPF family, in this process
    load_project_profile()
    from aiida_qdtraps.workchains.charge_flow import density_cube_to_chgcar
    from aiida_qdtraps.workchains.mo_window import extract_mo_window
    from aiida_qdtraps.workchains.traps import TrapLabelingWorkChain
    data = {data!r}
    cube = gzip.decompress(open(data + '/bader/in4pf9_pbe0_density.cube.gz', 'rb').read())
    calc = orm.CalcJobNode(computer=orm.load_computer('localhost'), process_type='aiida.calculations:cp2k')
    calc.set_option('resources', {{'num_machines': 1, 'num_mpiprocs_per_machine': 1}})
    calc.base.links.add_incoming(orm.load_code('cp2k@localhost'), LinkType.INPUT_CALC, 'code')
    calc.store()
    retrieved = orm.FolderData()
    retrieved.base.repository.put_object_from_file(data + '/cp2k/pbe0_success/aiida-MOS-1_0.molden',
                                                   'aiida-MOS-1_0.molden')
    retrieved.base.repository.put_object_from_bytes(cube, 'aiida-ELECTRON_DENSITY-1_0.cube')
    retrieved.base.links.add_incoming(calc, LinkType.CREATE, 'retrieved')
    retrieved.store()
    density = orm.SinglefileData(io.BytesIO(cube), filename='density.cube')
    density.base.links.add_incoming(calc, LinkType.CREATE, 'density_cube')
    density.store()
    calc.set_exit_status(0); calc.set_process_state('finished'); calc.seal()
    window = extract_mo_window(retrieved, orm.Dict({{'occupied': 30, 'virtual': 10}}))['mo_window']
    structure = orm.StructureData(ase=ase.io.read(data + '/cp2k/pbe0_success/qd.xyz')).store()
    _, node = run_get_node(TrapLabelingWorkChain, structure=structure, mo_window=window, protocol=orm.Str('fast'),
                           plots=orm.Bool(False))
    assert node.is_finished_ok, node.exit_message
    chgcar = density_cube_to_chgcar(density)['chgcar']
    print('CALC', calc.uuid, 'DENSITY', density.uuid, 'CHGCAR', chgcar.uuid, 'RETRIEVED', retrieved.uuid)
    # the CLI in this interpreter (same click command as `qdtraps ...`; saves an interpreter start per command)
    from click.testing import CliRunner
    from aiida_qdtraps.cli import cli
    for args in ([{full!r}], ['--no-cubes', {slim!r}]):
        result = CliRunner().invoke(cli, ['archive', 'create', *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        print('CREATE', result.stdout)
    print('ROWS', CliRunner().invoke(cli, ['traps']).stdout)
""")

CHECK_IMPORTED = textwrap.dedent("""
    from aiida import orm
    from click.testing import CliRunner
    from aiida_qdtraps.cli import cli
    from aiida_qdtraps.profile import ensure_profile, load_project_profile
    ensure_profile()
    load_project_profile()
    imported = CliRunner().invoke(cli, ['archive', 'import', {slim!r}], catch_exceptions=False)
    assert imported.exit_code == 0, imported.output
    print('IMPORT-WARNING', 'Warning' in imported.stderr)
    print('ROWS', CliRunner().invoke(cli, ['traps']).stdout)
    from aiida_qdtraps.query import find_traps, trap_provenance
    traps = find_traps()
    calcs = {{trap_provenance(trap)['pbe0_calculation'].uuid for trap in traps}}
    print('TRAPS', len(traps), 'PBE0', ' '.join(sorted(calcs)))
    for uuid in ({density!r}, {chgcar!r}, {retrieved!r}):
        node = orm.load_node(uuid)
        print('FILES', type(node).__name__, sorted(node.base.repository.list_object_names()),
              [entry['path'] for entry in node.base.extras.get('qdtraps_stripped_files', [])])
    for uuid in ({calc!r}, {density!r}):
        print('CACHE', uuid, orm.load_node(uuid).base.caching.is_valid_cache)
    print('CREATOR-CACHE', orm.load_node({chgcar!r}).creator.base.caching.is_valid_cache)
""")


@pytest.fixture(scope='module')
def cube_profile(tmp_path_factory, run_python):
    """A project profile with a recorded PBE0 CalcJob holding a real density cube, its real trap labels and the real
    CHGCAR conversion, and two archives of it made with the CLI: in full and with ``--no-cubes``."""
    folder = tmp_path_factory.mktemp('archive_cli')
    full, slim = folder / 'full.aiida', folder / 'slim.aiida'
    stdout = run_python(PROFILE_WITH_CUBES.format(data=str(DATA), full=str(full), slim=str(slim)), folder / '.aiida')
    uuids = dict(zip(*[iter(re.search(r'^CALC .*$', stdout, re.MULTILINE).group(0).split())] * 2))
    return {key.lower(): value for key, value in uuids.items()}, full, slim, stdout


def _rows(output: str) -> list[list[str]]:
    return sorted(line.split()[1:] for line in output.splitlines() if ROW.match(line))  # all columns but the pk


@pytest.mark.slow
def test_archive_without_cubes(cube_profile, run_python, tmp_path):
    """The cube contents are gone, every node and link stays, trap queries and provenance work after import."""
    uuids, full, slim, created = cube_profile
    full_out, slim_out = created.split('CREATE ')[1:3]
    nodes = [re.search(r': (\d+) nodes', text).group(1) for text in (full_out, slim_out)]
    assert nodes[0] == nodes[1]
    assert 'left out 3 file(s) (2 distinct' in slim_out  # the cube twice (same content), the CHGCAR once
    for name in ('aiida-ELECTRON_DENSITY-1_0.cube', 'density.cube', 'CHGCAR'):
        assert name in slim_out
    assert slim.stat().st_size < full.stat().st_size - 500_000, (slim.stat().st_size, full.stat().st_size)

    stdout = run_python(CHECK_IMPORTED.format(slim=str(slim), **uuids), tmp_path / '.aiida')
    assert 'IMPORT-WARNING False' in stdout  # same plugin version: no warning
    source_rows, fresh_rows = _rows(created.split('ROWS ')[1]), _rows(stdout.split('ROWS ')[1])
    assert fresh_rows == source_rows and fresh_rows
    assert re.search(rf'^TRAPS \d+ PBE0 {uuids["calc"]}$', stdout, re.MULTILINE), stdout
    assert "FILES SinglefileData [] ['density.cube']" in stdout
    assert "FILES SinglefileData [] ['CHGCAR']" in stdout
    assert "FILES FolderData ['aiida-MOS-1_0.molden'] ['aiida-ELECTRON_DENSITY-1_0.cube']" in stdout
    assert f'CACHE {uuids["calc"]} False' in stdout and f'CACHE {uuids["density"]} False' in stdout
    assert 'CREATOR-CACHE False' in stdout


def test_strip_files_keeps_the_nodes_it_is_told_to_keep(cube_profile, tmp_path):
    """``keep``: the density ``SinglefileData`` keeps its cube while the retrieved folder loses the same content,
    which therefore stays in the archive's repository; a UUID that is not in the archive is an error."""
    import shutil

    from aiida_qdtraps.archive import strip_files

    uuids, full, _, _ = cube_profile
    copy = tmp_path / 'kept.aiida'
    shutil.copy(full, copy)
    removed = strip_files(copy, ('*.cube',), keep=[uuids['density']])
    assert [(f.uuid, f.path) for f in removed] == [(uuids['retrieved'], 'aiida-ELECTRON_DENSITY-1_0.cube')]
    with zipfile.ZipFile(copy) as archive:
        assert f'repo/{removed[0].sha256}' in archive.namelist()  # still the density node's file
    with pytest.raises(ValueError, match=r"keep names node\(s\) that are not in the archive .*\['no-such-uuid'\]"):
        strip_files(copy, ('*.cube',), keep=['no-such-uuid'])


def _edit_archive(source: pathlib.Path, target: pathlib.Path, *statements: tuple[str, tuple]) -> None:
    """Copy an archive, running SQL on its ``db.sqlite3`` (to fake one written by another plugin version)."""
    work = target.parent / 'db.sqlite3'
    with zipfile.ZipFile(source) as archive:
        work.write_bytes(archive.read('db.sqlite3'))
        connection = sqlite3.connect(work)
        with connection:
            for sql, parameters in statements:
                connection.execute(sql, parameters)
        connection.close()
        with zipfile.ZipFile(target, 'w') as out:
            for info in archive.infolist():
                if info.filename == 'db.sqlite3':
                    out.write(work, info.filename, compress_type=info.compress_type)
                else:
                    out.writestr(info, archive.read(info))
    work.unlink()


SET_PLUGIN_VERSION = ("UPDATE db_dbnode SET attributes = json_set(attributes, '$.version.plugin', ?) "
                      "WHERE process_type LIKE 'aiida.%:qdtraps.%'")
DROP_KIND = (("UPDATE db_dbnode SET attributes = json_remove(attributes, '$.kind') WHERE id = (SELECT min(id) FROM "
              "db_dbnode WHERE node_type = 'data.qdtraps.trap.TrapRecord.')"), ())


def test_archive_from_another_plugin_version(run_qdtraps, run_python, tmp_path):
    """An archive whose process nodes say aiida-qdtraps 0.0.9 (and a trap record without `kind`): named in `check`,
    a warning on `import`; one from 9.0.0 is refused unless --force."""
    installed = aiida_qdtraps.__version__
    library = DATA / 'library' / 'library.aiida'
    same = run_qdtraps(['archive', 'check', str(library)], tmp_path / 'unused')
    assert same.returncode == 0 and f'aiida-qdtraps {installed}, the installed version' in same.stdout

    old = tmp_path / 'old.aiida'
    _edit_archive(library, old, (SET_PLUGIN_VERSION, ('0.0.9',)), DROP_KIND)
    check = run_qdtraps(['archive', 'check', str(old)], tmp_path / 'unused')
    assert check.returncode == 1
    assert re.search(rf'written by aiida-qdtraps 0\.0\.9 \(\d+ processes\), but the installed version is {installed}',
                     check.stdout), check.stdout
    assert 'TrapRecord attributes that `qdtraps traps`' in check.stdout
    assert re.search(r'kind \(in 1 of \d+ records\)', check.stdout), check.stdout

    new = tmp_path / 'new.aiida'
    _edit_archive(library, new, (SET_PLUGIN_VERSION, ('9.0.0',)))
    stdout = run_python(IMPORT_OLD_AND_NEW.format(old=str(old), new=str(new)), tmp_path / '.aiida')
    old_import = stdout.split('IMPORT ')[1]
    assert old_import.startswith('0 ') and 'imported' in old_import
    assert 'Warning:' in old_import and '0.0.9' in old_import and installed in old_import
    assert 'TrapRecord attributes' in old_import
    refused, forced = stdout.split('IMPORT ')[2:4]
    assert refused.startswith('1 ') and 'cannot know the schema of 9.0.0' in refused and 'imported' not in refused
    assert forced.startswith('0 ') and 'Warning:' in forced and 'imported' in forced


#: `qdtraps archive import` three times in one interpreter: the old archive, the new one, the new one with --force.
IMPORT_OLD_AND_NEW = textwrap.dedent("""
    from click.testing import CliRunner
    from aiida_qdtraps.cli import cli
    from aiida_qdtraps.profile import ensure_profile
    ensure_profile()
    for args in ([{old!r}], [{new!r}], ['--force', {new!r}]):
        result = CliRunner().invoke(cli, ['archive', 'import', *args])
        print('IMPORT', result.exit_code, result.stdout, result.stderr)
""")


def test_archive_bad_input(run_qdtraps, tmp_path):
    not_zip = tmp_path / 'notes.aiida'
    not_zip.write_text('not an archive')
    result = run_qdtraps(['archive', 'check', str(not_zip)], tmp_path / 'unused')
    assert result.returncode == 1 and 'is not an AiiDA archive (not a zip file' in result.stderr
    empty_zip = tmp_path / 'empty.aiida'
    zipfile.ZipFile(empty_zip, 'w').close()
    result = run_qdtraps(['archive', 'check', str(empty_zip)], tmp_path / 'unused')
    assert result.returncode == 1 and 'no db.sqlite3 inside' in result.stderr
