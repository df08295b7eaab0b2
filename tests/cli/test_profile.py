"""The project-local profile: location rules, and idempotent creation of profile, computer and codes."""

from __future__ import annotations

import json
import pathlib

import pytest

from aiida_qdtraps import profile as project_profile

SETUP_AND_DESCRIBE = """
    import json, os
    from aiida_qdtraps import profile

    runs = [[(step.name, step.status) for step in profile.setup_project()] for _ in range(2)]

    from aiida import orm
    from aiida.manage import get_manager
    from aiida.manage.configuration import get_config

    loaded = get_manager().get_profile()
    computer = orm.load_computer('localhost')
    codes = {}
    for label in profile.CODES:
        code = orm.load_code(label)
        codes[label] = {
            'executable': str(code.filepath_executable),
            'plugin': code.default_calc_job_plugin,
            'prepend_text': code.prepend_text,
            'with_mpi': code.with_mpi,
        }
    print(json.dumps({
        'runs': runs,
        'config_dir': get_config().dirpath,
        'default_profile': get_config().default_profile_name,
        'env_aiida_path': os.environ['AIIDA_PATH'],
        'profile': loaded.name,
        'storage_backend': loaded.storage_backend,
        'storage_path': loaded.storage_config['filepath'],
        'broker': loaded.process_control_backend,
        'computer': {
            'transport': computer.transport_type,
            'scheduler': computer.scheduler_type,
            'workdir': computer.get_workdir(),
            'mpiprocs': computer.get_default_mpiprocs_per_machine(),
            'configured': computer.is_configured,
        },
        'codes': codes,
    }))
"""

SETUP_AGAIN = """
    import json
    from aiida_qdtraps import profile
    print(json.dumps([(step.name, step.status) for step in profile.setup_project()]))
"""


@pytest.fixture(scope='module')
def created(tmp_path_factory, run_python):
    """A project profile set up (twice) in a temporary AIIDA_PATH, described as a dict."""
    aiida_path = tmp_path_factory.mktemp('project') / '.aiida'
    return aiida_path, json.loads(run_python(SETUP_AND_DESCRIBE, aiida_path))


def test_project_root_is_parent_of_package():
    root = project_profile.project_root()
    assert (root / 'aiida_qdtraps' / 'profile.py').is_file()
    assert (root / 'pyproject.toml').is_file()


def test_aiida_path_default_and_override(monkeypatch, tmp_path):
    monkeypatch.delenv('QDTRAPS_AIIDA_PATH', raising=False)
    assert project_profile.aiida_path() == project_profile.project_root() / '.aiida'

    monkeypatch.setenv('QDTRAPS_AIIDA_PATH', str(tmp_path / '.aiida'))
    assert project_profile.aiida_path() == tmp_path / '.aiida'

    # same rule as aiida's AIIDA_PATH: a folder that is not called `.aiida` holds the `.aiida` folder
    monkeypatch.setenv('QDTRAPS_AIIDA_PATH', str(tmp_path / 'elsewhere'))
    assert project_profile.aiida_path() == tmp_path / 'elsewhere' / '.aiida'


def test_setup_creates_everything_then_skips(created):
    _, described = created
    first, second = described['runs']
    assert [name for name, _ in first] == [
        'profile qdtraps',
        'computer localhost',
        *(f'code {label}' for label in project_profile.CODES),
        'pseudos qdtraps-gth-pbe-upf',
        'caching',
    ]
    assert first[2:5] == [['code cp2k@localhost', 'created'], ['code pw@localhost', 'created'],
                          ['code pp@localhost', 'created']]
    assert {status for _, status in first} == {'created'}
    assert {status for _, status in second} == {'exists'}


def test_setup_is_idempotent_in_a_new_process(created, run_python):
    aiida_path, _ = created
    steps = json.loads(run_python(SETUP_AGAIN, aiida_path))
    assert len(steps) == len(project_profile.CODES) + 4
    assert {status for _, status in steps} == {'exists'}


def test_profile_is_embedded_and_project_local(created):
    aiida_path, described = created
    assert pathlib.Path(described['config_dir']) == aiida_path
    assert described['env_aiida_path'] == str(aiida_path)
    assert described['profile'] == described['default_profile'] == 'qdtraps'
    assert described['storage_backend'] == 'core.sqlite_dos'
    assert pathlib.Path(described['storage_path']).is_relative_to(aiida_path)
    assert described['broker'] == 'core.zeromq'


def test_localhost_computer(created):
    aiida_path, described = created
    assert described['computer'] == {
        'transport': 'core.local',
        'scheduler': 'core.direct',
        'workdir': str(aiida_path / 'scratch'),
        'mpiprocs': 1,
        'configured': True,
    }


def test_codes(created):
    _, described = created
    codes = described['codes']
    assert {'cp2k@localhost', 'pw@localhost', 'pp@localhost', 'baderkit@localhost'} <= set(codes)

    cp2k = codes['cp2k@localhost']
    assert cp2k['plugin'] == 'cp2k'
    assert pathlib.Path(cp2k['executable']).name == 'cp2k.psmp'
    assert 'OMP_NUM_THREADS' in cp2k['prepend_text']
    assert cp2k['with_mpi'] is False

    pw = codes['pw@localhost']
    assert pw['plugin'] == 'quantumespresso.pw'
    assert pathlib.Path(pw['executable']).name == 'pw.x'
    for variable in ('OMPI_ALLOW_RUN_AS_ROOT=1', 'OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1', 'OMP_NUM_THREADS=1'):
        assert variable in pw['prepend_text']
    pp = codes['pp@localhost']
    assert pp['plugin'] == 'quantumespresso.pp'
    assert pathlib.Path(pp['executable']).name == 'pp.x'
    assert pp['prepend_text'] == pw['prepend_text']

    bader = codes['baderkit@localhost']
    assert bader['plugin'] == 'core.shell'
    assert pathlib.Path(bader['executable']).name == 'baderkit'


def test_load_project_profile_after_aiida_was_imported(created, run_python, tmp_path):
    """aiida resolves AIIDA_PATH on import; loading the project profile afterwards must still use the project folder."""
    aiida_path, _ = created
    source = """
        import json
        import aiida
        from aiida.manage.configuration.settings import AiiDAConfigDir
        before = str(AiiDAConfigDir.get())

        from aiida_qdtraps.profile import load_project_profile
        profile = load_project_profile()
        again = load_project_profile()

        from aiida import orm
        from aiida.manage.configuration import get_config
        print(json.dumps({
            'before': before,
            'after': str(AiiDAConfigDir.get()),
            'config_dir': get_config().dirpath,
            'profile': profile.name,
            'same': profile is again,
            'codes': sorted(code.full_label for code in orm.QueryBuilder().append(orm.InstalledCode).all(flat=True)),
        }))
    """
    other = tmp_path / 'other' / '.aiida'
    other.mkdir(parents=True)
    described = json.loads(run_python(source, aiida_path, env={'AIIDA_PATH': str(other)}))
    assert described['before'] == str(other)
    assert described['after'] == described['config_dir'] == str(aiida_path)
    assert described['profile'] == 'qdtraps'
    assert described['same']
    assert described['codes'] == sorted(project_profile.CODES)


def test_setup_repairs_a_changed_code_and_workdir(tmp_path, run_python):
    """A code whose specification changed is kept (hidden, relabelled) and replaced; a wrong workdir is reset."""
    source = """
        import dataclasses, json
        from aiida_qdtraps import profile

        profile.setup_project()
        from aiida import orm
        old = orm.load_code('cp2k@localhost')
        orm.load_computer('localhost').set_workdir('/tmp/somewhere-else')

        specs = profile.code_specs()
        profile.code_specs = lambda: tuple(
            dataclasses.replace(spec, prepend_text='export OMP_NUM_THREADS=2') if spec.label == 'cp2k' else spec
            for spec in specs
        )
        steps = {step.name: step.status for step in profile.setup_project()}
        new = orm.load_code('cp2k@localhost')
        old = orm.load_node(old.pk)
        print(json.dumps({
            'steps': steps,
            'new_prepend': new.prepend_text,
            'new_is_new': new.pk != old.pk,
            'old_label': old.label,
            'old_pk': old.pk,
            'old_hidden': old.is_hidden,
            'workdir': orm.load_computer('localhost').get_workdir(),
        }))
    """
    aiida_path = tmp_path / '.aiida'
    described = json.loads(run_python(source, aiida_path))
    assert described['steps'] == {
        'profile qdtraps': 'exists',
        'computer localhost': 'updated',
        **{f'code {label}': 'exists' for label in project_profile.CODES},
        'code cp2k@localhost': 'updated',
        'pseudos qdtraps-gth-pbe-upf': 'exists',
        'caching': 'exists',
    }
    assert described['new_prepend'] == 'export OMP_NUM_THREADS=2'
    assert described['new_is_new']
    assert described['old_label'] == f'cp2k-old-{described["old_pk"]}'
    assert described['old_hidden']
    assert described['workdir'] == str(aiida_path / 'scratch')
