"""Query helpers over trap records: find traps by what scientists filter on, and walk a trap back to its QD.

``find_traps`` filters with QueryBuilder on node attributes only (no arrays are loaded); ``trap_provenance`` walks
the links with :mod:`aiida_qdtraps.provenance`::

    from aiida import load_profile; load_profile()
    from aiida_qdtraps.query import find_traps, trap_provenance

    for trap in find_traps(material='InP', carrier='hole', min_depth=0.2, center_element='P',
                           center_coordination=4, kind='structural', protocol='moderate'):
        print(trap.pk, trap['depth'], trap_provenance(trap)['pbe0_calculation'].pk)
"""

from __future__ import annotations

from typing import Any

from aiida import orm

from .data import TrapRecord
from .provenance import build_of, geometry_origin, scf_calcjob

__all__ = ('TABLE_COLUMNS', 'find_traps', 'geometry_origin', 'pbe0_calcjob', 'trap_filters', 'trap_provenance',
           'trap_table')

#: Columns of :func:`trap_table` (attribute names of a :class:`TrapRecord`).
TABLE_COLUMNS = ('formula', 'carrier', 'depth', 'energy', 'center_element', 'center', 'center_coordination', 'kind',
                 'participation_ratio', 'protocol')


def trap_filters(material: str | None = None, carrier: str | None = None, min_depth: float | None = None,
                 max_depth: float | None = None, center_element: str | None = None,
                 center_coordination: int | None = None, kind: str | None = None, protocol: str | None = None,
                 formula: str | None = None, recipe: dict | None = None) -> dict[str, Any]:
    """QueryBuilder filters on :class:`TrapRecord` attributes for the given criteria (``None``: no constraint).

    ``recipe`` filters on keys of the build recipe, e.g. ``{'shape': 'tetrahedron', 'ligand': 'F'}``.
    """
    if carrier is not None and carrier not in ('hole', 'electron'):
        raise ValueError(f"carrier must be 'hole' or 'electron', got {carrier!r}")
    if kind is not None and kind not in ('structural', 'under-coordinated'):
        raise ValueError(f"kind must be 'structural' or 'under-coordinated', got {kind!r}")
    filters: dict[str, Any] = {}
    for key, value in (('material', material), ('carrier', carrier), ('center_element', center_element),
                       ('center_coordination', center_coordination), ('kind', kind), ('protocol', protocol),
                       ('formula', formula)):
        if value is not None:
            filters[f'attributes.{key}'] = value
    depth = {}
    if min_depth is not None:
        depth['>='] = float(min_depth)
    if max_depth is not None:
        depth['<='] = float(max_depth)
    if depth:
        filters['attributes.depth'] = {'and': [{op: v} for op, v in depth.items()]} if len(depth) > 1 else depth
    for key, value in (recipe or {}).items():
        filters[f'attributes.recipe.{key}'] = value
    return filters


def find_traps(**criteria) -> list[TrapRecord]:
    """Trap records matching the criteria of :func:`trap_filters`, deepest first."""
    qb = orm.QueryBuilder()
    qb.append(TrapRecord, filters=trap_filters(**criteria), project='*')
    qb.order_by({TrapRecord: [{'attributes.depth': {'order': 'desc', 'cast': 'f'}}, {'id': 'asc'}]})
    return qb.all(flat=True)


def trap_table(traps: list[TrapRecord]) -> list[dict[str, Any]]:
    """One row per trap: its pk and :data:`TABLE_COLUMNS`."""
    return [{'pk': trap.pk, **{key: trap.get(key) for key in TABLE_COLUMNS}} for trap in traps]


#: The CP2K CalcJob an MO window was cut from (alias of :func:`aiida_qdtraps.provenance.scf_calcjob`).
pbe0_calcjob = scf_calcjob


def trap_provenance(trap: TrapRecord) -> dict[str, orm.Node | None]:
    """Walk from a trap record back to the nodes that produced it.

    :returns: ``label_traps`` (the calcfunction), ``structure`` (the one the PBE0 ran on), ``mo_window``,
        ``pbe0_calculation`` (the CP2K CalcJob whose MOLDEN file was labelled), ``relax_calculation`` (the CalcJob
        the PBE0 geometry comes from, found by :func:`~aiida_qdtraps.provenance.geometry_origin` through
        ``center_in_box`` and the like, if any), ``built_structure`` and ``recipe`` (the build calcfunction's output
        and input, :func:`~aiida_qdtraps.provenance.build_of`), each ``None`` when the trap's history does not
        contain it.
    """
    label = trap.creator
    if label is None:
        raise ValueError(f'TrapRecord<{trap.pk}> has no creator: it was not made by label_traps')
    structure, mo_window = label.inputs.structure, label.inputs.mo_window
    origin = geometry_origin(structure)  # through center_in_box & co. to the relax CalcJob, if any
    build = build_of(structure)
    return {'label_traps': label, 'structure': structure, 'mo_window': mo_window,
            'pbe0_calculation': scf_calcjob(mo_window),
            'relax_calculation': origin if isinstance(origin, orm.CalcJobNode) else None,
            'built_structure': build.structure if build is not None else None,
            'recipe': build.recipe if build is not None else None}
