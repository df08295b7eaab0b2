"""Charge and spin state of a QD: the check every engine makes, and CP2K's form of it (plain functions, no AiiDA)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..protocols import kinds_by_element, valence_from_potential

if TYPE_CHECKING:
    from aiida import orm


def spin_state_problem(n_electrons: int, charge: int, multiplicity: int) -> tuple[str | None, str]:
    """``('multiplicity', message)`` if ``n_electrons`` (after removing ``charge``) cannot have ``multiplicity``,
    else ``(None, '')``: the engines' shared check of the spin state."""
    if multiplicity < 1:
        return 'multiplicity', f'multiplicity must be >= 1, got {multiplicity}'
    if n_electrons < multiplicity - 1 or (n_electrons - (multiplicity - 1)) % 2:
        return 'multiplicity', (f'{n_electrons} valence electrons (charge {charge}) cannot have multiplicity '
                                f'{multiplicity}: unpaired electrons and electron count must have the same parity')
    return None, ''


def check_electronic_state(structure: orm.StructureData, parameters: dict, charge: int,
                           multiplicity: int) -> tuple[str | None, str]:
    """Check that every element has a CP2K KIND with a basis and a potential and that charge and multiplicity fit.

    :returns: ``(None, '')`` if consistent, otherwise ``('kinds' | 'multiplicity', message)``.
    """
    kinds = kinds_by_element(parameters)
    elements = sorted(set(structure.get_kind_names()))
    missing = [el for el in elements if el not in kinds or 'POTENTIAL' not in kinds[el] or 'BASIS_SET' not in kinds[el]]
    if missing:
        return 'kinds', f'no &KIND with BASIS_SET and POTENTIAL for element(s) {missing}'
    symbols = structure.get_ase().get_chemical_symbols()
    n_electrons = sum(valence_from_potential(kinds[s]['POTENTIAL']) for s in symbols) - charge
    return spin_state_problem(n_electrons, charge, multiplicity)


def electronic_state_changes(charge: int, multiplicity: int) -> dict:
    """CP2K parameter changes setting charge, multiplicity and (if open shell) UKS."""
    dft = {'CHARGE': int(charge), 'MULTIPLICITY': int(multiplicity)}
    if multiplicity > 1:
        dft['UKS'] = True
    return {'FORCE_EVAL': {'DFT': dft}}
