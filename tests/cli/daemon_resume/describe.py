"""Describe the daemon pipeline, the killed CalcJob and the reference (argv: their pks) and the whole profile as
JSON: process trees, outputs with their values, stray nodes. Prints ``DESCRIPTION {json}``."""

import json
import sys

import numpy as np
from aiida import orm
from aiida.common.links import LinkType

from aiida_qdtraps.profile import load_project_profile

load_project_profile()

def tree(node, path=''):
    rows = []
    for link in node.base.links.get_outgoing(link_type=(LinkType.CALL_CALC, LinkType.CALL_WORK)).all():
        child, label = link.node, f'{path}/{link.link_label}'
        row = {'path': label, 'type': child.process_type, 'state': child.process_state.value,
               'exit_status': child.exit_status, 'cached': child.base.caching.is_created_from_cache}
        if isinstance(child, orm.CalcJobNode):
            row['job_id'] = child.get_job_id()
            out = child.outputs.retrieved.base.repository.get_object_content('aiida.out') \
                if 'retrieved' in child.outputs and child.process_type == 'aiida.calculations:cp2k' else ''
            row['cp2k_starts'] = out.count('PROGRAM STARTED AT')
            row['cp2k_ends'] = out.count('PROGRAM ENDED AT')
        rows.append(row)
        rows.extend(tree(child, label))
    return rows

def value(node):
    if isinstance(node, orm.Dict):
        return node.get_dict()
    if isinstance(node, orm.StructureData):
        return {'symbols': [s.kind_name for s in node.sites], 'positions': [list(s.position) for s in node.sites],
                'cell': node.cell}
    if isinstance(node, (orm.ArrayData, orm.TrajectoryData)):
        return {name: np.asarray(node.get_array(name)).tolist() for name in node.get_arraynames()
                if np.asarray(node.get_array(name)).dtype.kind in 'fiub'}
    if isinstance(node, orm.SinglefileData):
        return {'size': len(node.get_content('rb'))}
    if isinstance(node, orm.RemoteData):
        return None  # a path in the scratch folder: differs by construction
    return dict(node.base.attributes.all)

def outputs(node, link_types=(LinkType.RETURN,)):
    result = {}
    for link in node.base.links.get_outgoing(link_type=link_types).all():
        if link.link_label != 'retrieved':  # the retrieved files hold wall times and dates
            result[link.link_label] = [type(link.node).__name__, value(link.node)]
    return result

def ancestors(node):
    query = orm.QueryBuilder().append(orm.Node, filters={'id': node.pk}, tag='n')
    return set(query.append(orm.Node, with_descendants='n', project='uuid').all(flat=True))

daemon_pk, killed_pk, reference_pk = (int(pk) for pk in sys.argv[1:])
pipeline, killed, reference = (orm.load_node(pk) for pk in (daemon_pk, killed_pk, reference_pk))
description = {'daemon': {'state': pipeline.process_state.value, 'exit_status': pipeline.exit_status,
                          'tree': tree(pipeline), 'outputs': sorted(outputs(pipeline))}}
for name, calc in (('killed', killed), ('reference', reference)):
    description[name] = {'state': calc.process_state.value, 'exit_status': calc.exit_status,
                         'cached': calc.base.caching.is_created_from_cache,
                         'outputs': outputs(calc, (LinkType.CREATE,))}
# provenance: the single point ran on the relax's output structure, and the labels came from the killed job's MO window
relaxed = pipeline.outputs.relax.relaxed_structure
labels = [n for n in pipeline.called_descendants if n.process_label == 'TrapLabelingWorkChain']
description['scf_on_relaxed'] = relaxed.uuid in ancestors(killed.inputs.structure) | {killed.inputs.structure.uuid}
description['labels_from_killed'] = len(labels) == 1 and killed.uuid in ancestors(labels[0].inputs.mo_window)
mine = {n.pk for n in pipeline.called_descendants} | {reference.pk}
calcjobs = orm.QueryBuilder().append(orm.CalcJobNode, project='id').all(flat=True)
processes = orm.QueryBuilder().append(orm.ProcessNode, project=['id', 'process_type', 'attributes.process_state',
                                                                 'attributes.exit_status']).all()
description['stray_calcjobs'] = sorted(set(calcjobs) - mine)
description['not_ok'] = [row for row in processes if row[2] != 'finished' or row[3] != 0]
description['n_processes'] = len(processes)
print('DESCRIPTION', json.dumps(description))
