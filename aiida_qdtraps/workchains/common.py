"""Pieces shared by the CP2K-based QD work chains: charge/multiplicity checks and protocol builders."""

from __future__ import annotations

import copy

from aiida import orm

from ..protocols import kind_sections, valence_from_potential
from .functions import recursive_merge


def kinds_by_element(parameters: dict) -> dict[str, dict]:
    """``&KIND`` sections of a CP2K parameter dict, keyed by element (section parameter)."""
    kinds = parameters.get('FORCE_EVAL', {}).get('SUBSYS', {}).get('KIND', [])
    kinds = [kinds] if isinstance(kinds, dict) else kinds
    return {str(kind.get('_')): kind for kind in kinds}


def check_electronic_state(structure: orm.StructureData, parameters: dict, charge: int,
                           multiplicity: int) -> tuple[int | None, str]:
    """Check that every element has a KIND with a potential and that charge and multiplicity fit.

    :returns: ``(None, '')`` if consistent, otherwise ``('kinds' | 'multiplicity', message)``.
    """
    kinds = kinds_by_element(parameters)
    elements = sorted(set(structure.get_kind_names()))
    missing = [el for el in elements if el not in kinds or 'POTENTIAL' not in kinds[el] or 'BASIS_SET' not in kinds[el]]
    if missing:
        return 'kinds', f'no &KIND with BASIS_SET and POTENTIAL for element(s) {missing}'
    symbols = structure.get_ase().get_chemical_symbols()
    n_electrons = sum(valence_from_potential(kinds[s]['POTENTIAL']) for s in symbols) - charge
    if multiplicity < 1:
        return 'multiplicity', f'multiplicity must be >= 1, got {multiplicity}'
    if n_electrons < multiplicity - 1 or (n_electrons - (multiplicity - 1)) % 2:
        return 'multiplicity', (f'{n_electrons} valence electrons (charge {charge}) cannot have multiplicity '
                                f'{multiplicity}: unpaired electrons and electron count must have the same parity')
    return None, ''


def electronic_state_changes(charge: int, multiplicity: int) -> dict:
    """CP2K parameter changes setting charge, multiplicity and (if open shell) UKS."""
    dft = {'CHARGE': int(charge), 'MULTIPLICITY': int(multiplicity)}
    if multiplicity > 1:
        dft['UKS'] = True
    return {'FORCE_EVAL': {'DFT': dft}}


def cp2k_protocol_inputs(cls, namespace: str, code, structure, protocol, overrides, options) -> tuple[dict, dict]:
    """Merge the protocol of ``cls`` and fill the CP2K namespace (code, kinds, options).

    :returns: ``(inputs, protocol_extras)`` where extras are the protocol keys consumed by the builder
        (``basis_set``, ``admm``, ``box_vacuum``).
    """
    inputs = cls.get_protocol_inputs(protocol, overrides)
    extras = {key: inputs.pop(key) for key in ('basis_set', 'admm', 'box_vacuum') if key in inputs}
    cp2k = inputs[namespace]['cp2k']
    parameters = copy.deepcopy(cp2k['parameters'])
    elements = sorted(set(structure.get_kind_names()))
    kinds = kind_sections(elements, extras.get('basis_set', 'DZVP-MOLOPT-SR-GTH'), extras.get('admm', False))
    user_kinds = kinds_by_element(parameters)
    parameters['FORCE_EVAL'].setdefault('SUBSYS', {})['KIND'] = [user_kinds.get(k['_'], k) for k in kinds]
    cp2k['parameters'] = parameters
    cp2k['code'] = code
    if options:
        cp2k['metadata']['options'] = recursive_merge(cp2k['metadata']['options'], options)
    return inputs, extras
