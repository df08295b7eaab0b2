"""benchmarks/protocol_soundness.py ``--keep DIR --resume``: a point finished in ``DIR`` with this very input is read,
not run again; an unfinished one runs again; another input in ``DIR`` is refused by name. CP2K is replaced by a
stand-in that writes a recorded output (the real points run in the benchmark itself, docs/protocols.md)."""

from __future__ import annotations

import pathlib
import subprocess

import pytest
from ase.io import read

ROOT = pathlib.Path(__file__).resolve().parents[2]
RECORDED = ROOT / 'tests' / 'data' / 'cp2k' / 'soundness' / 'in4pf9_pbe0_fast' / 'baseline.out'
PARAMETERS = {'GLOBAL': {'RUN_TYPE': 'ENERGY'},
              'FORCE_EVAL': {'METHOD': 'Quickstep', 'DFT': {'MGRID': {'CUTOFF': 300}},
                             'SUBSYS': {'CELL': {'PERIODIC': 'NONE'}}}}


@pytest.fixture
def runs(monkeypatch, load_script):
    """The benchmark module with a stand-in CP2K that writes :data:`RECORDED`; returns (module, list of run folders)."""
    module = load_script('benchmarks/protocol_soundness.py')
    folders = []

    def fake_cp2k(command, cwd, stdout, **kwargs):
        folders.append(pathlib.Path(cwd))
        stdout.write(RECORDED.read_text())
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(module.subprocess, 'run', fake_cp2k)
    return module, folders


@pytest.fixture
def atoms(data_dir):
    """The relaxed In4PF9 in a 14 Å box."""
    atoms = read(data_dir / 'cp2k' / 'relaxed' / 'in4pf9_fast.xyz')
    atoms.set_cell([14.0] * 3)
    return atoms


def test_resume_reads_a_finished_point_and_runs_an_unfinished_one(runs, tmp_path, atoms):
    module, folders = runs
    folder = tmp_path / 'baseline'
    first, reused = module.run_point(PARAMETERS, atoms, folder, 'cp2k.psmp')
    assert folders == [folder] and first.homo is not None and first.seconds is not None and not reused

    again, reused = module.run_point(PARAMETERS, atoms, folder, 'cp2k.psmp', resume=True)
    assert folders == [folder], 'a finished point ran again'
    assert (again.energy, again.homo, again.lumo) == (first.energy, first.homo, first.lumo)
    assert again.seconds == pytest.approx(193.621, abs=0.01)  # CP2K's own timer in the recorded output
    assert reused

    (folder / 'aiida.out').write_text(RECORDED.read_text()[:20000])  # stopped before CP2K finished
    _, reused = module.run_point(PARAMETERS, atoms, folder, 'cp2k.psmp', resume=True)
    assert folders == [folder, folder] and not reused

    with pytest.raises(FileExistsError, match='holds another input than this run would write'):
        module.run_point({**PARAMETERS, 'GLOBAL': {'RUN_TYPE': 'ENERGY_FORCE'}}, atoms, folder, 'cp2k.psmp',
                         resume=True)
    moved = atoms.copy()
    moved.positions += 0.01
    with pytest.raises(FileExistsError, match=str(folder)):
        module.run_point(PARAMETERS, moved, folder, 'cp2k.psmp', resume=True)
    assert folders == [folder, folder]


def test_resume_needs_keep(capsys, load_script):
    module = load_script('benchmarks/protocol_soundness.py')
    with pytest.raises(SystemExit):
        module.main(['--structure', 'qd.xyz', '--protocol', 'fast', '--resume'])
    assert '--resume needs --keep DIR' in capsys.readouterr().err


def test_a_kept_folder_without_resume_is_refused(runs, tmp_path, atoms):
    module, folders = runs
    module.run_point(PARAMETERS, atoms, tmp_path / 'baseline', 'cp2k.psmp')
    with pytest.raises(FileExistsError, match='or --resume to read the points'):
        module.run_point(PARAMETERS, atoms, tmp_path / 'baseline', 'cp2k.psmp')
    assert len(folders) == 1
