"""Run the relax → PBE0 pipeline on a small QD and print its summary.

    source env.sh
    verdi run examples/run_pipeline.py            # fast protocol (minutes)
    verdi run examples/run_pipeline.py moderate   # settings close to the papers' (HPC sizes; hours on a laptop)

Change RECIPE to build another QD (see aiida_qdtraps.builder.qd.build_qd for the keywords).
"""

import sys

from aiida import orm
from aiida.engine import run_get_node

from aiida_qdtraps.report import format_table, pipeline_rows
from aiida_qdtraps.workchains.build import build_qd_structure
from aiida_qdtraps.workchains.pipeline import QdTrapsPipelineWorkChain

RECIPE = {'material': 'InP', 'diameter': 5.2, 'ligand': 'F', 'charge': 0, 'center': 'anion', 'vacuum': 3.5,
          'min_core_bonds': 1}
protocol = sys.argv[1] if len(sys.argv) > 1 else 'fast'

code = orm.load_code('cp2k@localhost')
structure = build_qd_structure(orm.Dict(RECIPE))
builder = QdTrapsPipelineWorkChain.get_builder_from_protocol(
    code, structure, protocol=protocol, charge=0, multiplicity=1,
    # every CP2K input can be overridden per stage, e.g. a larger MO window for the trap analysis:
    overrides={'hybrid_scf': {'mo_window': {'occupied': 10, 'virtual': 10}}},
)
results, node = run_get_node(builder)
print(format_table(pipeline_rows(node)))
print(f'verdi process report {node.pk}')
