"""The provenance graph of a QD, walked the same way everywhere.

Each function answers one question about stored nodes; the query helpers (:mod:`.query`), the trap labelling
(:mod:`.workchains.traps`), the classifier (:mod:`.workchains.classifier`), the charge flow
(:mod:`.workchains.charge_flow`) and the builder bridges (:mod:`.workchains.build`) all ask them here.

==========================================  ==============================================================
question                                    function
==========================================  ==============================================================
which structures was this one made from?    :func:`parent_structures`, :func:`ancestor_structures`
which process made its geometry?            :func:`geometry_origin` (a relax CalcJob, or the builder)
which build recipe does it come from?       :func:`build_of` → :class:`Build` (calcfunction, recipe, built)
its per-site roles / domains?               :func:`roles`, :func:`domains` (:func:`tags` for any per-site list)
which SCF calculation made an MO window?    :func:`scf_calcjob`
which labelling does a node belong to?      :func:`labeling` (the ``label_traps`` calcfunction)
why was an MLFF training frame labelled?    :func:`frame_origin`, :func:`dataset_frame_origins`
MLFF MD or model relaxation?                :func:`exploration_kind`
==========================================  ==============================================================

A structure's parents are the StructureData inputs of the process that created it: a calcfunction such as
``center_in_box`` or ``make_vacancy``, or a CalcJob (the CP2K relax's ``structure`` input). The build calcfunctions
(:data:`BUILD_FUNCTIONS`) take the recipe as their ``recipe`` Dict input and no structure.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from aiida import orm
from aiida.common.links import LinkType

#: Node attributes with the builder's per-site lists: roles (cation / anion / ligand) and domains
#: (core / interlayer / shell / ligand).
ROLE_ATTRIBUTE, DOMAIN_ATTRIBUTE = 'qd_roles', 'qd_domains'
#: Process labels of the calcfunctions that build a QD from a ``recipe`` Dict: ``build_qd`` and the older
#: ``build_qd_structure``, which archives and the shipped library hold.
BUILD_FUNCTIONS = ('build_qd', 'build_qd_structure')
#: Process label of the trap-labelling calcfunction.
LABELING_FUNCTION = 'label_traps'
#: How many generations of structures a walk goes back at most.
MAX_DEPTH = 50


def site_elements(structure: orm.StructureData) -> list[tuple[str, ...]]:
    """The element(s) of every site, in site order."""
    kinds = {kind.name: tuple(kind.symbols) for kind in structure.kinds}
    return [kinds[site.kind_name] for site in structure.sites]


def parent_structures(structure: orm.StructureData) -> list[orm.StructureData]:
    """The StructureData inputs of the process that created ``structure`` (empty for a structure no process made)."""
    creator = structure.creator if structure.is_stored else None
    if creator is None:
        return []
    return list(creator.base.links.get_incoming(node_class=orm.StructureData).all_nodes())


def ancestor_structures(structure: orm.StructureData, same_atoms: bool = False,
                        max_depth: int = MAX_DEPTH) -> Iterator[orm.StructureData]:
    """``structure`` and the structures it was made from, breadth first (nearest first), each once.

    :param same_atoms: only through ancestors with the same element on every site, in the same order (boxing, a
        relax): those whose per-site tags also hold for ``structure``.
    """
    elements = site_elements(structure) if same_atoms else None
    frontier, seen = [structure], {structure.uuid}
    for _ in range(max_depth + 1):
        parents = []
        for node in frontier:
            yield node
            for parent in parent_structures(node):
                if parent.uuid in seen or (same_atoms and site_elements(parent) != elements):
                    continue
                seen.add(parent.uuid)
                parents.append(parent)
        if not parents:
            return
        frontier = parents


def geometry_origin(structure: orm.StructureData) -> orm.ProcessNode | None:
    """The process a structure's geometry comes from: walking up through calcfunctions that take one structure
    (``center_in_box``, ...), the first CalcJob (a relax) or the calcfunction that made it from other inputs (a build
    calcfunction); None for a structure no process made."""
    node = structure
    for _ in range(MAX_DEPTH):
        creator = node.creator
        if creator is None or isinstance(creator, orm.CalcJobNode):
            return creator
        parents = parent_structures(node)
        if len(parents) != 1:
            return creator
        node = parents[0]
    return node.creator


class Build(NamedTuple):
    """How a QD was built: the build calcfunction, its ``recipe`` input and the structure it returned."""

    calcfunction: orm.CalcFunctionNode
    recipe: orm.Dict
    structure: orm.StructureData


def build_of(structure: orm.StructureData) -> Build | None:
    """The build (a calcfunction with a ``recipe`` Dict input) that ``structure`` descends from, the nearest one,
    through boxing, vacancies, shells and relaxations; None for a structure not made from a recipe."""
    for node in ancestor_structures(structure):
        creator = node.creator
        if creator is None:
            continue
        incoming = creator.base.links.get_incoming(link_label_filter='recipe').all_nodes()
        if incoming and isinstance(incoming[0], orm.Dict):
            return Build(creator, incoming[0], node)
    return None


def tags(structure: orm.StructureData, name: str) -> list | None:
    """The per-site list attribute ``name`` of ``structure``, or of the nearest ancestor with the same atoms
    (boxing copies the builder's tags, a CP2K relax returns a structure without them); None when there is none."""
    n_sites = len(structure.sites)
    for node in ancestor_structures(structure, same_atoms=True):
        value = node.base.attributes.get(name, None)
        if value is not None and len(value) == n_sites:
            return list(value)
    return None


def roles(structure: orm.StructureData) -> list[str] | None:
    """Per-site roles ('cation' | 'anion' | 'ligand') of the builder (:func:`tags`), else None."""
    return tags(structure, ROLE_ATTRIBUTE)


def domains(structure: orm.StructureData) -> list[str] | None:
    """Per-site domains ('core' | 'interlayer' | 'shell' | 'ligand') of the builder (:func:`tags`), else None."""
    return tags(structure, DOMAIN_ATTRIBUTE)


def scf_calcjob(mo_window: orm.ArrayData) -> orm.CalcJobNode | None:
    """The CalcJob whose retrieved MOLDEN file the ``mo_window`` was cut from (``extract_mo_window`` → retrieved →
    CalcJob), or None when the window was not made that way."""
    extract = mo_window.creator
    if not isinstance(extract, orm.CalcFunctionNode):
        return None
    for folder in extract.base.links.get_incoming(node_class=orm.FolderData).all_nodes():
        if isinstance(folder.creator, orm.CalcJobNode):
            return folder.creator
    return None


def labeling(node: orm.Node) -> orm.CalcFunctionNode:
    """The ``label_traps`` calcfunction of a labelling: the node itself, the last one a work chain (a
    ``TrapLabelingWorkChain``, a pipeline) called, or the creator of one of its outputs (``atom_labels``, a trap
    record).

    :raises ValueError: for a node that is none of these.
    """
    if isinstance(node, orm.Data) and node.creator is not None:
        node = node.creator
    if isinstance(node, orm.CalcFunctionNode) and node.process_label == LABELING_FUNCTION:
        return node
    if isinstance(node, orm.WorkflowNode):
        calls = [n for n in node.called_descendants
                 if isinstance(n, orm.CalcFunctionNode) and n.process_label == LABELING_FUNCTION and n.is_finished_ok]
        if calls:
            return max(calls, key=lambda n: n.pk)
    raise ValueError(f'{node.__class__.__name__}<{node.pk}> is not a trap labeling and called no label_traps')


def exploration_kind(trajectory: orm.TrajectoryData) -> str:
    """``md`` or ``relax``: the ``mode`` of the ``MlffMdCalculation`` that made ``trajectory`` (its attribute, else its
    creator's parameters); ``md`` for a trajectory of any other origin."""
    mode = trajectory.base.attributes.get('mode', None)
    creator = trajectory.creator
    if mode is None and creator is not None and 'parameters' in creator.inputs:
        mode = creator.inputs.parameters.get('mode', None)
    return mode or 'md'


class FrameOrigin(NamedTuple):
    """Where a labelled frame of an MLFF dataset came from.

    ``kind``: ``'initial MD'`` (a frame of the CP2K MD that seeded the dataset), ``'MLFF MD'`` or ``'MLFF relax'`` (a
    frame an exploration of the active-learning loop visited and the selection picked); ``temperature_K``: the MD's
    target temperature (None for a relaxation); ``max_devi_f``: the ensemble's maximum force deviation (eV/Å) for which
    the frame was picked (None for the initial MD); ``calcjob``: the uuid of the CP2K CalcJob that labelled it.
    """

    kind: str
    temperature_K: float | None
    max_devi_f: float | None
    calcjob: str


def frame_origin(calcjob: orm.CalcJobNode, _selections: dict | None = None) -> FrameOrigin:
    """Why a frame was labelled, from the CalcJob that labelled it (a uuid of a dataset's ``frame_sources``).

    An MD CalcJob (``GLOBAL/RUN_TYPE`` MD) is the initial data; otherwise the CalcJob's structure was made by the
    ``select_candidates`` calcfunction (output ``candidate_NNN``), whose ``statistics`` name the exploration
    trajectory and the deviation of candidate NNN, and the trajectory (:func:`exploration_kind`) and the
    ``MlffMdCalculation`` that made it the relaxation mode or the MD's temperature.

    :param _selections: a dict that caches each ``select_candidates`` node's selected rows and its trajectories'
        kind and temperature between calls (:func:`dataset_frame_origins` passes one).
    :raises ValueError: for a CalcJob that is neither.
    """
    parameters = calcjob.inputs.parameters.get_dict()
    if str(parameters.get('GLOBAL', {}).get('RUN_TYPE', '')).upper() == 'MD':
        temperature = parameters.get('MOTION', {}).get('MD', {}).get('TEMPERATURE')
        return FrameOrigin('initial MD', None if temperature is None else float(temperature), None, calcjob.uuid)
    structure = calcjob.inputs.structure
    link = structure.base.links.get_incoming(link_type=LinkType.CREATE).first()
    if link is None or not link.link_label.startswith('candidate_'):
        raise ValueError(f'{calcjob.process_label or "CalcJob"}<{calcjob.pk}>: its structure was not picked by '
                         f'select_candidates (created by {link.node.process_label if link else "no process"})')
    selector = link.node
    cache = {} if _selections is None else _selections
    if selector.uuid not in cache:
        cache[selector.uuid] = (selector.outputs.statistics['selected'], {})
    selected, explorations = cache[selector.uuid]
    row = selected[int(link.link_label.split('_', 1)[1])]
    if row['trajectory'] not in explorations:
        trajectory = selector.base.links.get_incoming(link_label_filter=row['trajectory']).one().node
        kind = exploration_kind(trajectory)
        explorations[row['trajectory']] = (
            ('MLFF relax', None) if kind == 'relax'
            else ('MLFF MD', float(trajectory.creator.inputs.parameters['temperature_K'])))
    kind, temperature = explorations[row['trajectory']]
    return FrameOrigin(kind, temperature, float(row['max_devi_f']), calcjob.uuid)


def dataset_frame_origins(dataset: orm.FolderData, part: str = 'training') -> list[FrameOrigin]:
    """:func:`frame_origin` of every frame of an MLFF dataset's ``part`` (``training`` or ``validation``), in the
    dataset's order (systems by name, as ``dp`` and dpdata read them; frames as stored)."""
    sources = dataset.base.attributes.get('frame_sources')
    keys = sorted(key for key in sources if key.split('/', 1)[0] == part)
    if not keys:
        raise ValueError(f'the dataset has no {part!r} frames (parts: {sorted({k.split("/", 1)[0] for k in sources})})')
    cache: dict[str, FrameOrigin] = {}
    selections: dict = {}
    origins = []
    for key in keys:
        for uuid in sources[key]:
            if uuid not in cache:
                cache[uuid] = frame_origin(orm.load_node(uuid), selections)
            origins.append(cache[uuid])
    return origins
