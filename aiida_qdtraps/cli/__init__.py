"""The ``qdtraps`` command line: ``qdtraps setup``, ``qdtraps status``, ``qdtraps demo``, ...

Commands live in ``cmd_*`` modules that register themselves on the :data:`cli` group from :mod:`.root`.
"""

# Importing a command module registers its commands (qdtraps demo, setup, traps, charge-flow, build, classify,
# archive create|check|import, cutout, interpolate, md, mlff, report).
from . import (  # noqa: F401
    cmd_archive,
    cmd_build,
    cmd_charge_flow,
    cmd_classify,
    cmd_cutout,
    cmd_demo,
    cmd_md,
    cmd_mlff,
    cmd_profile,
    cmd_report,
    cmd_traps,
)
from .root import cli

__all__ = ('cli',)
