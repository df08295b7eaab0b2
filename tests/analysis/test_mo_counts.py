"""The MO window and ADDED_MOS scale with the QD's core, the protocol's numbers as minimum."""

from __future__ import annotations

import pytest

from aiida_qdtraps.analysis.mo_counts import more_virtuals, scaled_mo_counts

FAST = {'occupied': 10, 'virtual': 10, 'added_mos': 12}
MODERATE = {'occupied': 20, 'virtual': 20, 'added_mos': 30}


@pytest.mark.parametrize('n_core, protocol, expected', [
    # In4PF9 (14 atoms, 5 core): the protocols' numbers stand
    (5, FAST, (10, 10, 12)),
    (5, MODERATE, (20, 20, 30)),
    # In10P4F18 (32 atoms, 14 core): 14 + 3 virtual; the recorded CBM is its 7th virtual MO
    (14, FAST, (14, 17, 19)),
    (14, MODERATE, (20, 20, 30)),
    # Cd16Se13Cl6 (35 atoms, 29 core)
    (29, FAST, (29, 32, 34)),
    (29, MODERATE, (29, 32, 42)),
    # In38P28F30 (96 atoms, 66 core)
    (66, FAST, (66, 69, 71)),
    (66, MODERATE, (66, 69, 79)),
    (0, FAST, (10, 10, 12)),
])
def test_scaled_counts(n_core, protocol, expected):
    counts = scaled_mo_counts(n_core, **protocol)
    assert (counts['occupied'], counts['virtual'], counts['added_mos']) == expected


def test_scaled_counts_keep_at_least_the_window_when_the_protocol_has_no_margin():
    assert scaled_mo_counts(29, occupied=10, virtual=10, added_mos=8) == {'occupied': 29, 'virtual': 32,
                                                                         'added_mos': 32}
    assert scaled_mo_counts(29, 10, 10, 12, quantum_confined_virtuals=0)['virtual'] == 29


@pytest.mark.parametrize('kwargs, match', [
    ({'n_core': -1}, 'n_core must be a non-negative integer, got -1'),
    ({'n_core': 2.5}, 'n_core must be a non-negative integer, got 2.5'),
    ({'occupied': 0}, 'occupied must be a positive integer, got 0'),
    ({'virtual': True}, 'virtual must be a positive integer, got True'),
    ({'added_mos': -4}, 'added_mos must be a positive integer, got -4'),
    ({'quantum_confined_virtuals': -1}, 'quantum_confined_virtuals must be a non-negative integer, got -1'),
])
def test_scaled_counts_name_a_bad_value(kwargs, match):
    arguments = {'n_core': 5, **FAST, **kwargs}
    with pytest.raises(ValueError, match=match):
        scaled_mo_counts(**arguments)


def test_more_virtuals_doubles_the_window_and_keeps_the_margin():
    assert more_virtuals(32, 34) == {'virtual': 64, 'added_mos': 66}
    assert more_virtuals(20, 30) == {'virtual': 40, 'added_mos': 50}
    assert more_virtuals(32, 34, available=50) == {'virtual': 50, 'added_mos': 50}
    assert more_virtuals(50, 50, available=50) is None
    with pytest.raises(ValueError, match='virtual must be a positive integer, got 0'):
        more_virtuals(0, 10)
