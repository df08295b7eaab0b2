"""``qdtraps charge-flow STRUCTURE BADER_FILE`` on plain files (the recorded In4PF9 Bader outputs).

The command needs no AiiDA profile, so it is invoked in-process (directly, not through the ``qdtraps`` group whose
callback points aiida at the project profile).
"""

from __future__ import annotations

import csv
import gzip
import io

import numpy as np
import pytest
from ase.io import write
from ase.io.cube import read_cube
from click.testing import CliRunner

from aiida_qdtraps.cli.cmd_charge_flow import (
    charge_flow,
    parse_valence,
    valence_from_cp2k_input,
)


@pytest.fixture
def structure_file(data_dir, tmp_path):
    """The atoms of the recorded density, in the order of the Bader files, as an xyz file."""
    text = gzip.decompress((data_dir / 'bader' / 'in4pf9_pbe0_density.cube.gz').read_bytes()).decode()
    atoms = read_cube(io.StringIO(text), read_data=False)['atoms']
    atoms.pbc = False
    path = tmp_path / 'qd.xyz'
    write(path, atoms)
    return path


def run(args):
    result = CliRunner().invoke(charge_flow, [str(a) for a in args])
    result.returncode = result.exit_code
    return result


def test_charge_flow_csv_and_plot(structure_file, data_dir, tmp_path):
    out_csv, out_png = tmp_path / 'flow.csv', tmp_path / 'map.png'
    result = run([str(structure_file), str(data_dir / 'bader' / 'ACF.dat'), '--valence', 'In=13',
               '--valence', 'P=5', '--valence', 'F=7', '--csv', str(out_csv), '--plot', str(out_png),
               '--plane', '1', '1', '0'])
    assert result.returncode == 0, result.output
    assert 'difference +0.0374 e' in result.stdout
    rows = list(csv.DictReader(out_csv.open()))
    assert list(rows[0]) == ['index', 'element', 'dq', 'vx', 'vy', 'vz', 'magnitude']
    assert len(rows) == 14
    dq = {row['element']: [] for row in rows}
    for row in rows:
        dq[row['element']].append(float(row['dq']))
        vector = np.array([float(row[k]) for k in ('vx', 'vy', 'vz')])
        assert np.linalg.norm(vector) == pytest.approx(float(row['magnitude']))
    assert min(dq['In']) > 0 > max(dq['F'])
    assert out_png.read_bytes()[:4] == b'\x89PNG'


def test_valence_from_cp2k_input_and_refusals(structure_file, data_dir, tmp_path):
    cp2k_input = data_dir / 'cp2k' / 'pbe0_success' / 'aiida.inp'
    assert valence_from_cp2k_input(cp2k_input.read_text()) == {'In': 13, 'P': 5, 'F': 7}
    assert parse_valence(('In=13', 'F = 7')) == {'In': 13.0, 'F': 7.0}
    bader_file = str(data_dir / 'bader' / 'atom_summary.tsv')
    result = run([str(structure_file), bader_file, '--cp2k-input', str(cp2k_input)])
    assert result.returncode == 0, result.output
    result = run([str(structure_file), bader_file, '--valence', 'In=13', '--valence', 'P=5'])
    assert result.returncode != 0 and "['F']" in result.output
    result = run([str(structure_file), bader_file, '--valence', 'In=13', '--valence', 'P=5',
               '--valence', 'F=5'])
    assert result.returncode != 0 and 'electrons not conserved' in result.output
