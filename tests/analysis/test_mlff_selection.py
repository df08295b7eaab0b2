"""Pre-label filter, deviation-vs-error calibration, trust levels and the stop criterion, on hand-built cases."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from aiida_qdtraps.analysis import mlff_selection as sel

# ASE covalent radii (Cordero et al.): In 1.42, F 0.57, P 1.07, H 0.31 Å
IN_F_MIN = 0.7 * (1.42 + 0.57)  # 1.393 Å
H_H_MIN = 0.7 * (0.31 + 0.31)  # 0.434 Å


def test_min_distance_table_is_scaled_covalent_radius_sum():
    table = sel.min_distance_table(['In', 'F', 'F', 'P'])
    assert set(table) == {('F', 'F'), ('F', 'In'), ('F', 'P'), ('In', 'In'), ('In', 'P'), ('P', 'P')}
    assert table[('F', 'In')] == pytest.approx(IN_F_MIN)
    assert table[('In', 'P')] == pytest.approx(0.7 * (1.42 + 1.07))
    assert sel.min_distance_table(['In', 'F'], scale=0.5)[('F', 'In')] == pytest.approx(0.5 * 1.99)


def test_min_distance_table_overrides_either_order():
    table = sel.min_distance_table(['In', 'F'], overrides={('In', 'F'): 1.6})
    assert table[('F', 'In')] == 1.6
    assert table[('In', 'In')] == pytest.approx(0.7 * 2.84)


@pytest.mark.parametrize('kwargs, message', [
    ({'elements': ['In', 'Xx']}, 'Xx'),
    ({'elements': ['In'], 'scale': 0.0}, 'scale'),
    ({'elements': ['In'], 'overrides': {('In', 'F'): 1.0}}, 'In–F'),
    ({'elements': ['In', 'F'], 'overrides': {('In', 'F'): -1.0}}, 'positive'),
])
def test_min_distance_table_refuses(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sel.min_distance_table(**kwargs)


def _in_f(distance: float) -> Atoms:
    return Atoms('InF', positions=[[0, 0, 0], [0, 0, distance]])


def test_prelabel_filter_keeps_physical_and_names_the_close_pair():
    table = sel.min_distance_table(['In', 'F'])
    nan_frame = _in_f(2.0)
    nan_frame.positions[1, 2] = np.nan
    frames = [_in_f(2.0), _in_f(1.2), nan_frame, _in_f(IN_F_MIN + 1e-6)]
    result = sel.prelabel_filter(frames, table)
    assert result.kept.tolist() == [0, 3]
    assert result.rejected_indices.tolist() == [1, 2]
    close, broken = result.rejected
    assert (close.reason, close.pair, close.atoms, close.n_close_pairs) == ('too close', ('In', 'F'), (0, 1), 1)
    assert close.distance == pytest.approx(1.2)
    assert close.minimum == pytest.approx(IN_F_MIN)
    assert (broken.reason, broken.atoms) == ('non-finite', (1,))
    assert result.summary() == ('filtered 2 of 4 frames: frame 1: In–F 1.20 Å < 1.39 Å (atoms 0, 1); '
                                'frame 2: non-finite position (atom 1)')
    assert result.to_dict()['kept'] == [0, 3]


def test_prelabel_filter_reports_the_pair_closest_relative_to_its_limit():
    """In–F at 1.30 Å is 0.93 of its limit, H–H at 0.20 Å is 0.46 of its limit: the H–H pair is named."""
    atoms = Atoms('InFHH', positions=[[0, 0, 0], [0, 0, 1.3], [5, 0, 0], [5, 0, 0.2]])
    result = sel.prelabel_filter([atoms], sel.min_distance_table(['In', 'F', 'H']))
    (rejection,) = result.rejected
    assert rejection.pair == ('H', 'H')
    assert rejection.atoms == (2, 3)
    assert rejection.minimum == pytest.approx(H_H_MIN)
    assert rejection.n_close_pairs == 2


def test_prelabel_filter_coincident_atoms_and_summary_cap():
    frames = [Atoms('FF', positions=[[0, 0, 0], [0, 0, 0]]) for _ in range(5)]
    result = sel.prelabel_filter(frames, sel.min_distance_table(['F']))
    assert result.kept.size == 0
    assert result.rejected[0].distance == 0.0
    assert result.summary().startswith('filtered 5 of 5 frames: frame 0: F–F 0.00 Å < 0.80 Å')
    assert result.summary().endswith('; and 2 more')
    assert sel.prelabel_filter([], sel.min_distance_table(['F'])).summary() == 'filtered 0 of 0 frames'


def test_prelabel_filter_uses_the_minimum_image_when_periodic():
    """In at z = 0 and F at z = 9.5 in a 10 Å box: 0.5 Å apart through the boundary, 9.5 Å without it."""
    periodic = Atoms('InF', positions=[[0, 0, 0], [0, 0, 9.5]], cell=[10, 10, 10], pbc=True)
    cluster = Atoms('InF', positions=[[0, 0, 0], [0, 0, 9.5]], cell=[10, 10, 10], pbc=False)
    result = sel.prelabel_filter([periodic, cluster], sel.min_distance_table(['In', 'F']))
    assert result.kept.tolist() == [1]
    assert result.rejected[0].distance == pytest.approx(0.5)


def test_prelabel_filter_refuses_a_table_without_the_frame_elements():
    with pytest.raises(ValueError, match=r"frame 0: no minimum distance for the pair\(s\) \[\('F', 'P'\)"):
        sel.prelabel_filter([Atoms('InFP', positions=[[0, 0, 0], [0, 0, 2], [0, 0, 4]])],
                            sel.min_distance_table(['In', 'F']))
    with pytest.raises(ValueError, match=r"positive and finite.*\('F', 'In'\): nan"):
        sel.prelabel_filter([_in_f(2.0)], {('In', 'F'): float('nan')})


def test_prelabel_filter_passes_recorded_md_and_catches_a_collapsed_copy(data_dir):
    """The recorded MLFF MD (11 frames) and CP2K MD (5 frames) of In4PF9 are physical: nothing is filtered; their
    closest pair is In–P at 2.35 Å (limit 1.74 Å). The same frame with an F moved 1.0 Å from an In is refused."""
    from ase.io import read

    recorded = np.load(data_dir / 'deepmd' / 'md.npz')
    symbols = (data_dir / 'deepmd' / 'md_symbols.txt').read_text().split()
    frames = [Atoms(symbols, positions=p) for p in recorded['positions']]
    frames += read(data_dir / 'deepmd' / 'cp2k_md' / 'aiida-pos-1.xyz', index=':')
    table = sel.min_distance_table(symbols)
    assert sel.prelabel_filter(frames, table).summary() == 'filtered 0 of 16 frames'
    collapsed = frames[0].copy()
    fluorine = symbols.index('F')
    collapsed.positions[fluorine] = collapsed.positions[0] + [1.0, 0.0, 0.0]
    (rejection,) = sel.prelabel_filter([frames[0], collapsed], table).rejected
    assert (rejection.frame, rejection.pair, rejection.atoms) == (1, ('In', 'F'), (0, fluorine))
    assert rejection.distance == pytest.approx(1.0)


def test_max_force_error_is_the_largest_atom_error_of_the_ensemble_mean():
    dft = np.zeros((2, 2, 3))
    models = np.zeros((2, 2, 2, 3))
    models[0, 0, 0] = [0.6, 0.8, 0.0]  # mean error of atom 0 in frame 0: (0.3, 0.4, 0) -> 0.5
    models[:, 0, 1] = [0.1, 0.0, 0.0]  # atom 1: 0.1
    models[:, 1, 1] = [0.0, 0.0, -0.2]  # frame 1: 0.2
    assert sel.max_force_error(models, dft) == pytest.approx([0.5, 0.2])
    assert sel.max_force_error(models.mean(axis=0), dft) == pytest.approx([0.5, 0.2])
    with pytest.raises(ValueError, match='model_forces must have shape'):
        sel.max_force_error(models[:, :1], dft)


def test_deviation_error_relation_proportional_batch():
    """True error = 2 × deviation: perfect rank correlation, every ratio 2."""
    devi = np.array([0.1, 0.2, 0.3, 0.4])
    relation = sel.deviation_error_relation(devi, 2 * devi)
    assert relation['spearman_rho'] == pytest.approx(1.0)
    assert relation['pearson_r'] == pytest.approx(1.0)
    assert [relation[f'ratio_p{q}'] for q in (10, 50, 90)] == pytest.approx([2, 2, 2])
    assert 'missed_fraction' not in relation
    assert sel.deviation_error_relation(devi, devi[::-1])['spearman_rho'] == pytest.approx(-1.0)


def test_deviation_error_relation_counts_missed_frames():
    """trust 0.05 / 0.30: frame 0 looks accurate (0.01) but its true error 0.6 is beyond trust_hi: missed."""
    devi = np.array([0.01, 0.02, 0.2, 0.5])
    true = np.array([0.6, 0.04, 0.1, 0.9])
    relation = sel.deviation_error_relation(devi, true, trust_lo=0.05, trust_hi=0.30)
    assert (relation['n_accurate'], relation['n_candidate'], relation['n_failed']) == (2, 1, 1)
    assert relation['n_missed'] == 1
    assert relation['missed_fraction'] == pytest.approx(0.25)
    assert relation['accurate_above_lo_fraction'] == pytest.approx(0.5)
    assert relation['candidate_below_lo_fraction'] == pytest.approx(0.0)
    assert relation['accurate_error_p95'] == pytest.approx(0.04 + 0.95 * 0.56)
    assert relation['ratio_p50'] == pytest.approx(1.9)  # ratios 60, 2, 0.5, 1.8


def test_deviation_error_relation_undefined_numbers_are_none():
    relation = sel.deviation_error_relation([0.0, 0.1], [0.2, 0.2], trust_lo=0.05, trust_hi=0.1)
    assert relation['spearman_rho'] is None and relation['pearson_r'] is None
    assert relation['n_zero_deviation'] == 1
    assert relation['ratio_p50'] == pytest.approx(2.0)
    assert relation['candidate_below_lo_fraction'] is None  # frame 1 (0.1 = trust_hi) failed: no candidate
    assert (relation['n_missed'], relation['accurate_above_lo_fraction']) == (1, 1.0)


@pytest.mark.parametrize('args, kwargs, message', [
    (([0.1, 0.2], [0.1]), {}, 'equal, non-empty'),
    (([0.1, np.nan], [0.1, 0.1]), {}, 'max_devi_f must be finite'),
    (([0.1, 0.2], [0.1, -0.1]), {}, 'true error must be finite'),
    (([0.1, 0.2], [0.1, 0.1]), {'trust_lo': 0.1}, 'both'),
    (([0.1, 0.2], [0.1, 0.1]), {'trust_lo': 0.2, 'trust_hi': 0.1}, 'trust_lo=0.2'),
])
def test_deviation_error_relation_refuses(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        sel.deviation_error_relation(*args, **kwargs)


DEVI = np.array([0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.10, 0.5, 0.6])


@pytest.mark.parametrize('numb, rate, trust_lo, candidates', [
    (3, 0.01, 0.08, [7, 8, 9]),  # k = max(3, int(0.1)) = 3 of the 10 frames below trust_hi
    (0, 0.5, 0.06, [5, 6, 7, 8, 9]),  # k = int(0.5 × 10) = 5
    (100, 0.0, 0.01, list(range(10))),  # k capped at the 10 frames
])
def test_adaptive_trust_lo_takes_the_largest_deviations_below_trust_hi(numb, rate, trust_lo, candidates):
    level = sel.adaptive_trust_lo(DEVI, trust_hi=0.3, numb_candi=numb, rate_candi=rate)
    assert level.trust_lo == pytest.approx(trust_lo)
    assert level.candidates.tolist() == candidates
    assert level.n_failed == 2


def test_adaptive_trust_lo_edge_cases():
    everything_failed = sel.adaptive_trust_lo([0.5, 0.6], trust_hi=0.3)
    assert everything_failed.trust_lo == 0.3 and everything_failed.candidates.size == 0
    tied = sel.adaptive_trust_lo([0.1, 0.2, 0.2, 0.3], trust_hi=1.0, numb_candi=2)
    assert tied.trust_lo == 0.2 and tied.candidates.tolist() == [1, 2, 3] and tied.n_requested == 2
    at_hi = sel.adaptive_trust_lo([0.1, 0.3], trust_hi=0.3, numb_candi=1)
    assert at_hi.n_failed == 1 and at_hi.trust_lo == 0.1


def test_adaptive_trust_lo_agrees_with_select_by_deviation():
    from aiida_qdtraps.analysis.mlff import select_by_deviation

    devi = np.array([0.3, 0.05, 0.2, 0.2, 0.9, 0.12, 0.01])
    level = sel.adaptive_trust_lo(devi, trust_hi=0.5, numb_candi=3)
    assert level.trust_lo == 0.2
    chosen = select_by_deviation(devi, level.trust_lo, 0.5, max_candidates=100)
    assert chosen.candidates.tolist() == level.candidates.tolist() == [0, 2, 3]


@pytest.mark.parametrize('levels, n_checked, converged', [
    ([0.30, 0.20, 0.18], 2, True),
    ([0.30, 0.20, 0.18], 3, False),  # 0.30 -> 0.20 moved by 0.10
    ([0.30, 0.20], 2, False),
    ([0.20], 1, False),
])
def test_adaptive_trust_lo_converged(levels, n_checked, converged):
    assert sel.adaptive_trust_lo_converged(levels, tolerance=0.05, n_checked=n_checked) is converged


CAL_DEVI = np.arange(1, 11) / 100  # 0.01 ... 0.10 eV/Å
CAL_TRUE = np.array([0.05] * 6 + [0.2, 0.05, 0.3, 0.4])  # within 0.1 eV/Å: frames 0-5 and 7


@pytest.mark.parametrize('quantile, trust_lo, n_below, fraction', [
    (0.9, 0.065, 6, 1.0),  # 7 frames: 6/7 = 0.857 < 0.9
    (0.85, 0.085, 8, 7 / 8),  # 8 frames: 7/8 = 0.875 >= 0.85 (7 frames also pass; 9 do not)
])
def test_calibrated_trust_levels_largest_qualifying_prefix(quantile, trust_lo, n_below, fraction):
    cal = sel.calibrated_trust_levels(CAL_DEVI, CAL_TRUE, target_error=0.1, quantile=quantile)
    assert cal.trust_lo == pytest.approx(trust_lo)
    assert cal.trust_hi == pytest.approx(3 * trust_lo)
    assert (cal.n_below, cal.fraction_within_target) == (n_below, pytest.approx(fraction))


def test_calibrated_trust_levels_whole_batch_and_none():
    whole = sel.calibrated_trust_levels(CAL_DEVI, CAL_TRUE, target_error=0.1, quantile=0.7)
    assert whole.n_below == 10 and 0.10 < whole.trust_lo < 0.10 + 1e-12
    nothing = sel.calibrated_trust_levels([0.1, 0.2], [0.5, 0.05], target_error=0.1, quantile=1.0)
    assert (nothing.trust_lo, nothing.trust_hi, nothing.n_below) == (0.0, None, 0)
    assert 'every frame is a candidate' in nothing.reason
    tied = sel.calibrated_trust_levels([0.1, 0.1, 0.2], [0.05, 0.5, 0.05], target_error=0.1, quantile=1.0)
    assert tied.n_below == 0  # the first frame alone would pass, but its tie partner does not


def test_calibrated_trust_levels_ratio_cross_check():
    """True error = 2 × deviation: a 0.1 eV/Å target maps to a deviation of 0.05 eV/Å."""
    devi = np.array([0.02, 0.04, 0.06, 0.08])
    cal = sel.calibrated_trust_levels(devi, 2 * devi, target_error=0.1, quantile=1.0)
    assert cal.trust_lo_from_ratio == pytest.approx(0.05)
    assert cal.trust_lo == pytest.approx(0.05)  # midway between 0.04 (error 0.08) and 0.06 (error 0.12)


@pytest.mark.parametrize('kwargs, message', [
    ({'target_error': 0.0}, 'target_error'),
    ({'target_error': 0.1, 'quantile': 0.0}, 'quantile'),
    ({'target_error': 0.1, 'hi_ratio': 1.0}, 'hi_ratio'),
])
def test_calibrated_trust_levels_refuses(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sel.calibrated_trust_levels(CAL_DEVI, CAL_TRUE, **kwargs)


def test_next_trust_levels_falls_back_to_the_given_levels_below_min_points():
    levels = sel.next_trust_levels(CAL_DEVI[:4], CAL_TRUE[:4], 0.05, 0.15, target_error=0.1, min_points=5)
    assert (levels['trust_lo'], levels['trust_hi'], levels['source'], levels['n_points']) == (0.05, 0.15, 'given', 4)
    assert levels['reason'] == ('4 labelled frame(s) with a true error, fewer than min_points 5: the given levels')
    empty = sel.next_trust_levels([], [], 0.05, 0.15, target_error=0.1, min_points=1)
    assert (empty['source'], empty['n_points']) == ('given', 0)


def test_next_trust_levels_calibrated_on_enough_frames():
    """The ten frames of the prefix test: at quantile 0.9 trust_lo lies between the 6th and 7th deviation."""
    levels = sel.next_trust_levels(CAL_DEVI, CAL_TRUE, 0.05, 0.15, target_error=0.1, quantile=0.9, min_points=10,
                                   hi_ratio=2.0)
    assert levels['source'] == 'calibrated'
    assert levels['trust_lo'] == pytest.approx(0.065) and levels['trust_hi'] == pytest.approx(0.13)
    assert (levels['n_below'], levels['fraction_within_target']) == (6, 1.0)
    assert levels['reason'].startswith('6 of 10 frames below trust_lo 0.065 eV/Å')


def test_next_trust_levels_keeps_the_given_trust_hi_when_no_frame_meets_the_target():
    levels = sel.next_trust_levels([0.1, 0.2], [0.5, 0.6], 0.05, 0.15, target_error=0.1, min_points=2)
    assert (levels['trust_lo'], levels['trust_hi'], levels['source']) == (0.0, 0.15, 'calibrated')
    assert levels['reason'].endswith('every frame is a candidate; trust_hi stays the given 0.15 eV/Å')


@pytest.mark.parametrize('args, kwargs, message', [
    (([0.1], [0.1, 0.2], 0.05, 0.15), {}, r'max_devi_f \(1 values\) and true_error \(2 values\) must pair up'),
    (([0.1], [0.1], 0.05, 0.15), {'min_points': 0}, 'min_points must be an integer >= 1, got 0'),
    (([0.1], [0.1], 0.2, 0.15), {}, 'trust_lo=0.2, trust_hi=0.15'),
    (([0.1], [-0.1], 0.05, 0.15), {'min_points': 1}, 'true error must be finite and >= 0'),
])
def test_next_trust_levels_refuses(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        sel.next_trust_levels(*args, target_error=0.1, **kwargs)


def test_validation_converged_all_checks():
    assert sel.validation_converged(0.08, 0.8) == (
        True, 'converged: force RMSE 0.08 ≤ 0.1 eV/Å, energy RMSE 0.8 ≤ 1 meV/atom')
    assert sel.validation_converged(0.10, 1.0)[0]  # targets are inclusive
    ok, reason = sel.validation_converged(0.12, 0.8, accurate_fraction=0.97)
    assert not ok
    assert reason == ('not converged: force RMSE 0.12 > 0.1 eV/Å, energy RMSE 0.8 ≤ 1 meV/atom, '
                      'accurate fraction 0.97 ≥ 0.95')
    assert not sel.validation_converged(0.05, 0.5, accurate_fraction=0.9)[0]
    ok, reason = sel.validation_converged(0.05, 0.5, failed_fraction=0.01)
    assert not ok and reason.startswith('not converged: failed fraction 0.01 > 0')
    with pytest.raises(ValueError, match='force RMSE must be a finite number'):
        sel.validation_converged(float('nan'), 0.5)


@pytest.mark.parametrize(('devi', 'limit', 'expected'), [
    ([0.1, 0.2, 0.3], 0.5, 2),  # never above: the last frame
    ([0.1, 0.2, 0.7, 0.3, 0.2], 0.5, 1),  # the frame before the first excursion, not after it
    ([0.9, 0.2], 0.5, 0),  # above from the start: the start
    ([0.1, float('nan'), 0.1], 0.5, 0),  # a non-finite deviation counts as above
    ([0.1, 0.5, 0.6], 0.5, 1),  # at the limit is still agreed
])
def test_last_agreed_frame(devi, limit, expected):
    assert sel.last_agreed_frame(devi, limit) == expected


@pytest.mark.parametrize(('devi', 'limit', 'message'), [
    ([], 0.5, 'non-empty series'), ([[0.1]], 0.5, 'non-empty series'), ([0.1], 0.0, 'limit must be a force deviation'),
])
def test_last_agreed_frame_refuses_bad_input(devi, limit, message):
    with pytest.raises(ValueError, match=message):
        sel.last_agreed_frame(devi, limit)
