"""``qdtraps interpolate`` on plain XYZ files: the P 3p levels of PLi4+ from an ideal tetrahedron to a see-saw.

Alexander et al. (structural hole traps in III-V QDs): along a see-saw distortion of PLi4+ the HOMO rises and
splits from HOMO-1/HOMO-2. Real PBE0/def2-SVP single points, 5 frames, no AiiDA profile.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from aiida_qdtraps.analysis.cutout import PLI4_DISTANCE


def seesaw(a_deg: float, b_deg: float, d: float = PLI4_DISTANCE) -> Atoms:
    """PLi4+ with Li1-P-Li2 = a (xz plane) and Li3-P-Li4 = b (yz plane); a = b = 109.47 is the ideal tetrahedron."""
    a, b = np.radians(a_deg) / 2, np.radians(b_deg) / 2
    v = np.array([(np.sin(a), 0, np.cos(a)), (-np.sin(a), 0, np.cos(a)), (0, np.sin(b), -np.cos(b)),
                  (0, -np.sin(b), -np.cos(b))])
    return Atoms('PLi4', positions=np.vstack([np.zeros(3), d * v]))


@pytest.mark.slow  # 70 s wall on 2 shared cores (load 8), 18 s of CPU
def test_see_saw_raises_and_splits_the_homo(run_qdtraps, tmp_path):
    tetrahedral = np.degrees(np.arccos(-1 / 3))
    seesaw(tetrahedral, tetrahedral).write(tmp_path / 'td.xyz')
    seesaw(160.0, 120.0).write(tmp_path / 'seesaw.xyz')
    result = run_qdtraps(['interpolate', str(tmp_path / 'td.xyz'), str(tmp_path / 'seesaw.xyz'), '--frames', '5',
                          '--charge', '1', '-o', str(tmp_path / 'path.csv')], tmp_path / 'no-profile', timeout=600)
    assert result.returncode == 0, result.stderr
    assert len([line for line in result.stdout.splitlines() if line.split() and line.split()[0].isdigit()]) == 5
    assert not (tmp_path / 'no-profile').exists() or not list((tmp_path / 'no-profile').rglob('*.sqlite*'))
    lines = (tmp_path / 'path.csv').read_text().splitlines()
    assert lines[0] == 'frame,homo_ev,homo_1_ev,homo_2_ev'
    data = np.array([[float(x) for x in line.split(',')] for line in lines[1:]])
    assert data[:, 0].tolist() == [0, 1, 2, 3, 4]
    homo, homo_1, homo_2 = data[:, 1], data[:, 2], data[:, 3]
    assert homo[0] - homo_2[0] < 1e-3  # Td: the three P 3p levels are degenerate (T2)
    splitting = homo - (homo_1 + homo_2) / 2
    assert np.all(np.diff(homo) > 0) and np.all(np.diff(splitting) > 0)
    assert homo[-1] - homo[0] > 0.2  # the trap level rises by tenths of an eV
    assert splitting[-1] > 0.5
    assert np.all(np.diff(homo_2) < 0)  # the level along the closing angle is stabilised


def test_bad_frame_count_and_charge_are_refused(run_qdtraps, tmp_path):
    seesaw(110.0, 110.0).write(tmp_path / 'a.xyz')
    seesaw(120.0, 110.0).write(tmp_path / 'b.xyz')
    result = run_qdtraps(['interpolate', str(tmp_path / 'a.xyz'), str(tmp_path / 'b.xyz'), '--frames', '1'],
                         tmp_path / 'no-profile')
    assert result.returncode != 0 and 'n_frames=1' in result.stderr
    result = run_qdtraps(['interpolate', str(tmp_path / 'a.xyz'), str(tmp_path / 'b.xyz'), '--frames', '3',
                          '--charge', '0'], tmp_path / 'no-profile')
    assert result.returncode != 0 and 'charge 0 and multiplicity 1 are impossible' in result.stderr


def test_help_lists_the_options(run_qdtraps, tmp_path):
    result = run_qdtraps(['interpolate', '--help'], tmp_path)
    assert result.returncode == 0 and '--frames' in result.stdout and '--basis' in result.stdout


def test_cutout_help(run_qdtraps, tmp_path):
    result = run_qdtraps(['cutout', '--help'], tmp_path)
    assert result.returncode == 0 and '--atom' in result.stdout and '--frames' in result.stdout


def test_cutout_refuses_a_node_that_is_no_labelling(aiida_profile_clean):
    import click
    from aiida import orm

    from aiida_qdtraps.cli.cmd_cutout import cutout_inputs

    node = orm.Dict({'a': 1}).store()
    with pytest.raises(click.ClickException, match=f'node {node.pk} is a Dict, not a trap labelling'):
        cutout_inputs(node, None, 20, None)
