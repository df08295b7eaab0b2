"""Frames of an MD trajectory for single points along it: which frames, in which box, and the gap series they give.

Pure functions on numpy arrays (no AiiDA). The electronic structure along a trajectory (Bhati et al., HOMO/LUMO and
gap fluctuations of Cd17Se28 at 300 K) needs the same single point on evenly spaced frames, all in one box, so that
the grid is the same for every frame and the time between gaps is constant.
"""

from __future__ import annotations

import numpy as np

__all__ = ['common_box_length', 'frame_indices', 'gap_series_from_frames']


def frame_indices(n_frames: int, start: int = 0, every: int = 1, max_frames: int | None = None) -> np.ndarray:
    """Indices ``start, start + every, ...`` of a trajectory of ``n_frames`` frames, at most ``max_frames`` of them.

    :raises ValueError: naming the value, for a start outside the trajectory, a stride below 1, a cap below 1, or
        fewer than two frames selected (a series needs two).
    """
    if not isinstance(n_frames, (int, np.integer)) or n_frames < 1:
        raise ValueError(f'the trajectory has no frames (n_frames={n_frames!r})')
    for name, value in (('start', start), ('every', every)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise ValueError(f'frames.{name} must be an integer, got {value!r}')
    if not 0 <= start < n_frames:
        raise ValueError(f'frames.start = {start} is outside the trajectory of {n_frames} frames')
    if every < 1:
        raise ValueError(f'frames.every must be >= 1, got {every}')
    indices = np.arange(start, n_frames, every)
    if max_frames is not None:
        if not isinstance(max_frames, (int, np.integer)) or isinstance(max_frames, bool) or max_frames < 1:
            raise ValueError(f'frames.max_frames must be a positive integer, got {max_frames!r}')
        indices = indices[:max_frames]
    if len(indices) < 2:
        raise ValueError(f'frames start={start}, every={every} select {len(indices)} frame(s) of {n_frames}: a gap '
                         'series needs at least two')
    return indices


def common_box_length(positions: np.ndarray, vacuum: float) -> float:
    """Edge (Å) of the one cubic box that holds every frame with at least ``vacuum`` Å on each side (whole Å, as
    :func:`aiida_qdtraps.builder.qd.put_in_box` rounds it), so all single points share one grid.

    :param positions: (F, N, 3) in Å.
    """
    positions = np.asarray(positions, dtype=float)
    if positions.ndim != 3 or positions.shape[2] != 3:
        raise ValueError(f'positions must have shape (frames, atoms, 3), got {positions.shape}')
    if not np.isfinite(positions).all():
        raise ValueError('positions contain NaN or inf')
    if not vacuum > 0:
        raise ValueError(f'vacuum must be positive, got {vacuum!r}')
    extent = (positions.max(axis=1) - positions.min(axis=1)).max()
    return float(np.ceil(extent + 2 * vacuum))


def gap_series_from_frames(times_fs, homo_ev, lumo_ev, rtol: float = 1e-6) -> dict:
    """HOMO, LUMO and gap series (eV) with their constant time step (fs).

    :raises ValueError: for arrays of different lengths, fewer than two frames, non-finite values, times that do not
        increase by one constant step (the dephasing and the NAC need it), or a LUMO below the HOMO.
    """
    times = np.asarray(times_fs, dtype=float)
    homo = np.asarray(homo_ev, dtype=float)
    lumo = np.asarray(lumo_ev, dtype=float)
    if not times.shape == homo.shape == lumo.shape or times.ndim != 1:
        raise ValueError(f'times, HOMO and LUMO must be 1-D of one length, got {times.shape}, {homo.shape}, '
                         f'{lumo.shape}')
    if len(times) < 2:
        raise ValueError(f'a gap series needs at least two frames, got {len(times)}')
    for name, values in (('times', times), ('HOMO', homo), ('LUMO', lumo)):
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise ValueError(f'{name} is not finite at frame(s) {bad.tolist()}')
    steps = np.diff(times)
    if steps[0] <= 0 or not np.allclose(steps, steps[0], rtol=rtol, atol=1e-9):
        raise ValueError(f'the frames are not evenly spaced in time: steps {np.unique(steps.round(6)).tolist()} fs')
    gaps = lumo - homo
    if (gaps <= 0).any():
        raise ValueError(f'LUMO at or below the HOMO at frame(s) {np.flatnonzero(gaps <= 0).tolist()}')
    return {'times_fs': times, 'homo_ev': homo, 'lumo_ev': lumo, 'gap_ev': gaps, 'timestep_fs': float(steps[0])}
