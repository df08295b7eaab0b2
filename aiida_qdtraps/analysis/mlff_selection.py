"""Pure kernels that decide which MLFF MD frames are worth a DFT label, and when to stop (no aiida).

Four rules, each in plain functions on numpy arrays / ``ase.Atoms`` (units: Å, eV/Å, meV/atom):

* **Pre-label filter** (:func:`min_distance_table`, :func:`prelabel_filter`): a frame with two atoms closer than a
  physical minimum distance, or with non-finite positions, is refused before any DFT label is paid for. The minimum
  distance of an element pair is ``scale`` × the sum of the two covalent radii (``ase.data.covalent_radii``), the
  same kind of rule as dpgen2's distance configuration filter (which uses its own per-element table).
* **Calibration of the deviation** (:func:`max_force_error`, :func:`deviation_error_relation`): on a labelled
  batch, how well the ensemble force deviation ``max_devi_f`` tracks the true force error of the ensemble mean.
* **Trust levels** (:func:`adaptive_trust_lo`, :func:`adaptive_trust_lo_converged`,
  :func:`calibrated_trust_levels`, :func:`next_trust_levels`): dpgen2's adaptive lower trust level, and a lower trust
  level calibrated on labelled frames against a target force error, with the fall-back to the given levels when too
  few frames were labelled.
* **Where to explore next** (:func:`last_agreed_frame`): the last frame of an exploration before the ensemble first
  disagreed, the start of the next iteration's MD when explorations continue.
* **Stop criterion** (:func:`validation_converged`): validation force and energy RMSE against targets, plus the
  accurate / failed fractions of the last exploration.

The classification by trust levels is that of :func:`aiida_qdtraps.analysis.mlff.select_by_deviation`: accurate
``max_devi_f < trust_lo``, candidate ``trust_lo <= max_devi_f < trust_hi``, failed ``max_devi_f >= trust_hi``.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, covalent_radii
from ase.neighborlist import neighbor_list

__all__ = (
    'DEFAULT_DISTANCE_SCALE',
    'AdaptiveLevel',
    'FilterResult',
    'Rejection',
    'TrustCalibration',
    'adaptive_trust_lo',
    'adaptive_trust_lo_converged',
    'calibrated_trust_levels',
    'deviation_error_relation',
    'max_force_error',
    'min_distance_table',
    'next_trust_levels',
    'prelabel_filter',
    'validation_converged',
)

#: Default factor on the sum of covalent radii that gives the minimum distance of an element pair. For the pairs of
#: III-V and II-VI QDs and their halide ligands (In–F, In–P, Cd–Se, Pb–S, Zn–S) dpgen2's distance filter table
#: amounts to 0.65–0.72 × the covalent-radius sum; 0.7 keeps C≡O (1.13 Å, limit 0.99 Å) and C–H (1.09 Å, limit
#: 0.75 Å) of organic ligands well clear; dpgen2's C–O limit (1.16 Å) refuses CO and leaves a C=O 0.05 Å of room.
DEFAULT_DISTANCE_SCALE = 0.7


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


def min_distance_table(elements: Sequence[str], scale: float = DEFAULT_DISTANCE_SCALE,
                       overrides: dict[tuple[str, str], float] | None = None) -> dict[tuple[str, str], float]:
    """Minimum physical distance (Å) of every element pair: ``scale × (r_cov(A) + r_cov(B))``.

    The covalent radii are ASE's (``ase.data.covalent_radii``, Cordero et al. 2008). The default ``scale``
    (:data:`DEFAULT_DISTANCE_SCALE` = 0.7) follows dpgen2's distance configuration filter, whose per-element table
    gives 0.65–0.72 × the covalent-radius sum for the core and halide pairs of QDs.

    :param elements: chemical symbols (duplicates allowed), e.g. ``atoms.get_chemical_symbols()``.
    :param scale: factor on the covalent-radius sum, in (0, 1.5].
    :param overrides: minimum distances (Å) that replace the rule for given pairs, in either order, e.g.
        ``{('In', 'F'): 1.6}``.
    :returns: ``{(A, B): d_min}`` with ``A <= B`` alphabetically, for every pair including ``(A, A)``.
    :raises ValueError: on an unknown symbol, a ``scale`` out of range, or a non-positive override.
    """
    if not 0 < scale <= 1.5:
        raise ValueError(f'scale must be in (0, 1.5], got {scale}')
    symbols = sorted(set(elements))
    if not symbols:
        raise ValueError('no elements given')
    unknown = [s for s in symbols if s not in atomic_numbers]
    if unknown:
        raise ValueError(f'unknown chemical symbol(s) {unknown}')
    radius = {s: float(covalent_radii[atomic_numbers[s]]) for s in symbols}
    table = {_pair(a, b): scale * (radius[a] + radius[b])
             for a, b in itertools.combinations_with_replacement(symbols, 2)}
    for (a, b), value in (overrides or {}).items():
        if _pair(a, b) not in table:
            raise ValueError(f'override for {a}–{b}: the pair is not among the elements {symbols}')
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f'override for {a}–{b} must be a positive distance in Å, got {value}')
        table[_pair(a, b)] = float(value)
    return table


@dataclasses.dataclass(frozen=True)
class Rejection:
    """Why one frame was refused by :func:`prelabel_filter`.

    ``reason`` is ``'too close'`` (then ``pair`` (symbols in atom order), ``atoms``, ``distance`` and ``minimum``
    name the pair closest relative to its limit, and ``n_close_pairs`` counts all pairs below their limits) or
    ``'non-finite'`` (then ``atoms`` holds the first atom with a NaN or infinite coordinate).
    """

    frame: int
    reason: str
    pair: tuple[str, str] | None = None
    atoms: tuple[int, ...] = ()
    distance: float | None = None  #: Å
    minimum: float | None = None  #: Å
    n_close_pairs: int = 0

    def describe(self) -> str:
        if self.reason == 'non-finite':
            return f'frame {self.frame}: non-finite position (atom {self.atoms[0]})'
        return (f'frame {self.frame}: {self.pair[0]}–{self.pair[1]} {self.distance:.2f} Å < {self.minimum:.2f} Å '
                f'(atoms {self.atoms[0]}, {self.atoms[1]}' + (f'; {self.n_close_pairs} pairs too close)'
                                                              if self.n_close_pairs > 1 else ')'))


@dataclasses.dataclass(frozen=True)
class FilterResult:
    """Outcome of :func:`prelabel_filter`: frame indices kept and the refused frames with their reasons."""

    kept: np.ndarray
    rejected: tuple[Rejection, ...]
    n_frames: int

    @property
    def rejected_indices(self) -> np.ndarray:
        return np.array([r.frame for r in self.rejected], dtype=int)

    def summary(self, max_listed: int = 3) -> str:
        """One line, e.g. ``filtered 2 of 40 frames: frame 7: In–F 1.21 Å < 1.39 Å (atoms 0, 5); ...``."""
        head = f'filtered {len(self.rejected)} of {self.n_frames} frames'
        if not self.rejected:
            return head
        listed = '; '.join(r.describe() for r in self.rejected[:max_listed])
        more = len(self.rejected) - max_listed
        return f'{head}: {listed}' + (f'; and {more} more' if more > 0 else '')

    def to_dict(self) -> dict:
        """JSON-serialisable form (for a node's attributes)."""
        return {'n_frames': self.n_frames, 'kept': [int(i) for i in self.kept],
                'rejected': [dataclasses.asdict(r) for r in self.rejected], 'summary': self.summary()}


def prelabel_filter(frames: Sequence[Atoms], table: dict[tuple[str, str], float]) -> FilterResult:
    """Refuse frames that no DFT label should be paid for: atoms closer than their pair's minimum, or NaN/inf.

    Distances honour the frame's ``pbc`` (minimum image); a QD in a non-periodic box uses plain distances. Each
    frame is checked with ``ase.neighborlist.neighbor_list`` up to the largest minimum of the table. An atom's own
    periodic images are not checked (a cell that short is not a QD box).

    :param frames: the MD frames (``ase.Atoms``), in order; indices in the result refer to this order.
    :param table: minimum distances (Å) per element pair, from :func:`min_distance_table`.
    :returns: :class:`FilterResult` with ``kept`` (indices), ``rejected`` (one :class:`Rejection` per refused frame,
        naming the pair closest relative to its limit) and ``summary()``.
    :raises ValueError: if an element of a frame has no entry in ``table``.
    """
    table = {_pair(*key): float(value) for key, value in table.items()}
    if not table:
        raise ValueError('the minimum-distance table is empty')
    bad = {key: value for key, value in table.items() if not (np.isfinite(value) and value > 0)}
    if bad:
        raise ValueError(f'minimum distances must be positive and finite (Å), got {bad}')
    cutoff = max(table.values())
    kept, rejected = [], []
    for index, atoms in enumerate(frames):
        positions = atoms.get_positions()
        broken = np.flatnonzero(~np.isfinite(positions).all(axis=1))
        if broken.size:
            rejected.append(Rejection(frame=index, reason='non-finite', atoms=(int(broken[0]),)))
            continue
        symbols = atoms.get_chemical_symbols()
        kinds = sorted(set(symbols))
        missing = [_pair(a, b) for a, b in itertools.combinations_with_replacement(kinds, 2)
                   if _pair(a, b) not in table]
        if missing:
            raise ValueError(f'frame {index}: no minimum distance for the pair(s) {missing}; build the table from '
                             'all elements of the trajectory')
        limits = np.array([[table[_pair(a, b)] for b in kinds] for a in kinds])
        kind = np.array([kinds.index(s) for s in symbols])
        first, second, distance = neighbor_list('ijd', atoms, cutoff)
        once = first < second
        first, second, distance = first[once], second[once], distance[once]
        minimum = limits[kind[first], kind[second]]
        close = np.flatnonzero(distance < minimum)
        if close.size == 0:
            kept.append(index)
            continue
        worst = close[np.argmin(distance[close] / minimum[close])]
        i, j = int(first[worst]), int(second[worst])
        rejected.append(Rejection(frame=index, reason='too close', pair=(symbols[i], symbols[j]), atoms=(i, j),
                                  distance=float(distance[worst]), minimum=float(minimum[worst]),
                                  n_close_pairs=int(close.size)))
    return FilterResult(kept=np.array(kept, dtype=int), rejected=tuple(rejected), n_frames=len(frames))


def last_agreed_frame(max_devi_f, limit: float) -> int:
    """Index of the last frame before the first one whose force deviation exceeds ``limit`` (eV/Å; a non-finite
    deviation counts as exceeding it), or of the last frame when none does; 0 when the first frame does. Frames after
    a first excursion are not trusted even where the deviation came back down."""
    devi = np.asarray(max_devi_f, dtype=float)
    if devi.ndim != 1 or devi.size == 0:
        raise ValueError(f'max_devi_f must be a non-empty series (one value per frame), got shape {devi.shape}')
    if not limit > 0:
        raise ValueError(f'limit must be a force deviation > 0 eV/Å, got {limit}')
    above = np.flatnonzero(~(devi <= limit))
    end = int(above[0]) if above.size else devi.size
    return max(end - 1, 0)


def max_force_error(model_forces, dft_forces) -> np.ndarray:
    """True force error per frame: ``max over atoms of |F_model_mean − F_DFT|`` (eV/Å).

    :param model_forces: ``(n_models, n_frames, n_atoms, 3)`` ensemble forces (averaged over the models), or
        ``(n_frames, n_atoms, 3)`` forces already averaged (or of a single model), in eV/Å.
    :param dft_forces: ``(n_frames, n_atoms, 3)`` DFT forces of the same frames, in eV/Å.
    :returns: ``(n_frames,)`` the largest per-atom error norm of each frame.
    """
    dft = np.asarray(dft_forces, dtype=float)
    model = np.asarray(model_forces, dtype=float)
    if dft.ndim != 3 or dft.shape[-1] != 3 or dft.shape[0] == 0:
        raise ValueError(f'dft_forces must have shape (n_frames >= 1, n_atoms, 3), got {dft.shape}')
    if model.shape == dft.shape:
        mean = model
    elif model.ndim == 4 and model.shape[1:] == dft.shape and model.shape[0] >= 1:
        mean = model.mean(axis=0)
    else:
        raise ValueError(f'model_forces must have shape {dft.shape} or (n_models, *{dft.shape}), got {model.shape}')
    error = np.linalg.norm(mean - dft, axis=-1).max(axis=-1)
    if not np.all(np.isfinite(error)):
        raise ValueError(f'non-finite forces in frame(s) {np.flatnonzero(~np.isfinite(error)).tolist()}')
    return error


def _check_pair_of_series(max_devi_f, true_error) -> tuple[np.ndarray, np.ndarray]:
    devi = np.asarray(max_devi_f, dtype=float)
    true = np.asarray(true_error, dtype=float)
    if devi.ndim != 1 or devi.shape != true.shape or devi.size == 0:
        raise ValueError(f'max_devi_f {devi.shape} and true error {true.shape} must be equal, non-empty 1-D arrays '
                         '(one value per labelled frame)')
    for name, values in (('max_devi_f', devi), ('true error', true)):
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            raise ValueError(f'{name} must be finite and >= 0, got {values[~np.isfinite(values) | (values < 0)][:3]}')
    return devi, true


def _check_levels(trust_lo, trust_hi):
    if not 0 <= trust_lo < trust_hi:
        raise ValueError(f'trust levels must satisfy 0 <= trust_lo < trust_hi, got trust_lo={trust_lo}, '
                         f'trust_hi={trust_hi} (eV/Å)')


def _optional(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def deviation_error_relation(max_devi_f, true_force_error, trust_lo: float | None = None,
                             trust_hi: float | None = None) -> dict[str, float | int | None]:
    """How well the ensemble deviation tracks the true force error on a labelled batch (all in eV/Å).

    :param max_devi_f: ``(n_frames,)`` ensemble force deviation of the labelled frames.
    :param true_force_error: ``(n_frames,)`` true error of the same frames, from :func:`max_force_error`.
    :param trust_lo: with ``trust_hi``, the levels the frames were (or would be) classified by.
    :returns: a JSON-safe dict (``None`` where a number is undefined):

        * ``n_frames``; ``spearman_rho`` (rank correlation; ``None`` for fewer than 3 frames or a constant series),
          ``pearson_r``;
        * ``ratio_p10``, ``ratio_p50``, ``ratio_p90``: percentiles of ``true error / max_devi_f`` over frames with
          a non-zero deviation (``n_zero_deviation`` others). A median of 2 says the true error is typically twice
          the deviation, so a trust level meant as an error level should be halved;
        * with trust levels: ``n_accurate``, ``n_candidate``, ``n_failed`` by deviation;
          ``n_missed`` / ``missed_fraction`` (of all frames): true error ``>= trust_hi`` yet deviation ``< trust_lo``
          — a frame the selection calls accurate although its forces are as wrong as a failed frame's;
          ``accurate_above_lo_fraction``: of the frames called accurate, the fraction with true error
          ``>= trust_lo``; ``candidate_below_lo_fraction``: of the candidates, the fraction whose true error is
          already ``< trust_lo`` (labels that taught the model little); ``accurate_error_p95``: 95th percentile of
          the true error of the frames called accurate.
    """
    from scipy import stats

    devi, true = _check_pair_of_series(max_devi_f, true_force_error)
    varied = devi.size >= 3 and np.ptp(devi) > 0 and np.ptp(true) > 0
    result: dict[str, float | int | None] = {
        'n_frames': int(devi.size),
        'spearman_rho': _optional(stats.spearmanr(devi, true).statistic) if varied else None,
        'pearson_r': _optional(stats.pearsonr(devi, true).statistic) if varied else None,
    }
    nonzero = devi > 0
    ratio = true[nonzero] / devi[nonzero]
    for q in (10, 50, 90):
        result[f'ratio_p{q}'] = float(np.percentile(ratio, q)) if ratio.size else None
    result['n_zero_deviation'] = int(np.count_nonzero(~nonzero))
    if trust_lo is None and trust_hi is None:
        return result
    if trust_lo is None or trust_hi is None:
        raise ValueError('give both trust_lo and trust_hi, or neither')
    _check_levels(trust_lo, trust_hi)
    accurate = devi < trust_lo
    candidate = (devi >= trust_lo) & (devi < trust_hi)
    missed = accurate & (true >= trust_hi)
    result.update({
        'n_accurate': int(accurate.sum()),
        'n_candidate': int(candidate.sum()),
        'n_failed': int((devi >= trust_hi).sum()),
        'n_missed': int(missed.sum()),
        'missed_fraction': float(missed.mean()),
        'accurate_above_lo_fraction': float((true[accurate] >= trust_lo).mean()) if accurate.any() else None,
        'candidate_below_lo_fraction': float((true[candidate] < trust_lo).mean()) if candidate.any() else None,
        'accurate_error_p95': float(np.percentile(true[accurate], 95)) if accurate.any() else None,
    })
    return result


@dataclasses.dataclass(frozen=True)
class AdaptiveLevel:
    """Outcome of :func:`adaptive_trust_lo`."""

    trust_lo: float  #: eV/Å; equals ``trust_hi`` when no frame is left to be a candidate
    candidates: np.ndarray  #: frame indices with ``trust_lo <= max_devi_f < trust_hi``
    n_requested: int  #: ``min(max(numb_candi, int(rate_candi × n_not_failed)), n_not_failed)``
    n_failed: int


def adaptive_trust_lo(max_devi_f, trust_hi: float, numb_candi: int = 20, rate_candi: float = 0.01) -> AdaptiveLevel:
    """Lower trust level set so that a fixed number of frames become candidates (dpgen2's adaptive lower level).

    The rule of dpgen2's ``adaptive-lower`` exploration report: frames with ``max_devi_f >= trust_hi`` are failed;
    of the other ``n`` frames, the ``k = max(numb_candi, int(rate_candi × n))`` (at most ``n``) with the **largest**
    deviation become candidates, and ``trust_lo`` is the smallest deviation among them. With ``k = 0`` (no frame
    below ``trust_hi``) ``trust_lo = trust_hi``. So the level follows the model: as the ensemble improves, the same
    number of frames is labelled from ever lower deviations, and the level's drift between iterations is the
    convergence signal (:func:`adaptive_trust_lo_converged`).

    Two differences from dpgen2: a frame exactly at ``trust_hi`` is failed here (dpgen2: ``> level_f_hi``), as in
    :func:`~aiida_qdtraps.analysis.mlff.select_by_deviation`; and frames tied with the ``k``-th deviation are all
    candidates (dpgen2 takes exactly ``k``), so that passing ``trust_lo`` to ``select_by_deviation`` selects the same
    set. dpgen2's defaults are ``numb_candi_f`` 200 and ``rate_candi_f`` 0.01 for explorations of thousands of frames;
    the default ``numb_candi`` 20 here is the ``moderate`` protocol's cap on labels per iteration.

    :param max_devi_f: ``(n_frames,)`` ensemble force deviation (eV/Å).
    :param trust_hi: upper trust level (eV/Å).
    """
    devi = np.asarray(max_devi_f, dtype=float)
    if devi.ndim != 1 or devi.size == 0 or not np.all(np.isfinite(devi)):
        raise ValueError(f'max_devi_f must be a non-empty 1-D array of finite values, got shape {devi.shape}')
    if not (np.isfinite(trust_hi) and trust_hi > 0):
        raise ValueError(f'trust_hi must be a positive deviation in eV/Å, got {trust_hi}')
    if int(numb_candi) < 0 or not 0 <= rate_candi <= 1:
        raise ValueError(f'numb_candi must be >= 0 and rate_candi in [0, 1], got {numb_candi}, {rate_candi}')
    not_failed = np.flatnonzero(devi < trust_hi)
    n_failed = int(devi.size - not_failed.size)
    k = min(max(int(numb_candi), int(rate_candi * not_failed.size)), int(not_failed.size))
    if k == 0:
        return AdaptiveLevel(trust_lo=float(trust_hi), candidates=np.array([], dtype=int), n_requested=0,
                             n_failed=n_failed)
    trust_lo = float(np.sort(devi[not_failed])[-k])
    candidates = np.flatnonzero((devi >= trust_lo) & (devi < trust_hi))
    return AdaptiveLevel(trust_lo=trust_lo, candidates=candidates, n_requested=k, n_failed=n_failed)


def adaptive_trust_lo_converged(levels: Sequence[float], tolerance: float = 0.05, n_checked: int = 2) -> bool:
    """dpgen2's convergence test of the adaptive lower level: the last ``n_checked`` levels (eV/Å, one per
    iteration, oldest first) each differ from the one before by less than ``tolerance`` (dpgen2's defaults: 0.05
    eV/Å over 2 iterations). Fewer than ``max(n_checked, 2)`` levels is not converged."""
    if n_checked < 1 or not tolerance > 0:
        raise ValueError(f'n_checked must be >= 1 and tolerance > 0, got {n_checked}, {tolerance}')
    recent = np.asarray(levels, dtype=float)[-n_checked:]
    if len(levels) < max(n_checked, 2) or recent.size < 2:
        return False
    return bool(np.all(np.abs(np.diff(recent)) < tolerance))


@dataclasses.dataclass(frozen=True)
class TrustCalibration:
    """Outcome of :func:`calibrated_trust_levels` (levels in eV/Å)."""

    trust_lo: float
    trust_hi: float | None  #: ``hi_ratio × trust_lo``; ``None`` when ``trust_lo`` is 0
    n_below: int  #: labelled frames with ``max_devi_f < trust_lo``
    fraction_within_target: float | None  #: of those, the fraction with true error ``<= target_error``
    trust_lo_from_ratio: float | None  #: ``target_error / P_quantile(true / max_devi_f)``, a cross-check
    reason: str


def calibrated_trust_levels(max_devi_f, true_error, target_error: float, quantile: float = 0.95,
                            hi_ratio: float = 3.0) -> TrustCalibration:
    """Lower trust level from a labelled batch: below it, at least ``quantile`` of the frames are within the target.

    Rule: sort the labelled frames by ``max_devi_f``; take the **largest** set of lowest-deviation frames (never
    splitting tied deviations) in which a fraction ``>= quantile`` has true error ``<= target_error``; put
    ``trust_lo`` midway between the largest deviation in that set and the next one (just above the largest
    deviation seen when the whole batch qualifies: the batch then bounds the level only from below). If not even the
    lowest-deviation frame qualifies, ``trust_lo`` is 0 and every frame below ``trust_hi`` becomes a candidate.

    ``trust_hi`` is not calibrated (a labelled batch rarely holds the broken frames that define it): it is
    ``hi_ratio × trust_lo``, 3 by default, the ratio of the usual 0.05 / 0.15 eV/Å levels of DP-GEN and dpgen2.

    ``trust_lo_from_ratio`` is the level a proportional model gives: the true error is at most
    ``P_quantile(true / deviation)`` × the deviation for ``quantile`` of the frames, so that deviation level maps
    to ``target_error``. A large gap between the two levels says the deviation tracks the error poorly on this
    batch (see :func:`deviation_error_relation`).

    :param max_devi_f: ``(n_frames,)`` ensemble force deviation of labelled frames (eV/Å).
    :param true_error: ``(n_frames,)`` their true error, from :func:`max_force_error` (eV/Å).
    :param target_error: largest acceptable true force error of an *accurate* frame (eV/Å), e.g. 0.10–0.15.
    :param quantile: fraction of the frames below ``trust_lo`` that must meet the target, in (0, 1].
    """
    devi, true = _check_pair_of_series(max_devi_f, true_error)
    if not (np.isfinite(target_error) and target_error > 0):
        raise ValueError(f'target_error must be a positive force error in eV/Å, got {target_error}')
    if not 0 < quantile <= 1:
        raise ValueError(f'quantile must be in (0, 1], got {quantile}')
    if not hi_ratio > 1:
        raise ValueError(f'hi_ratio must be > 1, got {hi_ratio}')
    order = np.argsort(devi, kind='stable')
    devi_sorted, within = devi[order], (true[order] <= target_error)
    prefix_fraction = np.cumsum(within) / np.arange(1, devi.size + 1)
    boundary = np.append(devi_sorted[1:] > devi_sorted[:-1], True)  # prefix k = i + 1 does not split a tie
    ok = np.flatnonzero(boundary & (prefix_fraction >= quantile - 1e-12))
    nonzero = devi > 0
    ratio_q = float(np.quantile(true[nonzero] / devi[nonzero], quantile)) if nonzero.any() else 0.0
    from_ratio = target_error / ratio_q if ratio_q > 0 else None
    if ok.size == 0:
        return TrustCalibration(trust_lo=0.0, trust_hi=None, n_below=0, fraction_within_target=None,
                                trust_lo_from_ratio=from_ratio,
                                reason=f'no set of lowest-deviation frames has {quantile:.0%} within '
                                       f'{target_error} eV/Å: every frame is a candidate')
    last = int(ok[-1])
    n_below = last + 1
    if n_below == devi.size:
        trust_lo = float(np.nextafter(devi_sorted[-1], np.inf))
        where = 'just above the largest deviation of the batch'
    else:
        trust_lo = float(0.5 * (devi_sorted[last] + devi_sorted[last + 1]))
        where = f'between {devi_sorted[last]:.4g} and {devi_sorted[last + 1]:.4g} eV/Å'
    fraction = float(prefix_fraction[last])
    return TrustCalibration(trust_lo=trust_lo, trust_hi=hi_ratio * trust_lo, n_below=n_below,
                            fraction_within_target=fraction, trust_lo_from_ratio=from_ratio,
                            reason=f'{n_below} of {devi.size} frames below trust_lo {trust_lo:.4g} eV/Å ({where}); '
                                   f'{fraction:.0%} of them within {target_error} eV/Å')


def next_trust_levels(max_devi_f, true_error, trust_lo: float, trust_hi: float, target_error: float,
                      quantile: float = 0.95, min_points: int = 20, hi_ratio: float = 3.0) -> dict:
    """The trust levels of the next selection: calibrated on the labelled frames so far, or the given ones.

    With at least ``min_points`` labelled frames (deviation and true error each), the levels are those of
    :func:`calibrated_trust_levels`; where that gives no ``trust_hi`` (``trust_lo`` 0: not even the lowest-deviation
    frame met the target), ``trust_hi`` stays the given one. With fewer frames the given levels are used.

    :param max_devi_f: ``(n,)`` ensemble force deviation of every labelled frame so far, eV/Å (may be empty).
    :param true_error: ``(n,)`` their true force error (:func:`max_force_error`), eV/Å.
    :param trust_lo: the given lower trust level (eV/Å), the fall-back.
    :param trust_hi: the given upper trust level (eV/Å), the fall-back.
    :param target_error: largest acceptable true force error of an accurate frame (eV/Å).
    :param quantile: see :func:`calibrated_trust_levels`.
    :param min_points: fewest labelled frames that are calibrated on, >= 1.
    :param hi_ratio: ``trust_hi / trust_lo`` of calibrated levels, > 1.
    :returns: JSON-safe dict: ``trust_lo``, ``trust_hi`` (eV/Å), ``source`` (``'calibrated'`` or ``'given'``),
        ``reason`` (one line), ``n_points``, and for calibrated levels ``n_below``, ``fraction_within_target``,
        ``trust_lo_from_ratio``.
    """
    _check_levels(trust_lo, trust_hi)
    if isinstance(min_points, bool) or not isinstance(min_points, (int, np.integer)) or min_points < 1:
        raise ValueError(f'min_points must be an integer >= 1, got {min_points!r}')
    devi = np.asarray(max_devi_f, dtype=float).ravel()
    true = np.asarray(true_error, dtype=float).ravel()
    if devi.shape != true.shape:
        raise ValueError(f'max_devi_f ({devi.size} values) and true_error ({true.size} values) must pair up, one '
                         'value each per labelled frame')
    result = {'trust_lo': float(trust_lo), 'trust_hi': float(trust_hi), 'source': 'given', 'n_points': int(devi.size),
              'target_error': float(target_error), 'quantile': float(quantile)}
    if devi.size < min_points:
        result['reason'] = (f'{devi.size} labelled frame(s) with a true error, fewer than min_points {min_points}: '
                            'the given levels')
        return result
    calibration = calibrated_trust_levels(devi, true, target_error, quantile, hi_ratio)
    result.update(trust_lo=calibration.trust_lo, source='calibrated', n_below=calibration.n_below,
                  fraction_within_target=calibration.fraction_within_target,
                  trust_lo_from_ratio=calibration.trust_lo_from_ratio, reason=calibration.reason)
    if calibration.trust_hi is not None:
        result['trust_hi'] = float(calibration.trust_hi)
    else:
        result['reason'] += f'; trust_hi stays the given {trust_hi} eV/Å'
    return result


def validation_converged(force_rmse_eV_A: float, energy_rmse_meV_atom: float, force_target: float = 0.10,
                         energy_target: float = 1.0, accurate_fraction: float | None = None,
                         accurate_target: float = 0.95, failed_fraction: float | None = None,
                         failed_target: float = 0.0) -> tuple[bool, str]:
    """Stop criterion of the active-learning loop: every given check must hold.

    * validation force RMSE ``<= force_target`` eV/Å (per force component, as ``dp test`` reports it; default
      0.10);
    * validation energy RMSE ``<= energy_target`` meV/atom (default 1.0: Sowa et al. stop at an energy MAE below
      1 meV/atom, and RMSE >= MAE, so this is at least as strict);
    * if given, the accurate fraction of the last exploration ``>= accurate_target`` (default 0.95, the ``moderate``
      protocol's; dpgen2's fixed-level check uses 0.9);
    * if given, the failed fraction ``<= failed_target`` (default 0: a model that drives any MD frame past
      ``trust_hi`` is not done).

    :returns: ``(converged, reason)``, the reason naming each check with its value and target, failed checks first.
    """
    checks = []

    def check(name: str, value, target: float, unit: str, upper: bool):
        if not np.isfinite(value) or value < 0:
            raise ValueError(f'{name} must be a finite number >= 0, got {value}')
        ok = value <= target if upper else value >= target
        sign = ('≤' if ok else '>') if upper else ('≥' if ok else '<')
        checks.append((ok, f'{name} {value:.3g} {sign} {target:.3g}{unit}'))

    check('force RMSE', force_rmse_eV_A, force_target, ' eV/Å', upper=True)
    check('energy RMSE', energy_rmse_meV_atom, energy_target, ' meV/atom', upper=True)
    if accurate_fraction is not None:
        check('accurate fraction', accurate_fraction, accurate_target, '', upper=False)
    if failed_fraction is not None:
        check('failed fraction', failed_fraction, failed_target, '', upper=True)
    converged = all(ok for ok, _ in checks)
    ordered = [text for ok, text in checks if not ok] + [text for ok, text in checks if ok]
    return converged, ('converged: ' if converged else 'not converged: ') + ', '.join(ordered)
