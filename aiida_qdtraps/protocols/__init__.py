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


def kind_sections(elements, basis_set: str, admm: bool = False, gapw: bool = False) -> list[dict]:
    """CP2K ``&KIND`` sections (aiida-cp2k dict form) for ``elements``.

    :param gapw: the input uses ``&QS METHOD GAPW``: elements with a ``hard_exp_radius`` in ``elements.yaml`` get it
        as ``HARD_EXP_RADIUS`` (bohr), which moves their tight basis primitives off the real-space grid
        (docs/protocols.md).
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
        kind = {'_': element, 'BASIS_SET': basis, 'POTENTIAL': f"GTH-PBE-q{entry['valence']}"}
        if gapw and 'hard_exp_radius' in entry:
            kind['HARD_EXP_RADIUS'] = entry['hard_exp_radius']
        kinds.append(kind)
    return kinds


def kinds_by_element(parameters: dict) -> dict[str, dict]:
    """``&KIND`` sections of a CP2K parameter dict, keyed by element (section parameter)."""
    kinds = parameters.get('FORCE_EVAL', {}).get('SUBSYS', {}).get('KIND', [])
    kinds = [kinds] if isinstance(kinds, dict) else kinds
    return {str(kind.get('_')): kind for kind in kinds}


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


def _upper_keys(section) -> dict:
    if isinstance(section, list) and section:  # a repeated section: the first one
        section = section[0]
    return {str(k).upper(): v for k, v in section.items()} if isinstance(section, dict) else {}


def cp2k_logical(value) -> bool:
    """A CP2K logical keyword as given in aiida-cp2k dicts: a bool or one of CP2K's spellings ('T', '.TRUE.', ...).

    CP2K reads T, TRUE, Y, YES, ON (any case, dots allowed) as true; everything else here counts as false. The one
    reader of logical keywords in the package (the settings comparison, the SCF handler's ``_section_on``).
    """
    if isinstance(value, str):
        return value.strip().strip('.').upper() in ('T', 'TRUE', 'Y', 'YES', 'ON')
    return bool(value)


def qs_method(parameters: dict) -> str:
    """``&FORCE_EVAL &DFT &QS METHOD`` of CP2K parameters, upper case (``GPW``, CP2K's default, when unset)."""
    dft = _upper_keys(_upper_keys(_upper_keys(parameters).get('FORCE_EVAL')).get('DFT'))
    return str(_upper_keys(dft.get('QS')).get('METHOD', 'GPW')).upper()


#: Keys of ``&FORCE_EVAL &DFT`` that a GFN1-xTB input (``&QS METHOD xTB``) has no use for: the Gaussian basis and
#: pseudopotential files, the real-space grid and the exchange-correlation functional. xTB brings its own minimal
#: basis and parameters for H–Rn, needs no ``&KIND`` and puts nothing on a grid (with ``DO_EWALD F`` its Coulomb
#: terms are pair sums), so its forces do not move when the QD is translated or rotated.
XTB_UNUSED_DFT_KEYS = ('BASIS_SET_FILE_NAME', 'POTENTIAL_FILE_NAME', 'MGRID', 'XC', 'AUXILIARY_DENSITY_MATRIX_METHOD')


def is_xtb(parameters: dict) -> bool:
    """Whether CP2K parameters run GFN1-xTB (``&QS METHOD xTB``) instead of Gaussian-basis DFT."""
    return qs_method(parameters) == 'XTB'


def functional_name(parameters: dict) -> str:
    """'PBE0' for CP2K parameters with exact exchange (``XC/HF``), 'GFN1-xTB' under ``&QS METHOD xTB``, else the name
    of their ``XC_FUNCTIONAL``."""
    if is_xtb(parameters):
        return 'GFN1-xTB'
    xc = parameters.get('FORCE_EVAL', {}).get('DFT', {}).get('XC', {})
    if 'HF' in xc:
        return 'PBE0'
    functional = xc.get('XC_FUNCTIONAL', {})
    if isinstance(functional, dict):
        names = [key for key in functional if key != '_']
        return (names[0] if names else str(functional.get('_', 'PBE'))).upper()
    return str(functional).upper()


def strip_for_xtb(parameters: dict) -> dict:
    """``parameters`` (aiida-cp2k dict form, changed in place and returned) without what an xTB input does not use:
    :data:`XTB_UNUSED_DFT_KEYS` and the ``&KIND`` sections (xTB needs none). Parameters of any other method are
    returned unchanged."""
    if not is_xtb(parameters):
        return parameters
    force_eval = parameters.get('FORCE_EVAL', {})
    dft = force_eval.get('DFT', {})
    for key in list(dft):
        if str(key).upper() in XTB_UNUSED_DFT_KEYS:
            dft.pop(key)
    subsys = force_eval.get('SUBSYS', {})
    for key in list(subsys):
        if str(key).upper() == 'KIND':
            subsys.pop(key)
    return parameters


def cp2k_physics_settings(parameters: dict) -> dict:
    """The settings of a CP2K input (aiida-cp2k dict form) that decide its energies, orbitals and forces.

    Two calculations with equal results here ran the same model chemistry on the same grid; two protocols of one name
    that differ here (e.g. a ``fast`` whose CUTOFF was raised) are told apart. Left out on purpose: the SCF solver and
    mixing (``&SCF`` other than EPS_SCF: the error handlers change them to converge a QD, the converged state is the
    same), ``&PRINT``, CHARGE / MULTIPLICITY (properties of the QD) and the cell (of the structure).

    :returns: ``method``, ``qs_method`` (``GPW`` or ``GAPW``...: how the density meets the grid), ``cutoff`` /
        ``rel_cutoff`` (Ry) / ``ngrids``, ``extended_fft_lengths``, ``poisson`` (solver,
        periodicity), ``xc`` (the ``&XC_FUNCTIONAL`` section), ``hf_fraction``, ``hf_potential``, ``admm`` (method or
        None), ``eps_scf``, ``kinds`` ({element: [basis set(s), potential(, HARD_EXP_RADIUS when set)]}); missing
        keywords are None.
    """
    top = _upper_keys(parameters)
    force_eval = _upper_keys(top.get('FORCE_EVAL'))
    dft = _upper_keys(force_eval.get('DFT'))
    mgrid = _upper_keys(dft.get('MGRID'))
    poisson = _upper_keys(dft.get('POISSON'))
    xc = _upper_keys(dft.get('XC'))
    hf = _upper_keys(xc.get('HF'))
    admm = _upper_keys(dft.get('AUXILIARY_DENSITY_MATRIX_METHOD'))
    kinds = _upper_keys(force_eval.get('SUBSYS')).get('KIND') or []
    kinds = [kinds] if isinstance(kinds, dict) else kinds
    return {
        'method': force_eval.get('METHOD', 'QS'),
        'qs_method': qs_method(parameters),
        'cutoff': mgrid.get('CUTOFF'), 'rel_cutoff': mgrid.get('REL_CUTOFF'), 'ngrids': mgrid.get('NGRIDS'),
        'extended_fft_lengths': cp2k_logical(_upper_keys(top.get('GLOBAL')).get('EXTENDED_FFT_LENGTHS', False)),
        'poisson': [poisson.get('POISSON_SOLVER'), poisson.get('PERIODIC')],
        'xc': xc.get('XC_FUNCTIONAL'),
        'hf_fraction': hf.get('FRACTION') if hf else None,
        'hf_potential': _upper_keys(hf.get('INTERACTION_POTENTIAL')).get('POTENTIAL_TYPE') if hf else None,
        'admm': admm.get('METHOD') if admm else None,
        'eps_scf': _upper_keys(dft.get('SCF')).get('EPS_SCF'),
        'kinds': {str(_upper_keys(k).get('_')): [_upper_keys(k).get('BASIS_SET'), _upper_keys(k).get('POTENTIAL')]
                  + ([_upper_keys(k)['HARD_EXP_RADIUS']] if 'HARD_EXP_RADIUS' in _upper_keys(k) else [])
                  for k in kinds if isinstance(k, dict)},
    }


#: What a settings key means when a record made before the key existed lacks it (CP2K's own default).
SETTINGS_DEFAULTS = {'qs_method': 'GPW'}


def settings_differences(a: dict | None, b: dict | None) -> list[str]:
    """``key: a != b`` for each key where two settings dicts (:func:`cp2k_physics_settings`) disagree; empty when they
    describe the same calculation. ``kinds`` are compared element by element over the elements both have (an InP and
    a GaP QD of one protocol agree)."""
    if a is None or b is None:
        return [] if a is None and b is None else [f'{a!r} != {b!r}']
    a, b = {**SETTINGS_DEFAULTS, **a}, {**SETTINGS_DEFAULTS, **b}
    lines = []
    for key in sorted(set(a) | set(b)):
        if key == 'kinds':
            kinds_a, kinds_b = a.get(key) or {}, b.get(key) or {}
            lines += [f'kinds[{element}]: {kinds_a[element]!r} != {kinds_b[element]!r}'
                      for element in sorted(set(kinds_a) & set(kinds_b)) if kinds_a[element] != kinds_b[element]]
        elif a.get(key) != b.get(key):
            lines.append(f'{key}: {a.get(key)!r} != {b.get(key)!r}')
    return lines


def merge_settings(settings: list[dict | None]) -> list[dict | None]:
    """The distinct settings of a list (:func:`settings_differences` empty = the same), each with the union of the
    ``kinds`` of the settings it stands for; in first-seen order."""
    merged: list[dict | None] = []
    for item in settings:
        for group in merged:
            if not settings_differences(group, item):
                if group is not None:
                    group['kinds'] = {**(item.get('kinds') or {}), **(group.get('kinds') or {})}
                break
        else:
            merged.append(None if item is None else {**item, 'kinds': dict(item.get('kinds') or {})})
    return merged
