"""The GTH-PBE UPF pseudopotential family of the plane-wave engine (aiida-pseudo), installed by ``qdtraps setup``.

:func:`ensure_upf_family` writes the UPF files of :mod:`aiida_qdtraps.pseudos` (CP2K's ``GTH_POTENTIALS``, the very
potentials and valence charges of the CP2K path) and stores them as the family ``qdtraps-gth-pbe-upf``;
:func:`upf_family` loads it. The Quantum ESPRESSO work chain (:mod:`aiida_qdtraps.workchains.qe`) and the profile
set-up (:mod:`aiida_qdtraps.profile`) both use this module.
"""

from __future__ import annotations

import hashlib
import pathlib
import tempfile

from aiida import orm
from aiida.plugins import DataFactory, GroupFactory

from .protocols import element_settings

PseudoPotentialFamily = GroupFactory('pseudo.family')
UpfData = DataFactory('pseudo.upf')

#: Label of the aiida-pseudo family installed by ``qdtraps setup``.
PSEUDO_FAMILY_LABEL = 'qdtraps-gth-pbe-upf'


def gth_potential_names(elements=None) -> dict[str, str]:
    """Element → CP2K GTH potential name (``GTH-PBE-q<valence>``) from ``elements.yaml``, the CP2K path's choice.

    :raises ValueError: naming elements without an entry.
    """
    table = element_settings()
    elements = sorted(table) if elements is None else sorted(set(elements))
    missing = [el for el in elements if el not in table]
    if missing:
        raise ValueError(f'no GTH pseudopotential for element(s) {missing}; supported: {sorted(table)}')
    return {el: f"GTH-PBE-q{table[el]['valence']}" for el in elements}


def ensure_upf_family(label: str = PSEUDO_FAMILY_LABEL, elements=None) -> tuple[str, str]:
    """Install the GTH-PBE UPF family ``label`` unless it exists with the same files; return ``(status, detail)``.

    "Same" allows last-digit rounding differences of the tabulated numbers (:func:`~aiida_qdtraps.pseudos.gth.
    same_upf_content`, relative 1e-6), so another BLAS build does not make a new family.

    The UPF files are generated from the local CP2K ``GTH_POTENTIALS`` (deterministic: same data file, same md5). A
    family with different files (e.g. after a CP2K data update) is relabelled ``<label>-old-<pk>`` and a new one made,
    so calculations that used the old one keep their provenance. ``status`` is ``created``, ``exists`` or ``updated``.
    """
    from .pseudos import find_gth_potentials_file, write_upf_family
    from .pseudos.gth import same_upf_content

    source = find_gth_potentials_file()
    with tempfile.TemporaryDirectory() as tmp:
        files = write_upf_family(tmp, gth_potential_names(elements), source)
        md5s = {f.name.split('.')[0]: hashlib.md5(f.read_bytes()).hexdigest() for f in files}
        existing = orm.QueryBuilder().append(PseudoPotentialFamily, filters={'label': label}).all(flat=True)
        if existing:
            family = existing[0]
            current = {p.element: p for p in family.nodes}
            texts = {f.name.split('.')[0]: f.read_text() for f in files}
            if set(current) == set(md5s) and all(
                    current[el].md5 == md5s[el] or same_upf_content(current[el].get_content(), texts[el])
                    for el in md5s):
                return 'exists', f'{len(current)} UPF files, {source}'
            family.label = f'{label}-old-{family.pk}'
        family = PseudoPotentialFamily.create_from_folder(
            pathlib.Path(tmp), label, pseudo_type=UpfData,
            description=f'GTH-PBE pseudopotentials of CP2K ({source}) tabulated as norm-conserving UPF v2 by '
                        'aiida_qdtraps.pseudos')
    detail = f"{len(md5s)} elements ({', '.join(sorted(md5s))}) from {source}"
    if existing:
        return 'updated', f'{detail}; previous family relabelled {existing[0].label}'
    return 'created', detail


def upf_family(label: str) -> PseudoPotentialFamily:
    """The installed pseudopotential family ``label``; ValueError naming the command that installs it."""
    family = orm.QueryBuilder().append(PseudoPotentialFamily, filters={'label': label}).first(flat=True)
    if family is None:
        raise ValueError(f'pseudopotential family `{label}` is not installed; run `qdtraps setup` '
                         '(or `ensure_upf_family()`)')
    return family
