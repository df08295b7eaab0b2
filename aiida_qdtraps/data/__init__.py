"""Data plugins of aiida-qdtraps."""

from aiida import orm


class TrapRecord(orm.Dict):
    """One trap state of one QD, as a small node whose attributes are what users filter on.

    Attributes (all plain JSON, so QueryBuilder filters them without loading arrays): ``carrier``
    ('hole' | 'electron'), ``depth`` and ``energy`` (eV), ``participation_ratio``, ``center`` (atom index),
    ``center_element``, ``center_coordination``, ``kind`` ('structural' | 'under-coordinated'), ``homo_dimer``,
    ``high_coordination``, ``localized``, ``spin``, ``state`` and the QD context ``material``, ``formula``,
    ``recipe`` (the build recipe), ``protocol``.

    Why one node per trap rather than attributes on one node: a filter on a node's attributes selects nodes, so only
    one node per trap lets a query return exactly the traps that match (``carrier == 'hole' and depth > 0.2``) and
    lets each trap be walked back through its own provenance; a QD has tens of traps, so the node count stays small.
    """
