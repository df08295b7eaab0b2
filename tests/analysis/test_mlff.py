"""Pure MLFF kernels on arrays: model deviation, selection by trust levels, CP2K labels and units, parity, splits."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from aiida_qdtraps.analysis import mlff

CP2K_FORCES = """
 ATOMIC FORCES in [a.u.]

 # Atom   Kind   Element          X              Y              Z
      1      1      In         -0.01977165    -0.01472385    -0.03656716
      2      2      P           0.02000000     0.00000000     0.00100000
 SUM OF ATOMIC FORCES           0.00022835    -0.01472385    -0.03556716     0.03833000
"""


def test_model_deviation_matches_definition():
    """max/min/avg over atoms of |std over models of F_i|, and std of E/N, for a hand-built ensemble."""
    forces = np.zeros((2, 1, 3, 3))
    forces[1, 0, 0] = [0.2, 0.0, 0.0]  # atom 0: models differ by 0.2 eV/Å along x -> std 0.1
    forces[1, 0, 1] = [0.0, 0.06, 0.08]  # atom 1: |diff| 0.1 -> std norm 0.05
    devi = mlff.model_deviation(forces, energies=np.array([[0.0], [0.6]]))
    assert devi['max_devi_f'] == pytest.approx([0.1])
    assert devi['min_devi_f'] == pytest.approx([0.0])
    assert devi['avg_devi_f'] == pytest.approx([0.05])
    assert devi['devi_e'] == pytest.approx([0.1])  # std of (0, 0.2) eV/atom


def test_model_deviation_rejects_a_single_model():
    with pytest.raises(ValueError, match='n_models >= 2'):
        mlff.model_deviation(np.zeros((1, 4, 3, 3)))


def test_selection_by_trust_levels_with_cap_and_stride():
    devi = np.array([0.01, 0.06, 0.2, 0.07, 0.08, 0.5, 0.09, 0.04])
    selection = mlff.select_by_deviation(devi, trust_lo=0.05, trust_hi=0.15, max_candidates=10)
    assert selection.accurate.tolist() == [0, 7]
    assert selection.candidates.tolist() == [1, 3, 4, 6]
    assert selection.failed.tolist() == [2, 5]
    assert selection.selected.tolist() == [1, 3, 4, 6]
    assert selection.fractions() == {'accurate': 0.25, 'candidate': 0.5, 'failed': 0.25}

    strided = mlff.select_by_deviation(devi, 0.05, 0.15, max_candidates=10, stride=2)
    assert strided.selected.tolist() == [1, 4]
    capped = mlff.select_by_deviation(devi, 0.05, 0.15, max_candidates=3, seed=1)
    assert len(capped.selected) == 3 and set(capped.selected) <= {1, 3, 4, 6}
    assert capped.selected.tolist() == sorted(capped.selected.tolist())


def test_selection_shares_the_cap_between_groups():
    """With groups (MD / relaxation frames) the cap goes round-robin over the groups: 90 MD candidates and 10
    relaxation candidates give 3 + 3 of a cap of 6 (uniform choice would give about 0.6 relaxation frames); a group
    with fewer candidates than its share gives the rest to the others; one group alone is the uniform choice."""
    devi = np.full(100, 0.1)
    groups = np.array(['md'] * 90 + ['relax'] * 10)
    shared = mlff.select_by_deviation(devi, 0.05, 0.15, max_candidates=6, seed=4, groups=groups)
    assert len(shared.selected) == 6 and (shared.selected >= 90).sum() == 3
    assert shared.selected.tolist() == sorted(shared.selected.tolist())
    few = mlff.select_by_deviation(devi, 0.05, 0.15, max_candidates=30, seed=4, groups=groups)
    assert len(set(few.selected.tolist())) == 30 and (few.selected >= 90).sum() == 10
    one = mlff.select_by_deviation(devi[:90], 0.05, 0.15, max_candidates=6, seed=4, groups=groups[:90])
    assert one.selected.tolist() == mlff.select_by_deviation(devi[:90], 0.05, 0.15, 6, seed=4).selected.tolist()
    with pytest.raises(ValueError, match=r'groups must give one group per frame \(\(100,\)\), got shape \(3,\)'):
        mlff.select_by_deviation(devi, 0.05, 0.15, 6, groups=['md'] * 3)


@pytest.mark.parametrize(('kwargs', 'message'), [
    ({'trust_lo': 0.2, 'trust_hi': 0.1}, 'trust_lo < trust_hi'),
    ({'trust_lo': -0.1, 'trust_hi': 0.1}, 'trust_lo=-0.1'),
    ({'max_candidates': -1}, 'max_candidates must be >= 0'),
    ({'stride': 0}, 'stride must be >= 1'),
])
def test_selection_rejects_bad_settings(kwargs, message):
    settings = {'trust_lo': 0.05, 'trust_hi': 0.15, 'max_candidates': 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        mlff.select_by_deviation(np.array([0.1, 0.2]), **settings)


def test_selection_rejects_nan_deviation():
    with pytest.raises(ValueError, match='NaN'):
        mlff.select_by_deviation(np.array([0.1, np.nan]), 0.05, 0.15, 1)


def test_cp2k_forces_are_converted_to_ev_per_angstrom():
    forces = mlff.read_cp2k_atomic_forces(CP2K_FORCES)
    assert forces.shape == (2, 3)
    assert forces[1, 0] == pytest.approx(0.02 * 51.42208619083232, rel=1e-6)  # 1 Ha/Bohr = 51.422 eV/Å


def test_cp2k_forces_refuse_other_units_and_missing_block():
    with pytest.raises(ValueError, match=r'expected \[a.u.\]'):
        mlff.read_cp2k_atomic_forces(CP2K_FORCES.replace('[a.u.]', '[eV/Angstrom]'))
    with pytest.raises(ValueError, match='PRINT/FORCES'):
        mlff.read_cp2k_atomic_forces('ENERGY| Total FORCE_EVAL ( QS ) energy [a.u.]: -1.0')


def test_cp2k_label_checks_units_shape_and_magnitude():
    forces = np.full((2, 3), 0.1)
    energy, checked = mlff.cp2k_label(-2.0, 'a.u.', forces, n_atoms=2)
    assert energy == pytest.approx(-2.0 * 27.2113862, rel=1e-7)  # Hartree in eV (CODATA)
    assert checked is not None
    with pytest.raises(ValueError, match="unit 'eV'"):
        mlff.cp2k_label(-2.0, 'eV', forces, 2)
    with pytest.raises(ValueError, match=r'expected \(3, 3\)'):
        mlff.cp2k_label(-2.0, 'a.u.', forces, 3)
    with pytest.raises(ValueError, match='plausible range'):
        mlff.cp2k_label(-2.0, 'a.u.', forces * 1000, 2)  # e.g. forces left in eV/Bohr*1000 by mistake


def test_labelled_system_round_trips_through_deepmd_npy(tmp_path):
    import dpdata

    atoms = Atoms('InPF', positions=[[0, 0, 0], [2.5, 0, 0], [0, 2.0, 0]], cell=[10, 10, 10])
    forces = np.arange(9.0).reshape(3, 3) / 10
    system = mlff.labelled_system(atoms, -100.0, forces, ['F', 'In', 'P'])
    system.to('deepmd/npy', str(tmp_path / 'sys'))
    back = dpdata.LabeledSystem(str(tmp_path / 'sys'), fmt='deepmd/npy')
    assert back['atom_names'] == ['F', 'In', 'P']
    assert back['atom_types'].tolist() == [1, 2, 0]
    assert back['energies'][0] == pytest.approx(-100.0)
    assert back['forces'][0] == pytest.approx(forces)
    assert back.nopbc
    with pytest.raises(ValueError, match=r"\['P'\] are not in the type map"):
        mlff.labelled_system(atoms, -1.0, forces, ['F', 'In'])


def test_validation_split_is_independent_of_batching():
    together = mlff.assign_validation(0, 10, every=3)
    in_two = np.concatenate([mlff.assign_validation(0, 4, 3), mlff.assign_validation(4, 6, 3)])
    assert together.tolist() == in_two.tolist()
    assert np.flatnonzero(together).tolist() == [0, 3, 6, 9]
    assert not mlff.assign_validation(0, 5, every=0).any()


def test_parity_metrics():
    metrics = mlff.parity_metrics([1.0, 2.0, 4.0], [1.0, 1.0, 1.0])
    assert metrics == pytest.approx({'mae': 4 / 3, 'rmse': np.sqrt(10 / 3), 'max': 3.0})
    with pytest.raises(ValueError, match='equal, non-empty shape'):
        mlff.parity_metrics([1.0], [1.0, 2.0])


def _frame(symbols: str, energy: float, source: str, md_step=None) -> mlff.LabelledFrame:
    atoms = Atoms(symbols, positions=[[2.5 * i, 0, 0] for i in range(len(symbols.replace('In', 'X')))])
    return mlff.LabelledFrame(atoms, energy, np.full((len(atoms), 3), 0.5), source, md_step)


def test_assembled_dataset_splits_by_count_and_composition():
    """Frames 2, 3, 4 of a dataset with 2 frames, every 2nd held out: 2 and 4 go to validation, 3 to training."""
    existing = mlff.labelled_system(_frame('InP', -10.0, 'a').atoms, -10.0, np.zeros((2, 3)), ['In', 'P'])
    existing.append(mlff.labelled_system(_frame('InP', -11.0, 'b').atoms, -11.0, np.zeros((2, 3)), ['In', 'P']))
    systems = {'training/In1P1': existing}
    sources = {'training/In1P1': ['a', 'b']}  # a dataset from before MD steps were recorded
    frames = [_frame('InP', -12.0, 'c', 7), _frame('InP', -13.0, 'd', 8), _frame('InIn', -14.0, 'e')]
    systems, new_sources, steps = mlff.assemble_dataset(frames, ['In', 'P'], 2, systems, sources, {})
    assert sorted(systems) == ['training/In1P1', 'validation/In1P1', 'validation/In2']
    assert systems['training/In1P1']['energies'].tolist() == [-10.0, -11.0, -13.0]
    assert systems['validation/In1P1']['energies'].tolist() == [-12.0]
    assert systems['validation/In2']['atom_numbs'] == [2, 0]
    assert systems['validation/In2']['forces'][0] == pytest.approx(np.full((2, 3), 0.5))
    assert new_sources == {'training/In1P1': ['a', 'b', 'd'], 'validation/In1P1': ['c'], 'validation/In2': ['e']}
    assert steps == {'training/In1P1': [None, None, 8], 'validation/In1P1': [7], 'validation/In2': [None]}
    assert sources == {'training/In1P1': ['a', 'b']}  # the caller's lists are not changed


def test_assembled_dataset_without_validation_and_names_of_subsets():
    systems, sources, steps = mlff.assemble_dataset([_frame('InP', -1.0, 'x'), _frame('InP', -2.0, 'y')],
                                                    ['P', 'In'], 0, subsets=('trn', 'val'))
    assert list(systems) == ['trn/P1In1'] and sources == {'trn/P1In1': ['x', 'y']}
    assert steps == {'trn/P1In1': [None, None]}
    with pytest.raises(ValueError, match=r"\['P'\] are not in the type map"):
        mlff.assemble_dataset([_frame('InP', -1.0, 'x')], ['In'], 0)
    with pytest.raises(ValueError, match='every must be >= 0, got -1'):
        mlff.assemble_dataset([_frame('InP', -1.0, 'x')], ['In', 'P'], -1)


def test_parity_panels_and_plot():
    """Energies off by +0.1 eV/atom, forces of 2 frames × 1 atom off by -0.2 eV/Å on one component."""
    f_dft = np.array([[[1.0, 0.0, 0.0]], [[0.0, 2.0, 0.0]]])
    f_ml = f_dft.copy()
    f_ml[1, 0, 1] -= 0.6
    energy, force = mlff.parity_panels([0.0, 1.0], [0.1, 1.1], f_dft, f_ml)
    assert energy['name'] == 'energy' and energy['label'] == 'energy (eV/atom)'
    assert (energy['mae'], energy['rmse'], energy['low'], energy['high']) == pytest.approx((0.1, 0.1, 0.0, 1.1))
    assert force['reference'].shape == (6,)
    assert (force['mae'], force['rmse'], force['max']) == pytest.approx((0.1, np.sqrt(0.36 / 6), 0.6))
    assert (force['low'], force['high']) == (0.0, 2.0)
    png = mlff.parity_plot([0.0, 1.0], [0.1, 1.1], f_dft, f_ml)
    assert png[:8] == b'\x89PNG\r\n\x1a\n'
    import io

    import matplotlib.image

    assert matplotlib.image.imread(io.BytesIO(png)).shape[:2] == (400, 800)  # 8 × 4 inches at 100 dpi
    with pytest.raises(ValueError, match='equal, non-empty shape'):
        mlff.parity_plot([0.0, 1.0], [0.1], f_dft, f_ml)


def test_recenter_and_rattle():
    atoms = Atoms('H2', positions=[[0, 0, 0], [1, 0, 0]])
    centred = mlff.recenter_in_cell(atoms, np.eye(3) * 10)
    assert centred.get_positions().mean(axis=0) == pytest.approx([5, 5, 5])
    frames = mlff.rattled_positions(atoms.get_positions(), 0.05, 4, seed=3)
    assert frames.shape == (4, 2, 3)
    assert frames[0] == pytest.approx(atoms.get_positions())
    assert 0.01 < np.abs(frames[1:] - frames[0]).mean() < 0.1
    with pytest.raises(ValueError, match=r'\(0, 0.5\] Å'):
        mlff.rattled_positions(atoms.get_positions(), 1.0, 2, 0)


MD_FILES = ('aiida-pos-1.xyz', 'aiida-frc-1.xyz', 'aiida-1.ener')


@pytest.fixture
def cp2k_md(data_dir):
    """Texts of the recorded CP2K NVT MD of In4PF9 (``fast`` settings): positions, forces, energies."""
    return [(data_dir / 'deepmd' / 'cp2k_md' / name).read_text() for name in MD_FILES]


def test_cp2k_md_frames_units_and_cross_checks(cp2k_md, data_dir):
    """Frames of the real MD in Å, eV, eV/Å; energies and forces equal those CP2K printed in its log for each step.

    dpdata 1.1.0's ``cp2k/aimd_output`` cannot read this CP2K 2023.1 run ("None of the delimiter patterns are
    matched": it looks for the older `` INITIAL POTENTIAL ENERGY`` / `` ENSEMBLE TYPE`` lines, CP2K 2023.1 writes
    ``MD_INI| ...``), so the log is the independent check here.
    """
    import re

    data = mlff.read_cp2k_md_frames(*cp2k_md)
    n_frames = len(data['steps'])
    assert data['steps'].tolist() == list(range(n_frames)) and n_frames == 5
    assert data['symbols'].count('In') == 4 and len(data['symbols']) == 14
    assert data['positions'].shape == data['forces'].shape == (n_frames, 14, 3)
    # step 0 is the boxed start: its energy is the recorded ENERGY_FORCE label of the same geometry (Hartree -> eV)
    assert data['energies'][0] == pytest.approx(-449.704066590 * mlff.HARTREE_EV, abs=1e-5)
    # first In force of step 0 in the -frc-1.xyz file, Hartree/Bohr -> eV/Å
    assert data['forces'][0, 0] == pytest.approx(np.array([-0.0185812362, -0.0136704900, -0.0166823308])
                                                 * mlff.HARTREE_PER_BOHR_EV_PER_ANGSTROM)
    log = (data_dir / 'deepmd' / 'cp2k_md' / 'aiida.out').read_text()
    energies = [float(x) for x in re.findall(r'ENERGY\| Total FORCE_EVAL \( QS \) energy \[a\.u\.\]:\s+(\S+)', log)]
    assert np.array(energies) * mlff.HARTREE_EV == pytest.approx(data['energies'], abs=1e-5)
    blocks = log.split(' ATOMIC FORCES in [a.u.]')[1:]
    assert len(blocks) == n_frames
    for step, block in enumerate(blocks):
        forces = mlff.read_cp2k_atomic_forces(' ATOMIC FORCES in [a.u.]' + block)
        assert forces == pytest.approx(data['forces'][step], abs=1e-6)


@pytest.mark.parametrize(('change', 'message'), [
    (lambda pos, frc, ener: (pos, frc.replace('i =        1,', 'i =        7,'), ener), 'forces file'),
    (lambda pos, frc, ener: (pos, frc, ener.replace('-449.', '-448.', 2)), 'the .ener potential energies differ'),
    (lambda pos, frc, ener: ('\n'.join(pos.splitlines()[:-3]), frc, ener), r'truncated'),
    (lambda pos, frc, ener: (pos.replace(', E =', ', Epot =', 1), frc, ener), 'is not `i = <step>'),
])
def test_cp2k_md_frames_refuse_inconsistent_files(cp2k_md, change, message):
    with pytest.raises(ValueError, match=message):
        mlff.read_cp2k_md_frames(*change(*cp2k_md))


def test_dipole_systems_hold_out_every_nth_frame_and_refuse_bad_frames(tmp_path):
    from aiida_qdtraps.analysis.mlff import write_dipole_systems

    positions = np.zeros((5, 2, 3))
    positions[:, 1, 0] = np.linspace(1.0, 1.4, 5)
    dipoles = positions[:, 1] * 0.5
    written = write_dipole_systems(tmp_path, ['In', 'P'], positions, dipoles, ['P', 'In'], 2)
    assert written == {'training/P1In1': [1, 3], 'validation/P1In1': [0, 2, 4]}
    assert np.allclose(np.load(tmp_path / 'validation' / 'P1In1' / 'set.000' / 'dipole.npy'), dipoles[[0, 2, 4]])
    assert np.loadtxt(tmp_path / 'training' / 'P1In1' / 'type.raw', dtype=int).tolist() == [1, 0]
    bad = dipoles.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match='dipoles of frame 3 are not finite numbers'):
        write_dipole_systems(tmp_path / 'x', ['In', 'P'], positions, bad, ['P', 'In'], 2)
    with pytest.raises(ValueError, match=r'dipoles have shape \(4, 3\); expected \(5, 3\)'):
        write_dipole_systems(tmp_path / 'x', ['In', 'P'], positions, dipoles[:4], ['P', 'In'], 2)
    with pytest.raises(ValueError, match=r"elements \['In'\] are not in type_map \['P'\]"):
        write_dipole_systems(tmp_path / 'x', ['In', 'P'], positions, dipoles, ['P'], 2)
