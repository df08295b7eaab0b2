"""``qdtraps.bader`` parser on recorded baderkit / ACF.dat outputs of the In4PF9 PBE0 density."""

from __future__ import annotations

import gzip
import io
import shutil

import numpy as np
import pytest
from aiida import orm
from aiida.plugins import ParserFactory

from aiida_qdtraps.analysis.bader import cube_to_chgcar


@pytest.fixture
def shell_job(aiida_localhost, aiida_code_installed, data_dir, tmp_path, process_nodes):
    """A ShellJob node whose input ``nodes.chgcar`` is the CHGCAR of the recorded density."""
    code = aiida_code_installed(label='bader-test', filepath_executable=shutil.which('baderkit') or '/bin/true',
                                default_calc_job_plugin='core.shell')
    text = gzip.decompress((data_dir / 'bader' / 'in4pf9_pbe0_density.cube.gz').read_bytes()).decode()
    cube_to_chgcar(io.StringIO(text), tmp_path / 'CHGCAR')
    chgcar = orm.SinglefileData(tmp_path / 'CHGCAR')
    return process_nodes.calcjob(aiida_localhost, 'aiida.calculations:core.shell', code, {'nodes__chgcar': chgcar},
                                 {'resources': {'num_machines': 1, 'tot_num_mpiprocs': 1}}).store()


def retrieved(tmp_path, files: dict, status: int = 0):
    folder = tmp_path / 'retrieved'
    folder.mkdir()
    (folder / 'stdout').write_text('')
    (folder / 'status').write_text(f'{status}\n')
    for name, source in files.items():
        shutil.copy(source, folder / name)
    return folder


def parse(node, folder):
    parser = ParserFactory('qdtraps.bader')(node)
    exit_code = parser.parse(retrieved_temporary_folder=str(folder))
    return exit_code, parser.outputs


def test_baderkit_output(shell_job, data_dir, tmp_path):
    exit_code, outputs = parse(shell_job, retrieved(tmp_path, {'atom_summary.tsv': data_dir / 'bader' /
                                                                'atom_summary.tsv'}))
    assert exit_code.status == 0
    result = outputs['bader_populations']
    assert result.base.attributes.get('program') == 'baderkit'
    assert result.get_array('populations').sum() == pytest.approx(119.9507, abs=1e-3)
    assert result.base.attributes.get('vacuum_charge') == pytest.approx(0.08672)
    # fractional → Å with the CHGCAR lattice: the same Cartesian positions as the ACF.dat written for that grid
    acf = np.loadtxt(data_dir / 'bader' / 'ACF.dat', skiprows=2, max_rows=14)[:, 1:4]
    np.testing.assert_allclose(result.get_array('positions'), acf, atol=2e-3)
    assert 'atom_summary_tsv' not in outputs or isinstance(outputs['atom_summary_tsv'], orm.SinglefileData)


def test_henkelman_acf(shell_job, data_dir, tmp_path):
    exit_code, outputs = parse(shell_job, retrieved(tmp_path, {'ACF.dat': data_dir / 'bader' / 'ACF.dat'}))
    assert exit_code.status == 0
    result = outputs['bader_populations']
    assert result.base.attributes.get('program') == 'bader'
    assert result.get_array('volumes').shape == (14,)
    assert result.base.attributes.get('electrons_total') == pytest.approx(120.0374, abs=1e-3)


def test_missing_output_and_failed_command(shell_job, tmp_path):
    exit_code, _ = parse(shell_job, retrieved(tmp_path, {}))
    assert exit_code.status == shell_job.process_class.exit_codes.ERROR_OUTPUT_FILEPATHS_MISSING.status
    (tmp_path / 'retrieved' / 'status').write_text('1\n')
    exit_code, _ = parse(shell_job, tmp_path / 'retrieved')
    assert exit_code.status == shell_job.process_class.exit_codes.ERROR_COMMAND_FAILED.status
