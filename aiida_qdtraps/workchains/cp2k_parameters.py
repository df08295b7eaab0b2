"""The ``update_cp2k_parameters`` calcfunction: CP2K parameters with changes merged in, as a recorded step.

Every change the work chains make to a CP2K input after its builder (charge and multiplicity, the error handlers'
SCF settings, wall time, restarts) goes through it, so the provenance shows the input it started from and each
change.
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import calcfunction
from aiida_quantumespresso.workflows.protocols.utils import recursive_merge


@calcfunction
def update_cp2k_parameters(parameters: orm.Dict, changes: orm.Dict) -> orm.Dict:
    """CP2K input parameters with ``changes`` merged in recursively (used by the error handlers)."""
    return orm.Dict(recursive_merge(parameters.get_dict(), changes.get_dict()))
