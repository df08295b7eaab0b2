"""Real CP2K dynamics on the ``xtb`` protocol (GFN1-xTB): 100 fs heat-up and 100 fs NVE for a small Cd-rich
(Cd6Se4Cl4) and a small Se-rich (Cd4Se6H4) CdSe cluster from the builder, then RMSF, VDOS and, through
``MdGapsWorkChain`` with GFN1-xTB single points, the gap series with its statistics, dephasing time and NAC; the
MD's own HOMO/LUMO of every step (``orbital_energies``) give the dephasing function at the time step, and its
dipoles an IR spectrum: every result a node. The DFT protocols run the same work chains
(tests/workchains/test_md.py, test_md_gaps.py) on fewer steps: 200 fs of ``fast`` DFT MD cost about an hour per
cluster here (docs/md.md)."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_qdtraps.workchains.build import build_qd
from aiida_qdtraps.workchains.dynamics import compute_dephasing, compute_ir, compute_rmsf, compute_vdos
from aiida_qdtraps.workchains.md import QdMdWorkChain
from aiida_qdtraps.workchains.md_gaps import MdGapsWorkChain

#: recipe and MD time step (fs) of each cluster: Se–H (period ≈ 14 fs) needs 0.5 fs
CLUSTERS = {
    'cd-rich': ({'material': 'CdSe', 'diameter': 7.0, 'ligand': 'Cl', 'center': 'interstitial'}, 1.0),
    'se-rich': ({'material': 'CdSe', 'diameter': 7.0, 'ligand': 'H', 'center': 'interstitial2'}, 0.5),
}
HEATUP_FS, NVE_FS = 100.0, 100.0


@pytest.mark.slow
@pytest.mark.parametrize('cluster', sorted(CLUSTERS))
def test_xtb_heatup_nve_then_rmsf_vdos_gaps_and_dephasing(cp2k_code, cluster):
    recipe, timestep = CLUSTERS[cluster]
    structure = build_qd(orm.Dict(recipe))
    n_atoms = len(structure.sites)
    md = {'heatup_fs': HEATUP_FS, 'heatup_segments': 2, 'thermostat_tau_fs': 25.0, 'nve_fs': NVE_FS,
          'timestep_fs': timestep, 'stride': 1}
    builder = QdMdWorkChain.get_builder_from_protocol(cp2k_code, structure, protocol='xtb', overrides={'md': md})
    parameters = builder.base.cp2k.parameters.get_dict()
    assert parameters['FORCE_EVAL']['DFT']['QS']['METHOD'] == 'xTB'
    assert 'KIND' not in parameters['FORCE_EVAL']['SUBSYS'] and 'MGRID' not in parameters['FORCE_EVAL']['DFT']
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message

    trajectory, summary = results['trajectory'], results['md_summary'].get_dict()
    steps = round((HEATUP_FS + NVE_FS) / timestep)
    assert trajectory.numsteps == steps + 1 and trajectory.get_times()[-1] == pytest.approx(HEATUP_FS + NVE_FS)
    assert summary['runs'] == 3 and summary['nve_frames'] == round(NVE_FS / timestep)
    assert trajectory.get_array('dipole').shape == (steps + 1, 3)
    # the heat-up reached the target: NVE mean temperature within a factor 2 of 300 K (a 14-atom cluster fluctuates)
    assert 150.0 < summary['nve_mean_temperature_k'] < 600.0
    # NVE: the conserved energy stays within 0.5 meV/atom (4 ps runs drift by < 0.01 meV/atom/ps: docs/md.md)
    first_nve = trajectory.numsteps - summary['nve_frames']
    conserved = trajectory.get_array('conserved_energy')[first_nve:]
    assert np.ptp(conserved) / n_atoms < 5e-4
    assert summary['nve_drift_mev_per_atom_ps'] is not None
    # HOMO, LUMO and gap of every frame from the MD's own SCF: the window around the GFN1-xTB HOMO was found (the
    # valence count of the work chain agrees with CP2K's) and nothing was left out
    assert 'left_out' not in summary, summary['left_out']
    step_gaps = trajectory.get_array('gap')
    assert step_gaps.shape == (steps + 1,) and np.all((step_gaps > 0.05) & (step_gaps < 5.0))
    assert np.allclose(trajectory.get_array('lumo') - trajectory.get_array('homo'), step_gaps)

    options = orm.Dict({'start_frame': first_nve})
    rmsf_outputs = compute_rmsf(trajectory, orm.Dict({'start_frame': first_nve, 'labels': 'sites'}))
    rmsf = rmsf_outputs['rmsf'].get_array('rmsf')
    assert rmsf.shape == (n_atoms,) and np.all((rmsf > 0.0) & (rmsf < 0.5))
    # per class (core / surface / ligand from the bonds of the first NVE frame, Bhati et al. Fig. 1): the ligands
    # (H or Cl) are a class of their own
    per_label = rmsf_outputs['summary']['per_label']
    assert 'ligand' in per_label and set(per_label) <= {'core', 'surface', 'ligand'}
    assert sum(entry['count'] for entry in per_label.values()) == n_atoms
    vdos = compute_vdos(trajectory, options)['vdos']
    wavenumber = vdos.get_x()[1]
    curves = {name: y for name, y, _ in vdos.get_y()}
    assert set(curves) >= {'Cd', 'Se'} and np.all(np.isfinite(curves['Cd']))
    # Cd moves slowly: its VDOS weight sits below 400 cm⁻¹ (Cd–Se and Cd–Cl modes are under 300 cm⁻¹)
    assert curves['Cd'][wavenumber < 400.0].sum() > 0.8 * curves['Cd'].sum()

    # IR from the dipole of every NVE step (harmonic quantum correction at the NVE temperature)
    ir = compute_ir(trajectory, options)['ir']
    intensity = ir.get_y()[0][1]
    assert np.all(np.isfinite(intensity)) and intensity.max() > 0.0
    # the dephasing of the gap sampled every step (Bhati et al. Fig. 5b): the cumulant decays no faster than the
    # static limit hbar/sigma (C(t) <= C(0)); whether tau spans 3 steps depends on the run (docs/md.md: a resolved one)
    step_dephasing = compute_dephasing(trajectory, options)['summary']
    assert step_dephasing['dt_fs'] == pytest.approx(timestep)
    assert 0.95 * step_dephasing['tau_static_fs'] <= step_dephasing['tau_fs'] < NVE_FS, step_dephasing.get_dict()

    # single points on three consecutive NVE frames: their gaps and the HOMO–LUMO couplings between frames one time
    # step apart (Bhati et al. Fig. 5c)
    frames = {'start': first_nve, 'every': 1, 'max_frames': 3}
    gaps_builder = MdGapsWorkChain.get_builder_from_protocol(cp2k_code, trajectory, protocol='fast', functional='xtb',
                                                             frames=frames)
    frame_parameters = gaps_builder.scf_frame.scf.cp2k.parameters.get_dict()
    assert frame_parameters['FORCE_EVAL']['DFT']['QS']['METHOD'] == 'xTB'
    gap_results, gap_node = run_get_node(gaps_builder)
    assert gap_node.is_finished_ok, gap_node.exit_message
    gaps = gap_results['gaps'].get_array('gaps')
    assert gaps.shape == (3,) and np.all((gaps > 0.05) & (gaps < 5.0))
    # a single point at a frame gives the gap the MD printed at that frame (same GFN1-xTB; the MD's SCF started from
    # the previous step's density)
    assert np.abs(gaps - step_gaps[first_nve:first_nve + 3]).max() < 0.02, (gaps, step_gaps[first_nve:first_nve + 3])
    assert gap_results['statistics']['std'] > 0.0
    # every frame has the same MO window (the aufbau HOMO under xTB's smearing): HOMO–LUMO couplings between them
    nac = gap_results['nac']
    assert nac.get_y()[1][1].shape == (2,)
    assert nac.creator.inputs.mo_frames.creator.process_label == 'collect_md_gaps'


def _md_in_pieces(cp2k_code, options: dict) -> tuple[dict, orm.WorkflowNode, list[orm.CalcJobNode]]:
    """A 10 fs heat-up and 100 fs NVE of Cd6Se4Cl4 with the CalcJob ``options`` that interrupt it, up to
    ``max_iterations`` 10 runs per stage: (results, the NVE's QdCp2kBaseWorkChain, its CalcJobs in order)."""
    structure = build_qd(orm.Dict(CLUSTERS['cd-rich'][0]))
    md = {'heatup_fs': 10.0, 'heatup_segments': 1, 'thermostat_tau_fs': 25.0, 'nve_fs': 100.0, 'timestep_fs': 1.0,
          'stride': 1}
    builder = QdMdWorkChain.get_builder_from_protocol(cp2k_code, structure, protocol='xtb', overrides={'md': md},
                                                      options=options)
    builder.base.max_iterations = orm.Int(10)
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    nve = max((n for n in node.called if n.process_label == 'QdCp2kBaseWorkChain'), key=lambda n: n.ctime)
    calcs = sorted((c for c in nve.called if c.process_label == 'Cp2kCalculation'), key=lambda c: c.ctime)
    return results, nve, calcs


def _assert_one_unbroken_trajectory(results) -> None:
    """Steps 0-110 once each, every frame's dipole and gap, and no jump where one piece continues another: positions,
    dipole and gap move as much per step there as elsewhere."""
    trajectory, summary = results['trajectory'], results['md_summary'].get_dict()
    assert trajectory.get_stepids().tolist() == list(range(111))
    assert 'left_out' not in summary, summary.get('left_out')
    for name in ('positions', 'dipole', 'gap'):
        values = trajectory.get_array(name).reshape(111, -1)
        moves = np.abs(np.diff(values, axis=0)).max(axis=1)
        assert moves.max() < 4 * np.median(moves) + 1e-6, name


@pytest.mark.slow
def test_xtb_md_continues_after_its_wall_time_into_one_trajectory(cp2k_code):
    """A real MD whose NVE run is stopped by CP2K's WALLTIME at least once (max_wallclock_seconds 10 → WALLTIME 9 s;
    a GFN1-xTB step of Cd6Se4Cl4 takes ~0.13 s here, so 2 runs alone and more under load, up to ``max_iterations``
    10): the wall-time handler continues each piece from its restart file, and the pieces join into one trajectory
    with every step once, and every frame's dipole and gap."""
    results, nve, calcs = _md_in_pieces(cp2k_code, {'max_wallclock_seconds': 10})
    assert len(calcs) >= 2 and all(c.exit_status == 400 for c in calcs[:-1]) and calcs[-1].exit_status == 0
    report = '\n'.join(log.message for log in orm.Log.collection.get_logs_for(nve))
    assert 'ran out of wall time: continuing from its last state' in report

    _assert_one_unbroken_trajectory(results)
    trajectory, summary = results['trajectory'], results['md_summary'].get_dict()
    assert summary['runs'] == 1 + len(calcs)
    conserved = trajectory.get_array('conserved_energy')[trajectory.numsteps - summary['nve_frames']:]
    assert len(conserved) == 100 and np.ptp(conserved) / len(trajectory.symbols) < 5e-4


@pytest.mark.slow
def test_xtb_md_killed_repeatedly_continues_into_one_trajectory(cp2k_code):
    """CP2K killed in the middle of its NVE run, again and again, as a scheduler or a node failure kills a job
    (``ulimit -t 4``: the kernel stops CP2K after 4 CPU seconds, ~30 GFN1-xTB steps here; the output ends
    mid-SCF): each truncated run is continued from its restart file, and the trajectory holds every step once."""
    results, nve, calcs = _md_in_pieces(cp2k_code, {'prepend_text': 'ulimit -t 4'})
    incomplete = calcs[0].process_class.exit_codes.ERROR_OUTPUT_INCOMPLETE.status
    assert len(calcs) >= 2 and all(c.exit_status == incomplete for c in calcs[:-1]) and calcs[-1].exit_status == 0
    report = '\n'.join(log.message for log in orm.Log.collection.get_logs_for(nve))
    assert 'stopped before CP2K finished (incomplete output): continuing from its last state' in report
    _assert_one_unbroken_trajectory(results)
