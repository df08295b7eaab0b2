"""The uninterrupted reference: the killed CalcJob run again from the same input nodes. argv[1]: its pk."""

import sys

from aiida import orm
from aiida.engine import run_get_node

from aiida_qdtraps.profile import load_project_profile

load_project_profile()
_, node = run_get_node(orm.load_node(int(sys.argv[1])).get_builder_restart())
print('REFERENCE', node.pk, node.exit_status, flush=True)
