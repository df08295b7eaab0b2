"""Frame selection, common box and gap series for single points along a trajectory."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_qdtraps.analysis.md_frames import common_box_length, frame_indices, gap_series_from_frames


def test_frame_indices():
    assert frame_indices(10).tolist() == list(range(10))
    assert frame_indices(10, start=2, every=3).tolist() == [2, 5, 8]
    assert frame_indices(10, start=1, every=2, max_frames=3).tolist() == [1, 3, 5]


@pytest.mark.parametrize('kwargs, match', [
    ({'n_frames': 0}, 'no frames'),
    ({'n_frames': 5, 'start': 5}, 'start = 5 is outside the trajectory of 5 frames'),
    ({'n_frames': 5, 'start': -1}, 'start = -1'),
    ({'n_frames': 5, 'every': 0}, 'every must be >= 1, got 0'),
    ({'n_frames': 5, 'every': 1.5}, 'every must be an integer, got 1.5'),
    ({'n_frames': 5, 'max_frames': 0}, 'max_frames must be a positive integer, got 0'),
    ({'n_frames': 5, 'start': 3, 'every': 5}, 'select 1 frame'),
])
def test_bad_selection_is_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        frame_indices(**kwargs)


def test_common_box_holds_the_largest_frame():
    # frame 1 stretches to 6 Å along z: edge ceil(6 + 2 * 3) = 12 for both frames
    positions = np.zeros((2, 2, 3))
    positions[0, 1] = [1.0, 0.0, 0.0]
    positions[1, 1] = [0.0, 0.0, 6.0]
    assert common_box_length(positions, 3.0) == 12.0
    assert common_box_length(positions[:1], 3.0) == 7.0
    with pytest.raises(ValueError, match='vacuum must be positive'):
        common_box_length(positions, 0.0)
    with pytest.raises(ValueError, match='NaN'):
        common_box_length(np.full((1, 2, 3), np.nan), 3.0)


def test_gap_series():
    series = gap_series_from_frames([0.0, 2.0, 4.0], [-6.0, -6.1, -5.9], [-2.0, -2.2, -2.0])
    assert series['gap_ev'] == pytest.approx([4.0, 3.9, 3.9])
    assert series['timestep_fs'] == 2.0


@pytest.mark.parametrize('times, homo, lumo, match', [
    ([0.0, 1.0, 3.0], [-6.0] * 3, [-2.0] * 3, 'not evenly spaced'),
    ([0.0, 1.0], [-6.0, np.nan], [-2.0, -2.0], r'HOMO is not finite at frame\(s\) \[1\]'),
    ([0.0, 1.0], [-6.0, -6.0], [-2.0], 'one length'),
    ([0.0], [-6.0], [-2.0], 'at least two frames'),
    ([0.0, 1.0], [-6.0, -1.0], [-2.0, -2.0], r'LUMO at or below the HOMO at frame\(s\) \[1\]'),
])
def test_bad_gap_series_is_named(times, homo, lumo, match):
    with pytest.raises(ValueError, match=match):
        gap_series_from_frames(times, homo, lumo)
