"""Input protocols (YAML) and the per-element CP2K settings they share."""

from __future__ import annotations

import functools
import pathlib
import re

import yaml

PROTOCOL_DIR = pathlib.Path(__file__).parent


@functools.cache
def element_settings() -> dict[str, dict]:
    """Per-element CP2K settings from ``elements.yaml`` (valence of the GTH pseudopotential, ADMM basis)."""
    return yaml.safe_load((PROTOCOL_DIR / 'elements.yaml').read_text())


def kind_sections(elements, basis_set: str, admm: bool = False) -> list[dict]:
    """CP2K ``&KIND`` sections (aiida-cp2k dict form) for ``elements``.

    :raises ValueError: naming the elements that have no pseudopotential/basis entry.
    """
    table = element_settings()
    missing = sorted(set(elements) - set(table))
    if missing:
        raise ValueError(f'no CP2K basis/pseudopotential settings for element(s) {missing}; '
                         f'supported: {sorted(table)}')
    kinds = []
    for element in sorted(set(elements)):
        entry = table[element]
        basis = [f'ORB {basis_set}', f"AUX_FIT {entry['aux_fit']}"] if admm else basis_set
        kinds.append({'_': element, 'BASIS_SET': basis, 'POTENTIAL': f"GTH-PBE-q{entry['valence']}"})
    return kinds


def valence_from_potential(name: str) -> int:
    """Valence charge encoded in a GTH potential name, e.g. ``GTH-PBE-q13`` → 13."""
    match = re.search(r'-q(\d+)\s*$', str(name))
    if not match:
        raise ValueError(f'cannot read the valence charge from potential name {name!r} (expected ...-q<N>)')
    return int(match.group(1))


ADMM_SECTION = {
    'METHOD': 'BASIS_PROJECTION',
    'ADMM_PURIFICATION_METHOD': 'NONE',  # MO_DIAG requires OT; the hybrid stage diagonalises (virtual states)
    'EXCH_SCALING_MODEL': 'NONE',
    'EXCH_CORRECTION_FUNC': 'PBEX',
}
