"""``qdtraps md analyze`` and ``qdtraps md dephasing`` on small files made here with ASE (no AiiDA profile needed)."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest
from ase import Atoms, io, units
from click.testing import CliRunner

from aiida_qdtraps import profile as project_profile
from aiida_qdtraps.analysis.gap_dynamics import HBAR_EV_FS
from aiida_qdtraps.analysis.spectra import C_CM_PER_FS
from aiida_qdtraps.cli import cli

WAVENUMBER = 400.0  # cm⁻¹ of the imposed vibration
DT = 1.0  # fs between frames
N_FRAMES = 1024


@pytest.fixture(autouse=True)
def _keep_test_profile(monkeypatch):
    """In-process invocations must not point aiida at the project folder."""
    monkeypatch.setattr(project_profile, 'activate', lambda: None)


def _acetate_on_lead():
    """A bridging acetate between two Pb (one Pb 2.5 Å above each O) and two more Pb further away."""
    half = np.radians(62.5)
    o1 = np.array([-1.27 * np.sin(half), 1.27 * np.cos(half), 0.0])
    o2 = o1 * [-1, 1, 1]
    positions = np.array([[0.0, 0.0, 0.0], o1, o2, [0.0, -1.51, 0.0], o1 + [0, 2.5, 0], o2 + [0, 2.5, 0],
                          [-3.0, 3.5, 3.0], [3.0, 3.5, -3.0]])
    return ['C', 'O', 'O', 'C', 'Pb', 'Pb', 'Pb', 'Pb'], positions


@pytest.fixture
def trajectory(tmp_path):
    """extxyz with momenta, times and a dipole: every atom oscillates at 400 cm⁻¹ about the acetate geometry."""
    symbols, base = _acetate_on_lead()
    omega = 2 * np.pi * WAVENUMBER * C_CM_PER_FS
    direction = np.random.default_rng(0).normal(size=base.shape)
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    frames = []
    for k in range(N_FRAMES):
        t = k * DT
        atoms = Atoms(symbols, positions=base + 0.03 * np.sin(omega * t) * direction)
        atoms.set_velocities(0.03 * omega * np.cos(omega * t) * direction / units.fs)  # Å/fs → ASE units
        atoms.info['time'] = t * units.fs
        atoms.info['dipole'] = [0.1 * np.sin(omega * t), 0.0, 0.0]
        frames.append(atoms)
    path = tmp_path / 'md.extxyz'
    io.write(path, frames, format='extxyz')
    return path


def _read(path):
    with open(path, newline='') as handle:
        rows = list(csv.reader(handle))
    return rows[0], np.array(rows[1:], dtype=object)


def test_analyze_writes_every_table_with_its_header(trajectory, tmp_path):
    out = tmp_path / 'out'
    result = CliRunner().invoke(cli, ['md', 'analyze', str(trajectory), '--rdf', 'Pb-O', '--rdf', 'C-O', '--rmsf',
                                      '--vdos', '--ir', '--binding-modes', '-o', str(out)])
    assert result.exit_code == 0, result.output
    assert 'md.extxyz: 1024 frames of 8 atoms, 1 fs apart' in result.output
    assert 'VDOS peaks / cm-1: ' in result.output and 'IR peaks / cm-1: ' in result.output
    header, rows = _read(out / 'vdos.csv')
    assert header == ['wavenumber_cm-1', 'total', 'C', 'O', 'Pb']
    wavenumber, total = rows[:, 0].astype(float), rows[:, 1].astype(float)
    assert wavenumber[np.argmax(total)] == pytest.approx(WAVENUMBER, rel=0.02)
    header, rows = _read(out / 'rdf_Pb-O.csv')
    assert header == ['r_angstrom', 'g_r', 'n_r_per_angstrom', 'coordination']
    r, coordination = rows[:, 0].astype(float), rows[:, 3].astype(float)
    assert coordination[np.searchsorted(r, 2.8)] == pytest.approx(2 / 4)  # two Pb–O bonds of 2.5 Å, four Pb
    header, rows = _read(out / 'rmsf.csv')
    assert header == ['index', 'symbol', 'class', 'rmsf_angstrom'] and len(rows) == 8
    assert list(rows[:4, 2]) == ['ligand'] * 4 and float(rows[0, 3]) > 0
    header, rows = _read(out / 'ir.csv')
    assert header == ['wavenumber_cm-1', 'intensity']
    assert float(rows[np.argmax(rows[:, 1].astype(float)), 0]) == pytest.approx(WAVENUMBER, rel=0.02)
    header, rows = _read(out / 'binding_modes.csv')
    assert header[:2] == ['frame', 'ligand'] and header[-1] == 'mode' and len(rows) == N_FRAMES
    assert set(rows[:, -1]) == {'bridge'}
    assert 'bridge' in result.output
    for name in ('vdos', 'rdf_Pb-O', 'rdf_C-O', 'rmsf', 'ir', 'binding_modes'):
        assert (out / f'{name}.png').read_bytes()[:4] == b'\x89PNG'


def test_analyze_names_what_is_missing(tmp_path):
    symbols, positions = _acetate_on_lead()
    path = tmp_path / 'static.extxyz'
    io.write(path, [Atoms(symbols, positions=positions)] * 8, format='extxyz')
    runner = CliRunner()
    result = runner.invoke(cli, ['md', 'analyze', str(path), '--vdos', '--dt', '1', '-o', str(tmp_path / 'o')])
    assert result.exit_code != 0 and 'needs velocities' in result.output
    result = runner.invoke(cli, ['md', 'analyze', str(path), '--ir', '--dt', '1', '-o', str(tmp_path / 'o')])
    assert result.exit_code != 0 and 'needs dipole' in result.output
    result = runner.invoke(cli, ['md', 'analyze', str(path), '--rmsf', '-o', str(tmp_path / 'o')])
    assert result.exit_code != 0 and 'give dt_fs' in result.output
    result = runner.invoke(cli, ['md', 'analyze', str(path), '--dt', '1', '-o', str(tmp_path / 'o')])
    assert result.exit_code != 0 and 'choose at least one analysis' in result.output
    result = runner.invoke(cli, ['md', 'analyze', str(path), '--rdf', 'Cd-Se', '--dt', '1', '-o', str(tmp_path / 'o')])
    assert result.exit_code != 0 and "element 'Cd'" in result.output


def test_dephasing_prints_the_time_and_writes_the_function(tmp_path):
    sigma, dt = 0.1, 0.5
    t = np.arange(40_000) * dt
    gaps = 2.0 + sigma * np.sqrt(2) * np.cos(2 * np.pi * t / 5_000.0)
    path = tmp_path / 'gaps.csv'
    path.write_text('gap_ev\n' + '\n'.join(f'{g:.10f}' for g in gaps) + '\n')
    out = tmp_path / 'd.csv'
    result = CliRunner().invoke(cli, ['md', 'dephasing', str(path), '--dt', str(dt), '--max-time', '100',
                                      '-o', str(out)])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith('dephasing_time_fs='))
    assert float(line.split('=')[1]) == pytest.approx(HBAR_EV_FS / sigma, rel=0.02)
    header, rows = _read(out)
    assert header == ['time_fs', 'dephasing', 'g'] and float(rows[0, 1]) == 1.0
    assert out.with_suffix('.png').exists()


def test_dephasing_refuses_a_bad_value(tmp_path):
    path = tmp_path / 'gaps.csv'
    path.write_text('gap_ev\n2.0\n2.1\nabc\n')
    result = CliRunner().invoke(cli, ['md', 'dephasing', str(path), '--dt', '1'])
    assert result.exit_code != 0 and "line 4: 'abc' is not a number" in result.output


def test_analyze_needs_no_profile(trajectory, tmp_path, run_qdtraps):
    # A fresh configuration folder without any profile: the command still runs.
    result = run_qdtraps(['md', 'analyze', str(trajectory), '--rdf', 'Pb-O', '-o', str(tmp_path / 'o')],
                         tmp_path / 'empty-aiida')
    assert result.returncode == 0, result.stderr
    assert (tmp_path / 'o' / 'rdf_Pb-O.csv').exists()


def test_rmsf_classes_from_a_per_atom_array(tmp_path):
    symbols, positions = _acetate_on_lead()
    rng = np.random.default_rng(5)
    frames = []
    for _ in range(6):
        atoms = Atoms(symbols, positions=positions + 0.05 * rng.normal(size=positions.shape))
        atoms.arrays['qd_domain'] = np.array(['ligand'] * 4 + ['core'] * 2 + ['shell'] * 2)
        frames.append(atoms)
    path = tmp_path / 'tagged.extxyz'
    io.write(path, frames, format='extxyz')
    runner = CliRunner()
    result = runner.invoke(cli, ['md', 'analyze', str(path), '--rmsf', '--classes', 'qd_domain', '--dt', '10',
                                 '-o', str(tmp_path / 'o')])
    assert result.exit_code == 0, result.output
    header, rows = _read(tmp_path / 'o' / 'rmsf.csv')
    assert list(rows[:, 2]) == ['ligand'] * 4 + ['core'] * 2 + ['shell'] * 2
    assert re.search(r'^shell\s+2\s', result.output, re.MULTILINE)
    result = runner.invoke(cli, ['md', 'analyze', str(path), '--rmsf', '--classes', 'qd_role', '--dt', '10',
                                 '-o', str(tmp_path / 'o')])
    assert result.exit_code != 0 and "--classes qd_role: the first frame has no such per-atom array (it has " \
        "['qd_domain'])" in result.output


@pytest.fixture
def md_run(aiida_profile):
    from aiida_qdtraps.cli.cmd_md import md

    def invoke(*args):
        return CliRunner().invoke(md, ['run', *map(str, args)])

    return invoke


def test_md_run_refuses_bad_input_by_name(md_run, tiny_qd, recorded_cp2k_code):
    from aiida import orm

    assert "no node with pk 987654" in md_run(987654).output
    label = orm.Dict({'a': 1}).store()
    assert f'node {label.pk} is a Dict, not a StructureData' in md_run(label.pk).output
    assert '--engine mlff needs --model PK' in md_run(tiny_qd.pk, '--engine', 'mlff').output
    assert 'an MLFF MD has none' in md_run(tiny_qd.pk, '--engine', 'mlff', '--protocol', 'fast').output
    model = orm.SinglefileData.from_string('not a model', 'model.pth').store()
    result = md_run(tiny_qd.pk, '--engine', 'mlff', '--model', model.pk, '--code', recorded_cp2k_code.full_label)
    assert f'model {model.pk} has no type_map attribute' in result.output
    model = orm.SinglefileData.from_string('not a model', 'model.pth')
    model.base.attributes.set_many({'type_map': sorted(tiny_qd.get_kind_names()), 'kind': 'energy'})
    model.store()
    result = md_run(tiny_qd.pk, '--engine', 'mlff', '--model', model.pk, '--dipole-model', model.pk, '--code',
                    recorded_cp2k_code.full_label)
    assert result.exit_code != 0
    assert f"dipole_model<{model.pk}> is a DeePMD 'energy' model, not a dipole model" in result.output
    assert '--dipole-model is for --engine mlff' in md_run(tiny_qd.pk, '--dipole-model', model.pk).output
    result = md_run(tiny_qd.pk, '--code', recorded_cp2k_code.full_label, '--temperature', '-5')
    assert result.exit_code != 0 and 'md.temperature must be in (0, 5000] K, got -5.0' in result.output
    assert "no code 'nope@localhost'" in md_run(tiny_qd.pk, '--code', 'nope@localhost').output


def test_md_run_submits_the_protocol_to_the_daemon(md_run, tiny_qd, recorded_cp2k_code, monkeypatch):
    """``--daemon`` submits the builder of the protocol with the overrides (submit replaced: no daemon here)."""
    import aiida.engine

    submitted = []

    class Submitted:
        pk = 4242

    monkeypatch.setattr(aiida.engine, 'submit', lambda builder: submitted.append(builder) or Submitted())
    result = md_run(tiny_qd.pk, '--code', recorded_cp2k_code.full_label, '--protocol', 'fast', '--temperature', 250,
                    '--time', 0.5, '--daemon')
    assert result.exit_code == 0, result.output
    assert 'submitted QdMdWorkChain<4242>' in result.output
    md = submitted[0].md.get_dict()
    assert md['temperature'] == 250.0 and md['nve_fs'] == 500.0 and md['heatup_fs'] == 100.0


def _energy_model(path, type_map):
    from aiida import orm

    model = orm.SinglefileData(path)
    model.base.attributes.set_many({'type_map': type_map, 'kind': 'energy'})
    return model.store()


def test_md_run_mlff_ensemble_options_refuse_bad_input(md_run, tiny_qd, dp_python, data_dir):
    models = [_energy_model(data_dir / 'mlff' / 'in4pf9' / 'model.pth', ['F', 'In', 'P']),
              _energy_model(data_dir / 'deepmd' / 'model_in4pf9_fast.pth', ['F', 'In', 'P'])]
    base = [tiny_qd.pk, '--engine', 'mlff', '--model', models[0].pk, '--model', models[1].pk,
            '--code', dp_python.full_label]
    result = md_run(*base, '--driver', '3')
    assert result.exit_code != 0 and "'3' is neither 'mean' nor a member number 1..2" in result.output
    result = md_run(*base, '--freeze', 'Cd,In')
    assert result.exit_code != 0 and "'Cd,In': the QD has no 'Cd' (it has ['F', 'In', 'P']" in result.output
    result = md_run(tiny_qd.pk, '--driver', 'mean', '--freeze', 'In')
    assert result.exit_code != 0 and '--driver, --freeze: options of --engine mlff' in result.output
    other = _energy_model(data_dir / 'deepmd' / 'model_in4pf9_fast.pth', ['In', 'F', 'P'])
    result = md_run(tiny_qd.pk, '--engine', 'mlff', '--model', models[0].pk, '--model', other.pk)
    assert result.exit_code != 0 and 'the models have different type maps' in result.output


def test_md_run_mlff_ensemble_mean_with_a_frozen_element(md_run, tiny_qd, dp_python, data_dir):
    """Two models driven by their mean, In held fixed: a real MD whose In atoms do not move, whose energies and forces
    are the mean of the models'; a deviation threshold below the ensemble's spread stops the MD with an error naming
    it."""
    from aiida import orm

    models = [_energy_model(data_dir / 'mlff' / 'in4pf9' / 'model.pth', ['F', 'In', 'P']),
              _energy_model(data_dir / 'deepmd' / 'model_in4pf9_fast.pth', ['F', 'In', 'P'])]
    base = [tiny_qd.pk, '--engine', 'mlff', '--model', models[0].pk, '--model', models[1].pk,
            '--code', dp_python.full_label, '--time', '0.05', '--save-every', '10', '--temperature', '100']
    result = md_run(*base, '--driver', 'mean', '--freeze', 'In')
    assert result.exit_code == 0, result.output
    assert '2 models, driven by their mean; 4 frozen atoms (In)' in result.output
    assert re.search(r'ensemble force deviation: median \d+\.\d+, largest \d+\.\d+ eV/Å', result.output)
    pk = int(re.search(r'TrajectoryData<(\d+)>', result.output).group(1))
    trajectory = orm.load_node(pk)
    indium = [i for i, site in enumerate(tiny_qd.sites) if site.kind_name == 'In']
    positions = trajectory.get_positions()
    assert len(positions) == 6
    assert np.allclose(positions[:, indium], positions[0, indium])
    assert not np.allclose(positions[-1], positions[0])
    assert trajectory.creator.inputs.parameters['driver'] == 'mean'
    # the trajectory's energies and forces are the mean of the two models', frame by frame, and the deviation comes
    # from the same evaluations
    from deepmd.infer import DeepPot

    types = [['F', 'In', 'P'].index(site.kind_name) for site in tiny_qd.sites]
    energies, forces = [], []
    for path in (data_dir / 'mlff' / 'in4pf9' / 'model.pth', data_dir / 'deepmd' / 'model_in4pf9_fast.pth'):
        e, f, _ = DeepPot(str(path)).eval(positions.reshape(len(positions), -1), None, types)
        energies.append(np.ravel(e)), forces.append(np.reshape(f, positions.shape))
    assert np.allclose(trajectory.get_array('energies'), np.mean(energies, axis=0), atol=1e-6)
    assert np.allclose(trajectory.get_array('forces'), np.mean(forces, axis=0), atol=1e-6)
    assert abs(energies[0][0] - energies[1][0]) > 1e-3  # two different models: the mean is neither
    spread = np.linalg.norm(np.std(forces, axis=0), axis=-1).max(axis=-1)
    assert np.allclose(trajectory.get_array('max_devi_f'), spread, atol=1e-6)

    result = md_run(*base, '--stop-devi-f', '0.0001')
    assert result.exit_code != 0
    assert re.search(r'MlffMdCalculation<\d+> stopped at step 0: ensemble force deviation \d+\.\d+ eV/Å > '
                     r'--stop-devi-f', result.output), result.output


def test_md_run_mlff_continue_then_join(md_run, tiny_qd, dp_python, data_dir):
    """A compressed NVE MD continued by a second run (`--continue`), the pieces joined by `qdtraps md join`."""
    from aiida import orm

    from aiida_qdtraps.cli.cmd_md import md

    def join(*pks):
        return CliRunner().invoke(md, ['join', *map(str, pks)])

    model = _energy_model(data_dir / 'mlff' / 'in4pf9' / 'model.pth', ['F', 'In', 'P'])
    base = [tiny_qd.pk, '--engine', 'mlff', '--model', model.pk, '--code', dp_python.full_label, '--time', '0.02',
            '--save-every', '5', '--temperature', '100', '--ensemble', 'nve', '--compress']
    first = md_run(*base)
    assert first.exit_code == 0, first.output
    assert re.search(r'NVE: conserved-energy drift [+-]\d+\.\d{3} meV/atom/ps', first.output)
    first_pk = int(re.search(r'TrajectoryData<(\d+)>', first.output).group(1))
    second = md_run(*base, '--continue', first_pk)
    assert second.exit_code == 0, second.output
    assert f'continues TrajectoryData<{first_pk}> from its step 20 (20.0 fs)' in second.output
    second_pk = int(re.search(r'TrajectoryData<(\d+)> \(', second.output).group(1))
    assert orm.load_node(second_pk).get_stepids().tolist() == [25, 30, 35, 40]
    assert orm.load_node(second_pk).creator.outputs.output_parameters['compressed']
    joined = join(first_pk, second_pk)
    assert joined.exit_code == 0, joined.output
    assert re.search(r'TrajectoryData<\d+>: 9 frames from 2 pieces, 0\.0-40\.0 fs', joined.output), joined.output
    refused = join(second_pk, first_pk)
    assert refused.exit_code != 0 and 'does not continue it' in refused.output
    wrong = md_run(*base, '--continue', tiny_qd.pk)
    assert wrong.exit_code != 0 and 'TrajectoryData' in wrong.output

    # through MlffMdChainWorkChain (one job here: its continuation and join are tested in test_deepmd.py)
    chain = md_run(*base[:-1], '--steps-per-job', '20', '--job-hours', '1')
    assert chain.exit_code == 0, chain.output
    assert 'as a chain of jobs of at most 20 steps, 1.0 h each' in chain.output
    assert re.search(r'MlffMdChainWorkChain<\d+>: TrajectoryData<\d+> \(5 frames, 20\.0 fs\)', chain.output), \
        chain.output
    assert re.search(r'NVE: conserved-energy drift [+-]\d+\.\d{3} meV/atom/ps', chain.output)
    refused = md_run(*base[:-1], '--steps-per-job', '7')
    assert refused.exit_code != 0 and 'steps_per_job 7 must be a positive multiple of save_interval 5' in refused.output
