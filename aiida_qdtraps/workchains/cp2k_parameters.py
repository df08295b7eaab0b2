"""Calcfunctions that change CP2K parameters as recorded steps: ``update_cp2k_parameters`` (changes merged in) and
``move_pdos_into_dos`` (the projected-DOS section in CP2K 2026's place).

Every change the work chains make to a CP2K input after its builder (charge and multiplicity, the error handlers'
SCF settings, wall time, restarts, the input layout of a newer CP2K) goes through them, so the provenance shows the
input it started from and each change.
"""

from __future__ import annotations

import copy

from aiida import orm
from aiida.engine import calcfunction
from aiida_quantumespresso.workflows.protocols.utils import recursive_merge


@calcfunction
def update_cp2k_parameters(parameters: orm.Dict, changes: orm.Dict) -> orm.Dict:
    """CP2K input parameters with ``changes`` merged in recursively (used by the error handlers)."""
    return orm.Dict(recursive_merge(parameters.get_dict(), changes.get_dict()))


def pdos_in_dos_section(parameters: dict) -> dict | None:
    """``parameters`` with ``FORCE_EVAL/DFT/PRINT/PDOS`` moved to where CP2K 2026.2 reads it: a ``PRINT/DOS`` section
    with the print key's keywords (``NLUMO``, ``EACH``, ...) and a ``PDOS`` subsection with ``COMPONENTS``. CP2K up
    to 2025.2 has ``NLUMO`` and ``COMPONENTS`` in ``PRINT/PDOS``; 2026.2 aborts on it ("unknown subsection PDOS of
    section PRINT"). None when there is no such section; a copy, never the given dict."""
    params = copy.deepcopy(parameters)
    printed = params.get('FORCE_EVAL', {}).get('DFT', {}).get('PRINT', {})
    key = next((name for name in printed if name.upper() == 'PDOS'), None)
    if key is None:
        return None
    section = printed.pop(key)
    pdos = {} if section is True else dict(section)
    inner = {name: pdos.pop(name) for name in list(pdos) if name.upper() == 'COMPONENTS'}
    dos_key = next((name for name in printed if name.upper() == 'DOS'), 'DOS')
    dos = printed.get(dos_key)
    printed[dos_key] = {**(dos if isinstance(dos, dict) else {}), **pdos, 'PDOS': inner}
    return params


@calcfunction
def move_pdos_into_dos(parameters: orm.Dict) -> orm.Dict:
    """CP2K parameters with the projected-DOS section in CP2K 2026's layout (:func:`pdos_in_dos_section`).

    :raises ValueError: for parameters without a ``FORCE_EVAL/DFT/PRINT/PDOS`` section.
    """
    moved = pdos_in_dos_section(parameters.get_dict())
    if moved is None:
        raise ValueError('the CP2K parameters have no FORCE_EVAL/DFT/PRINT/PDOS section to move')
    return orm.Dict(moved)
