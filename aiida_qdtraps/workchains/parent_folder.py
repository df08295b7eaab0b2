"""Is a ``RemoteData`` still a usable parent folder? Checks for CP2K restarts of cached or cleaned calculations.

AiiDA caching reuses a finished CalcJob by cloning its node, and the clone's ``remote_folder`` points to the folder of
the original run. Once that folder is cleaned (``clean_workdir``, ``verdi calcjob cleanworkdir``, a scratch purge),
every clone hands out a dead parent: AiiDA keeps it as a valid cache source, because the calculation's outputs are
still right (a known limitation of AiiDA caching, docs/reliability.md; aiida-core's maintainers advise marking such
nodes with ``node.base.caching.is_valid_cache = False``). What a dead parent does to CP2K depends on the file it
should have given:

* a wavefunction (``WFN_RESTART_FILE_NAME``): aiida-cp2k symlinks the parent folder on the same computer, the link
  dangles, and CP2K 2023.1 prints a warning and starts from the ATOMIC guess while the provenance says it restarted;
* an MD restart file (``EXT_RESTART``): CP2K stops, since positions, velocities and thermostat state are gone.

:func:`parent_folder_problem` tells which, before anything is submitted; :func:`forget_dead_folder` marks the
calculation behind a dead folder (and every calculation of the same hash sharing that folder) invalid for caching, so
that a new run of it is computed afresh.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from aiida import orm

#: the wavefunction a CP2K run of this plugin writes (``GLOBAL/PROJECT`` aiida)
WFN_FILE = 'aiida-RESTART.wfn'
#: the restart file a CP2K MD run writes (``&MOTION &PRINT &RESTART``)
MD_RESTART_FILE = 'aiida-1.restart'


def parent_folder_problem(remote: orm.RemoteData, required: Iterable[str] = ()) -> str | None:
    """Why ``remote`` cannot serve as a parent folder, or None when it can.

    The ``cleaned`` extra (set by ``RemoteData._clean``) answers without a connection; otherwise the folder and the
    ``required`` files in it are looked up through the computer's transport (for ``core.local`` a ``stat``).

    :raises OSError: (or the transport's own exception) when the computer cannot be reached.
    """
    where = f'RemoteData<{remote.pk}> ({remote.get_remote_path()} on {remote.computer.label})'
    if remote.is_cleaned:
        return f'{where} was cleaned'
    path = remote.get_remote_path()
    with remote.get_authinfo().get_transport() as transport:
        if not transport.isdir(path):
            return f'{where} does not exist any more'
        missing = [name for name in required if not transport.isfile(os.path.join(path, name))]
        empty = not transport.listdir(path)
    if empty:
        return f'{where} is empty'
    if missing:
        return f'{where} lacks {", ".join(missing)}'
    return None


def forget_dead_folder(remote: orm.RemoteData) -> list[orm.ProcessNode]:
    """Mark the calculation that created ``remote``, and every calculation of the same hash whose ``remote_folder``
    is the same folder (its cache source, its other clones), as invalid cache sources; return the nodes marked.

    Calculations of the same hash that ran in another folder stay valid: their folders are checked when they are
    handed out."""
    creator = remote.creator
    if creator is None:
        return []
    path, computer = remote.get_remote_path(), remote.computer.uuid
    marked = []
    for node in [creator, *creator.base.caching.get_all_same_nodes()]:
        folder = node.outputs.remote_folder if 'remote_folder' in node.outputs else None
        same_folder = folder is not None and folder.get_remote_path() == path and folder.computer.uuid == computer
        if (node.pk == creator.pk or same_folder) and node.pk not in {m.pk for m in marked}:
            node.base.caching.is_valid_cache = False
            marked.append(node)
    return marked
