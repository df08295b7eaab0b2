"""Progress of a CP2K run read from its main output, while it runs or after it stopped. No AiiDA import.

:func:`read_scf_cycles` splits the output into SCF cycles (one per energy evaluation) with the convergence column and
total energy of every step; :func:`read_evaluation_energies` gives the energy of every evaluation and
:func:`read_trajectory_steps` the optimisation or MD steps; :func:`stop_reason`
decides whether a run should be stopped now rather than left to exhaust ``MAX_SCF`` or ``MAX_ITER``. The CalcJob
monitor (:mod:`aiida_qdtraps.monitors`) asks it of the running output, and the parser asks it again of the output
the monitor stopped, so both use the same thresholds.

The step lines read are those of CP2K 2023-2026, diagonalisation and OT alike; CP2K 2026 writes a convergence below
1e-8 in E notation::

     12 P_Mix/Diag. 0.40E+00    6.9     0.00038170     -1208.9220386714 -1.53E-05
      3 OT DIIS     0.15E+00    0.5     0.01234567      -501.6088581133 -1.20E-03
     62 Broy./Diag. 0.40E+00    0.5     8.8773E-10       -78.5118461939  1.56E-11
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .cp2k_files import read_total_energies

#: One SCF step line: step number, method (``OT`` takes two words), step size, time, convergence, energy, change.
SCF_STEP = re.compile(r'^\s+(\d+)\s+(?:OT \S+|\S+)\s+\S+\s+[\d.]+\s+([\d.]+(?:E[-+]\d+)?)\s+(-?\d+\.\d+)\s+\S+\s*$',
                      re.M)
_SCF_HEADER = re.compile(r'^\s+Step\s+Update method\s+Time\s+Convergence\s+Total energy\s+Change\s*$', re.M)
_SCF_CONVERGED = re.compile(r'\*\*\* SCF run converged in\s+\d+ steps')
#: CP2K's warning at the end of an SCF cycle that reached MAX_SCF (the run goes on in a GEO_OPT / MD).
SCF_NOT_CONVERGED = 'SCF run NOT converged'
_RUN_TYPE = re.compile(r'^\s*GLOBAL\|\s+Run type\s+(\S+)\s*$', re.M)
#: ``OPTIMIZATION STEP:  <n>`` of a GEO_OPT / CELL_OPT, ``MD| Step number  <n>`` of an MD (CP2K 2022.2 to 2026).
_TRAJECTORY_STEP = re.compile(r'^\s*(?:OPTIMIZATION STEP:|MD\| Step number)\s+(\d+)\s*$', re.M)
#: Run types whose later steps are computed from the forces of every SCF cycle (CP2K carries on after an unconverged
#: cycle in all of them).
TRAJECTORY_RUN_TYPES = frozenset({'GEO_OPT', 'CELL_OPT', 'MD', 'BAND'})

#: Defaults of :func:`stop_reason` (and of the CalcJob monitor); docs/reliability.md says how they were chosen.
SCF_WINDOW = 50
SCF_FACTOR = 5.0
DIVERGED_WINDOW = 10
DIVERGED_FACTOR = 5.0
GEO_WINDOW = 25
GEO_TOLERANCE = 1.0e-7


@dataclass
class ScfCycle:
    """One SCF cycle: the convergence column and total energy (Ha) of each step, and how it ended."""

    residuals: np.ndarray
    energies: np.ndarray
    status: str  # 'converged', 'not converged' or 'running' (no verdict printed yet)


def read_run_type(text: str) -> str | None:
    """CP2K's ``GLOBAL| Run type`` (``ENERGY``, ``ENERGY_FORCE``, ``GEO_OPT``, ``MD``, ...), None if not printed yet."""
    match = _RUN_TYPE.search(text)
    return match.group(1).upper() if match else None


def read_scf_cycles(text: str) -> list[ScfCycle]:
    """The SCF cycles of a CP2K main output, in order; the last one may still be running."""
    starts = [match.end() for match in _SCF_HEADER.finditer(text)]
    cycles = []
    for index, start in enumerate(starts):
        end = starts[index + 1] if index + 1 < len(starts) else len(text)
        chunk = text[start:end]
        converged, not_converged = _SCF_CONVERGED.search(chunk), chunk.find(SCF_NOT_CONVERGED)
        verdicts = [(converged.start(), 'converged')] if converged else []
        if not_converged >= 0:
            verdicts.append((not_converged, 'not converged'))
        status = min(verdicts)[1] if verdicts else 'running'
        if verdicts:
            chunk = chunk[:min(verdicts)[0]]
        steps = SCF_STEP.findall(chunk)
        cycles.append(ScfCycle(residuals=np.array([float(step[1]) for step in steps]),
                               energies=np.array([float(step[2]) for step in steps]), status=status))
    return cycles


def read_trajectory_steps(text: str) -> list[int]:
    """The numbers of the optimisation steps (``OPTIMIZATION STEP:``) or MD steps (``MD| Step number``) a CP2K run
    has started, in order; empty for a single point."""
    return [int(number) for number in _TRAJECTORY_STEP.findall(text)]


def read_evaluation_energies(text: str) -> np.ndarray:
    """The total energy (Ha) of every finished energy evaluation (``ENERGY| Total FORCE_EVAL``), in order; the
    ``energy [a.u.]:`` line of CP2K up to 2024.x and the ``energy [hartree]`` line of 2025.1 on alike."""
    return read_total_energies(text)


def scf_stalled(residuals, window: int = SCF_WINDOW, factor: float = SCF_FACTOR) -> bool:
    """Whether the best residual of the last ``window`` steps is not ``factor`` times below the best one before them.

    A converging SCF gains far more than that over 50 steps (the α 0.1 density-matrix mixing of the 32-atom Ga10P4F18,
    one of the slowest that converged here, gains ~10 % per step: 200× over 50 steps); one that oscillates between two
    states or has diverged gains nothing.
    """
    residuals = np.asarray(residuals, dtype=float)
    if window < 1 or factor <= 1:
        raise ValueError(f'window must be >= 1 and factor > 1, got window={window!r}, factor={factor!r}')
    if len(residuals) <= window:
        return False
    return bool(residuals[-window:].min() > residuals[:-window].min() / factor)


def scf_diverged(residuals, window: int = DIVERGED_WINDOW, factor: float = DIVERGED_FACTOR) -> bool:
    """Whether each of the last ``window`` residuals is ``factor`` times above the cycle's first one.

    A diverging density-matrix mixing climbs from ~1.5 to 10-40 within 10 steps and stays there (Cd13Se4Cl18,
    Ga10P4F18, Ga16P13Cl9, Cd16Se13Cl6 at ALPHA 0.4); a converging cycle may overshoot its first residual for a few
    steps, not for ten.
    """
    residuals = np.asarray(residuals, dtype=float)
    if window < 1 or factor <= 1:
        raise ValueError(f'window must be >= 1 and factor > 1, got window={window!r}, factor={factor!r}')
    if len(residuals) <= window:
        return False
    return bool(residuals[-window:].min() > factor * residuals[0])


def optimisation_stalled(energies, window: int = GEO_WINDOW, tolerance: float = GEO_TOLERANCE) -> bool:
    """Whether none of the last ``window`` evaluations lowered the energy by more than ``tolerance`` (Ha) below the
    lowest one before them: an optimiser oscillating between geometries, or stuck on noisy forces."""
    energies = np.asarray(energies, dtype=float)
    if window < 1 or tolerance < 0:
        raise ValueError(f'window must be >= 1 and tolerance >= 0, got window={window!r}, tolerance={tolerance!r}')
    if len(energies) <= window:
        return False
    return bool(energies[-window:].min() > energies[:-window].min() - tolerance)


def stop_reason(text: str, scf_window: int = SCF_WINDOW, scf_factor: float = SCF_FACTOR,
                stop_unconverged_scf: bool = True, diverged_window: int = DIVERGED_WINDOW,
                diverged_factor: float = DIVERGED_FACTOR, geo_window: int = GEO_WINDOW,
                geo_tolerance: float = GEO_TOLERANCE) -> tuple[str, str] | None:
    """Why a CP2K run with this output should be stopped now, or None to let it go on.

    :returns: ``(kind, message)``, ``kind`` one of

        - ``'scf_unconverged'``: an SCF cycle of a GEO_OPT/CELL_OPT/MD/BAND run ended unconverged (CP2K carries on with
          its forces; only with ``stop_unconverged_scf``);
        - ``'scf_diverged'``: the last ``diverged_window`` residuals of the running SCF cycle are all
          ``diverged_factor`` times above its first one;
        - ``'scf_stalled'``: the running SCF cycle has not gained ``scf_factor`` in its last ``scf_window`` steps;
        - ``'geometry_stalled'``: no lower energy in the last ``geo_window`` evaluations of a GEO_OPT/CELL_OPT.
    """
    run_type = read_run_type(text)
    cycles = read_scf_cycles(text)
    if stop_unconverged_scf and run_type in TRAJECTORY_RUN_TYPES:
        for number, cycle in enumerate(cycles, 1):
            if cycle.status == 'not converged':
                last = f'{cycle.residuals[-1]:.1e}' if len(cycle.residuals) else 'unknown'
                return 'scf_unconverged', (f'SCF cycle {number} of this {run_type} ended unconverged after '
                                           f'{len(cycle.residuals)} steps (last residual {last}); CP2K would carry on '
                                           'with its forces')
    if cycles and cycles[-1].status == 'running' and scf_diverged(cycles[-1].residuals, diverged_window,
                                                                  diverged_factor):
        residuals = cycles[-1].residuals
        return 'scf_diverged', (f'SCF cycle {len(cycles)} diverged: its last {diverged_window} residuals are all '
                                f'>= {residuals[-diverged_window:].min():.1e}, over {diverged_factor:g}x its first '
                                f'({residuals[0]:.1e}; {len(residuals)} steps)')
    if cycles and cycles[-1].status == 'running' and scf_stalled(cycles[-1].residuals, scf_window, scf_factor):
        residuals = cycles[-1].residuals
        return 'scf_stalled', (f'SCF cycle {len(cycles)} stalled: best residual {residuals[-scf_window:].min():.1e} in '
                               f'its last {scf_window} steps, {residuals[:-scf_window].min():.1e} before them (less '
                               f'than a factor {scf_factor:g} gained; {len(residuals)} steps)')
    if run_type in ('GEO_OPT', 'CELL_OPT'):
        try:
            energies = read_evaluation_energies(text)
        except ValueError:  # energies in another unit than Hartree: the parser refuses them; the monitor must not fail
            return None
        if optimisation_stalled(energies, geo_window, geo_tolerance):
            return 'geometry_stalled', (f'{run_type} stalled: no energy lower than {energies[:-geo_window].min():.8f} '
                                        f'Ha (by {geo_tolerance:g} Ha) in the last {geo_window} of '
                                        f'{len(energies)} evaluations')
    return None


#: gfortran's runtime line when a signal stops the program; a backtrace follows (``#3  0x7f... in __elpa_..._MOD_...``).
_SIGNAL = re.compile(r'Program received signal (SIG[A-Z0-9]+)')
_BACKTRACE_FRAME = re.compile(r'^#\d+\s+0x[0-9a-fA-F]+ in (\S+)', re.M)


def crashed_in_library(stderr: str, library: str) -> str | None:
    """The signal (``SIGFPE``, ``SIGSEGV``, ...) that stopped CP2K when a frame of the backtrace on its standard error
    names ``library`` (case-insensitive, e.g. ``elpa``); None for any other end of the run."""
    signal = _SIGNAL.search(stderr or '')
    if signal is None:
        return None
    frames = _BACKTRACE_FRAME.findall(stderr[signal.end():])
    return signal.group(1) if any(library.lower() in frame.lower() for frame in frames) else None


_ABORT_ART = re.compile(r'^(?:\[ABORT\]|\\___/|O/\||/\| \||/ \\|\|)\s*')
_ABORT_SOURCE = re.compile(r'\s*\S+\.F:\d+\s*$')


def read_abort_message(text: str) -> str | None:
    """The message of CP2K's ``[ABORT]`` box (its words joined by single spaces, without the drawing and the source
    file), None when the output has no such box."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if '[ABORT]' in line), None)
    if start is None:
        return None
    words = []
    for line in lines[start:start + 12]:
        if set(line.strip()) <= {'*'}:  # the closing line of the box
            break
        body = line.strip().strip('*').strip()
        body = _ABORT_SOURCE.sub('', _ABORT_ART.sub('', body))
        words.extend(body.split())
    return ' '.join(words) or None


#: CP2K's LBFGS ends a GEO_OPT on its own criteria (projected gradient, relative energy change) with this banner and
#: without "GEOMETRY OPTIMIZATION COMPLETED", whatever the MAX_FORCE of the input
LBFGS_OWN_STOP = 'Specific L-BFGS convergence criteria'
_MAX_GRADIENT = re.compile(r'^\s*Max\. gradient\s+=\s+(\S+)\s*$', re.M)
_GRADIENT_LIMIT = re.compile(r'^\s*Conv\. limit for gradients\s+=\s+(\S+)\s*$', re.M)


def lbfgs_stopped_above_criterion(text: str) -> tuple[float, float] | None:
    """``(largest gradient, its limit)`` (Ha/bohr) of the last optimisation step when CP2K's LBFGS ended a GEO_OPT on
    its own criteria with the largest gradient still above the input's MAX_FORCE; None otherwise (a completed
    optimisation, another optimiser, an LBFGS stop below the limit, no step printed).

    CP2K 2023.1 reports such a run as finished. On the GFN1-xTB relax of the built In4PF9 it stopped at step 51 with a
    largest gradient of 1.7e-3 against a limit of 4.5e-4 Ha/bohr, the energy rising in the last step.
    """
    if LBFGS_OWN_STOP not in text or 'GEOMETRY OPTIMIZATION COMPLETED' in text:
        return None
    gradients, limits = _MAX_GRADIENT.findall(text), _GRADIENT_LIMIT.findall(text)
    if not gradients or not limits:
        return None
    gradient, limit = float(gradients[-1]), float(limits[-1])
    return (gradient, limit) if gradient > limit else None
