"""The ``qdtraps`` command line: ``qdtraps setup``, ``qdtraps status``, ``qdtraps demo``, ...

Commands live in ``cmd_*`` modules that register themselves on the :data:`cli` group from :mod:`.root`.
"""

from . import cmd_demo, cmd_profile, cmd_traps  # noqa: F401  (importing registers the commands)
from . import cmd_charge_flow  # noqa: F401  (qdtraps charge-flow)
from . import cmd_build  # noqa: F401  (qdtraps build)
from . import cmd_classify  # noqa: F401  (qdtraps classify)
from . import cmd_archive  # noqa: F401  (qdtraps archive create|check|import)
from .root import cli

__all__ = ('cli',)
