"""Charge and spin state of a QD: the check every engine makes, and CP2K's form of it (plain functions, no AiiDA)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..protocols import is_xtb, kinds_by_element, valence_from_potential

#: the heaviest element GFN1-xTB has parameters for (Rn)
XTB_MAX_Z = 86

if TYPE_CHECKING:
    from aiida import orm


def spin_state_problem(n_electrons: int, charge: int, multiplicity: int,
                       counted: str = 'valence electrons') -> tuple[str | None, str]:
    """``('multiplicity', message)`` if ``n_electrons`` (after removing ``charge``) cannot have ``multiplicity``,
    else ``(None, '')``: the engines' shared check of the spin state."""
    if multiplicity < 1:
        return 'multiplicity', f'multiplicity must be >= 1, got {multiplicity}'
    if n_electrons < multiplicity - 1 or (n_electrons - (multiplicity - 1)) % 2:
        return 'multiplicity', (f'{n_electrons} {counted} (charge {charge}) cannot have multiplicity '
                                f'{multiplicity}: unpaired electrons and electron count must have the same parity')
    return None, ''


def gfn1_valence(number: int) -> int:
    """Valence electrons GFN1-xTB gives the element of atomic number ``number``: its group for groups 1–11
    (their d electrons are valence), group − 10 for groups 12–18 (Zn, Cd, Hg keep only s and p shells; Ga–Kr,
    In–Xe, Tl–Rn have a filled d10 core), 1 for H and 2 for He.

    :raises ValueError: for the lanthanides and elements beyond Rn (no GFN1-xTB parameters here).
    """
    periods = (2, 10, 18, 36, 54, 86)
    if not 1 <= number <= periods[-1] or 57 <= number <= 71:
        raise ValueError(f'no GFN1-xTB valence for atomic number {number}')
    if number <= 2:
        return number
    start = max(p for p in periods if p < number)
    position = number - start  # 1-based position in the period
    if start in (2, 10):  # periods 2 and 3: groups 1, 2, then 13-18
        return position
    if start == 54 and position > 2:  # period 6: La-Lu counted as one column
        position -= 14
    group = position
    return group if group <= 11 else group - 10


def valence_electrons(symbols: list[str], parameters: dict) -> int:
    """Electrons CP2K treats explicitly for the neutral atoms ``symbols`` under ``parameters``: the valence charges
    of the &KIND potentials (``GTH-PBE-q13`` → 13), under GFN1-xTB :func:`gfn1_valence`."""
    if is_xtb(parameters):
        from ase.data import atomic_numbers
        return sum(gfn1_valence(atomic_numbers[s]) for s in symbols)
    kinds = kinds_by_element(parameters)
    return sum(valence_from_potential(kinds[s]['POTENTIAL']) for s in symbols)


def check_electronic_state(structure: orm.StructureData, parameters: dict, charge: int,
                           multiplicity: int) -> tuple[str | None, str]:
    """Check that every element has a CP2K KIND with a basis and a potential (under xTB: parameters) and that charge
    and multiplicity fit.

    :returns: ``(None, '')`` if consistent, otherwise ``('kinds' | 'multiplicity', message)``.
    """
    if is_xtb(parameters):
        # GFN1-xTB: no &KIND; its valence shells leave closed-shell cores of an even number of electrons, so the
        # parity of all electrons is that of the valence ones
        numbers = structure.get_ase().get_atomic_numbers()
        if numbers.max() > XTB_MAX_Z:
            return 'kinds', f'GFN1-xTB has parameters for H–Rn (Z <= {XTB_MAX_Z}), not for Z = {int(numbers.max())}'
        return spin_state_problem(int(numbers.sum()) - charge, charge, multiplicity, 'electrons')
    kinds = kinds_by_element(parameters)
    elements = sorted(set(structure.get_kind_names()))
    missing = [el for el in elements if el not in kinds or 'POTENTIAL' not in kinds[el] or 'BASIS_SET' not in kinds[el]]
    if missing:
        return 'kinds', f'no &KIND with BASIS_SET and POTENTIAL for element(s) {missing}'
    n_electrons = valence_electrons(structure.get_ase().get_chemical_symbols(), parameters) - charge
    return spin_state_problem(n_electrons, charge, multiplicity)


def electronic_state_changes(charge: int, multiplicity: int) -> dict:
    """CP2K parameter changes setting charge, multiplicity and (if open shell) UKS."""
    dft = {'CHARGE': int(charge), 'MULTIPLICITY': int(multiplicity)}
    if multiplicity > 1:
        dft['UKS'] = True
    return {'FORCE_EVAL': {'DFT': dft}}
