"""How many MOs the hybrid SCF computes and keeps for the trap labelling, scaled with the QD (pure; no AiiDA).

The band-edge scan of :mod:`.traps` needs the window to reach past the surface states on both sides of the gap: up
from the LUMO to the first band-like conduction state (the CBM) beyond the ``quantum_confined_virtuals`` it skips,
down from the HOMO to the first band-like valence state (the VBM). In the small QDs computed here the states in
between are localised on the under-coordinated core atoms and on ligands, and their number grows with the core: the
CBM of the recorded PBE0 runs (``fast``) is the 4th virtual MO of In4PF9 (5 core atoms) and the 7th / 8th of
In10P4F18 and its F⁻ vacancy (14 core atoms). A window of fixed size (the protocols' 10 or 20 virtual MOs) is
therefore too small for larger QDs: a 35-atom Cd16Se13Cl6 (29 core atoms) was refused with no band-like conduction
state in its window of 20 MOs.

The rule (docs/traps.md): one MO per core (non-ligand) atom on each side, plus the skipped quantum-confined virtuals
on the virtual side, never fewer than the protocol's numbers:

* ``occupied = max(protocol occupied, n_core)``
* ``virtual = max(protocol virtual, n_core + quantum_confined_virtuals)``
* ``ADDED_MOS = max(protocol ADDED_MOS, virtual + protocol margin)``, the margin being the protocol's
  ``ADDED_MOS − virtual`` (2 for ``fast``, 10 for ``moderate``/``precise``), so that the window never needs the
  highest computed MOs.

When the window still holds no band-like conduction state, the pipeline computes more virtual MOs from the converged
wavefunction (:func:`more_virtuals`).
"""

from __future__ import annotations

#: the ``quantum_confined_virtuals`` default of :class:`aiida_qdtraps.analysis.traps.LabelingParameters`
QUANTUM_CONFINED_VIRTUALS = 3
#: how many times the pipeline asks for more virtual MOs before it gives up
MAX_VIRTUAL_ATTEMPTS = 2


def _positive(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'{name} must be a positive integer, got {value!r}')
    return value


def scaled_mo_counts(n_core: int, occupied: int, virtual: int, added_mos: int,
                     quantum_confined_virtuals: int = QUANTUM_CONFINED_VIRTUALS) -> dict[str, int]:
    """The MO window and ``ADDED_MOS`` for a QD with ``n_core`` non-ligand atoms, the protocol's numbers as minimum.

    :param n_core: cations + anions of the QD (every atom that is not a ligand).
    :param occupied: the protocol's occupied MOs in the window.
    :param virtual: the protocol's virtual MOs in the window.
    :param added_mos: the protocol's ``ADDED_MOS``.
    :param quantum_confined_virtuals: the lowest virtual MOs the band-edge scan skips.
    :returns: ``{'occupied': ..., 'virtual': ..., 'added_mos': ...}``.
    :raises ValueError: for a negative ``n_core`` or ``quantum_confined_virtuals``, or a non-positive protocol number.
    """
    if isinstance(n_core, bool) or not isinstance(n_core, int) or n_core < 0:
        raise ValueError(f'n_core must be a non-negative integer, got {n_core!r}')
    if isinstance(quantum_confined_virtuals, bool) or not isinstance(quantum_confined_virtuals, int) \
            or quantum_confined_virtuals < 0:
        raise ValueError(f'quantum_confined_virtuals must be a non-negative integer, got {quantum_confined_virtuals!r}')
    occupied, virtual = _positive('occupied', occupied), _positive('virtual', virtual)
    added_mos = _positive('added_mos', added_mos)
    margin = max(added_mos - virtual, 0)
    scaled_occupied = max(occupied, n_core)
    scaled_virtual = max(virtual, n_core + quantum_confined_virtuals)
    return {'occupied': scaled_occupied, 'virtual': scaled_virtual,
            'added_mos': max(added_mos, scaled_virtual + margin)}


def more_virtuals(virtual: int, added_mos: int, available: int | None = None) -> dict[str, int] | None:
    """The next, larger request after a window of ``virtual`` MOs held no band-like conduction state: twice the
    virtual MOs, ``ADDED_MOS`` grown by as much (keeping its margin over the window).

    :param available: how many virtual MOs the basis has (AOs − occupied MOs), when known; the request is capped there.
    :returns: ``{'virtual': ..., 'added_mos': ...}``, or None when the window already holds every virtual MO.
    """
    virtual, added_mos = _positive('virtual', virtual), _positive('added_mos', added_mos)
    margin = max(added_mos - virtual, 0)
    new_virtual, new_added = 2 * virtual, 2 * virtual + margin
    if available is not None:
        if virtual >= available:
            return None
        new_virtual, new_added = min(new_virtual, available), min(new_added, available)
    return {'virtual': new_virtual, 'added_mos': new_added}
