"""CalcJob monitors (entry point group ``aiida.calculations.monitors``).

``qdtraps.cp2k_scf`` (:func:`cp2k_scf`) reads the main output of a running CP2K job and stops the job when
:func:`aiida_qdtraps.parsers.cp2k_progress.stop_reason` finds a reason: an SCF cycle of a GEO_OPT/CELL_OPT/MD that
ended unconverged (CP2K 2023-2026 carry on with its forces), a diverged or stalled SCF, or a geometry optimisation
that no longer lowers the energy. The job is killed, retrieved and parsed as usual (``override_exit_code=False``):
``qdtraps.cp2k`` reads the stopped output with the same thresholds and returns ``ERROR_SCF_NOT_CONVERGED`` or
``ERROR_GEOMETRY_CONVERGENCE_NOT_REACHED``, so the work chain's handlers take over minutes instead of hours later.

The CP2K work chains switch it on by default (:func:`default_cp2k_monitors`); docs/reliability.md lists the
thresholds and what they were measured on.
"""

from __future__ import annotations

import inspect
import tempfile
from pathlib import Path

from aiida import orm
from aiida.engine.processes.calcjobs.monitors import CalcJobMonitorResult

from .parsers.cp2k_progress import (
    DIVERGED_FACTOR,
    DIVERGED_WINDOW,
    GEO_TOLERANCE,
    GEO_WINDOW,
    SCF_FACTOR,
    SCF_WINDOW,
    stop_reason,
)

#: Entry point of :func:`cp2k_scf`.
CP2K_SCF_MONITOR = 'qdtraps.cp2k_scf'
#: Seconds between two reads of the output (at most as often as the scheduler is polled).
POLL_INTERVAL = 30
#: The monitor's keyword arguments and their defaults: those of :func:`stop_reason`.
CP2K_SCF_DEFAULTS = {name: parameter.default for name, parameter in inspect.signature(stop_reason).parameters.items()
                     if name != 'text'}


def default_cp2k_monitors(poll_interval: int = POLL_INTERVAL, **kwargs) -> dict[str, orm.Dict]:
    """The ``monitors`` input of a CP2K CalcJob with :func:`cp2k_scf` at its defaults (or ``kwargs``)."""
    unknown = set(kwargs) - set(CP2K_SCF_DEFAULTS)
    if unknown:
        raise ValueError(f'unknown cp2k_scf monitor settings {sorted(unknown)}; known: {sorted(CP2K_SCF_DEFAULTS)}')
    return {'scf': orm.Dict({'entry_point': CP2K_SCF_MONITOR, 'minimum_poll_interval': int(poll_interval),
                             'kwargs': {**CP2K_SCF_DEFAULTS, **kwargs}})}


def monitor_settings(node: orm.CalcJobNode) -> dict | None:
    """The keyword arguments of the ``cp2k_scf`` monitor attached to ``node`` (None when it has none)."""
    monitors = node.base.links.get_incoming(link_label_filter='monitors__%').all()
    for triple in monitors:
        settings = triple.node.get_dict()
        if settings.get('entry_point') == CP2K_SCF_MONITOR:
            return {**CP2K_SCF_DEFAULTS, **settings.get('kwargs', {})}
    return None


def cp2k_scf(node: orm.CalcJobNode, transport, scf_window: int = SCF_WINDOW, scf_factor: float = SCF_FACTOR,
             stop_unconverged_scf: bool = True, diverged_window: int = DIVERGED_WINDOW,
             diverged_factor: float = DIVERGED_FACTOR, geo_window: int = GEO_WINDOW,
             geo_tolerance: float = GEO_TOLERANCE) -> CalcJobMonitorResult | None:
    """Stop a CP2K job whose SCF or optimisation will not get anywhere (see the module docstring)."""
    workdir = node.get_remote_workdir()
    if workdir is None:
        return None
    path = str(Path(workdir) / node.get_option('output_filename'))
    if not transport.path_exists(path):
        return None
    with tempfile.TemporaryDirectory() as folder:
        local = Path(folder) / 'output'
        transport.getfile(path, str(local))
        text = local.read_text(errors='replace')
    reason = stop_reason(text, scf_window=scf_window, scf_factor=scf_factor, stop_unconverged_scf=stop_unconverged_scf,
                         diverged_window=diverged_window, diverged_factor=diverged_factor, geo_window=geo_window,
                         geo_tolerance=geo_tolerance)
    if reason is None:
        return None
    return CalcJobMonitorResult(message=f'stopped by the cp2k_scf monitor: {reason[1]}', override_exit_code=False)
