"""Readers for the files of a CP2K ``RUN_TYPE MD``: XYZ trajectories, the ``.ener`` table, the ``MOMENTS`` dipoles.

No AiiDA import. A CP2K MD writes, every ``EACH MD`` steps:

- ``<project>-pos-1.xyz``: positions (Å), comment line ``i = <step>, time = <fs>, E = <potential, Hartree>``;
- ``<project>-vel-1.xyz``: velocities in the unit of ``&MOTION &PRINT &VELOCITIES UNIT`` (bohr/au_t by default;
  :func:`velocity_factor` converts the units the MD work chain asks for to Å/fs);
- ``<project>-1.ener``: ``step, time [fs], kinetic [Ha], temperature [K], potential [Ha], conserved [Ha], used time
  [s]``;
- ``&DFT &PRINT &MOMENTS`` (``PERIODIC F``): one ``Dipole moment [Debye]`` block per printed step (under xTB one
  ``TB_DIPOLE| Moment [Debye]`` line);
- ``&DFT &PRINT &MO`` (``ENERGIES``, ``OCCUPATION_NUMBERS``, ``MO_INDEX_RANGE``, ``&EACH MD n QS_SCF 0``; closed
  shell): one ``MO| EIGENVALUES AND OCCUPATION NUMBERS`` block per printed step, a row ``MO| index  Ha  eV
  occupation`` per orbital of the range (:func:`read_mo_energies`, :func:`frontier_levels`).

A run restarted with ``&EXT_RESTART RESTART_COUNTERS`` continues the step numbering, so the pieces of several runs are
joined by step number (:func:`join_by_step`).
"""

from __future__ import annotations

import re

import numpy as np
from ase.units import Bohr, Hartree, _amu, _aut, _e

from .cp2k_files import finite_numbers

#: 1 Debye in e·Å.
DEBYE_E_ANGSTROM = 0.20819433622621247
#: atomic unit of time in fs
AU_TIME_FS = _aut * 1e15

_COMMENT = re.compile(r'i\s*=\s*(\d+)\s*,\s*time\s*=\s*([-+0-9.Ee]+)')
_DIPOLE = re.compile(r'Dipole moment \[Debye\]\s*\n\s*X=\s*(\S+)\s+Y=\s*(\S+)\s+Z=\s*(\S+)'
                     # the xTB form of the block (``&QS METHOD xTB``)
                     r'|TB_DIPOLE\|\s+Moment \[Debye\]\s+(\S+)\s+(\S+)\s+(\S+)')

#: velocity units CP2K can print and their factor to Å/fs
VELOCITY_UNITS = {'angstrom*fs^-1': 1.0, 'bohr*au_t^-1': Bohr / AU_TIME_FS}


def velocity_factor(unit: str) -> float:
    """Factor from a CP2K velocity unit to Å/fs; raises ValueError naming an unknown unit."""
    key = unit.strip().lower()
    if key not in VELOCITY_UNITS:
        raise ValueError(f'velocity unit {unit!r} is not known; use one of {sorted(VELOCITY_UNITS)}')
    return VELOCITY_UNITS[key]


def read_xyz_frames(text: str) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Frames of a CP2K MD XYZ file (positions or velocities).

    :returns: ``(symbols, steps (F,), times_fs (F,), values (F, N, 3))`` in the file's own unit.
    :raises ValueError: a frame with another atom count or other elements, an atom line without three coordinates,
        or a value that is not a finite number. A last frame cut off by a killed run is left out.
    """
    lines = text.splitlines()
    symbols: list[str] | None = None
    steps, times, frames = [], [], []
    index = 0
    while index < len(lines):
        if not lines[index].strip():
            index += 1
            continue
        try:
            n_atoms = int(lines[index].split()[0])
            if n_atoms <= 0:
                raise ValueError
        except ValueError as exception:
            raise ValueError(f'line {index + 1}: expected an atom count, got {lines[index]!r}') from exception
        block = lines[index + 2:index + 2 + n_atoms]
        if len(block) < n_atoms:
            break  # the last frame was cut off by a killed run: keep the complete ones
        match = _COMMENT.search(lines[index + 1])
        if match is None:
            raise ValueError(f'line {index + 2}: no "i = <step>, time = <fs>" in the comment {lines[index + 1]!r}')
        rows = [line.split() for line in block]
        for number, row in enumerate(rows, index + 3):
            if len(row) < 4:
                raise ValueError(f'line {number}: expected an element and three coordinates, got {lines[number - 1]!r}')
        frame_symbols = [row[0] for row in rows]
        if symbols is None:
            symbols = frame_symbols
        elif frame_symbols != symbols:
            raise ValueError(f'frame at step {match.group(1)} has {len(frame_symbols)} atoms / other elements than '
                             f'the first frame ({len(symbols)} atoms)')
        steps.append(int(match.group(1)))
        times.append(finite_numbers([match.group(2)], f'line {index + 2} (time)')[0])
        frames.append([finite_numbers(row[1:4], f'line {number}') for number, row in enumerate(rows, index + 3)])
        index += 2 + n_atoms
    if symbols is None:
        raise ValueError('no frame in the XYZ file')
    return symbols, np.array(steps), np.array(times), np.array(frames)


def read_ener(text: str) -> dict[str, np.ndarray]:
    """The ``.ener`` table: ``step``, ``time_fs``, ``kinetic_energy``, ``potential_energy``, ``conserved_energy`` (eV),
    ``temperature`` (K).

    :raises ValueError: no rows, or a value that is not a finite number (``NaN``, ``***``), naming its line.
    """
    rows = [(number, line.split()) for number, line in enumerate(text.splitlines(), 1)
            if line.strip() and not line.lstrip().startswith('#')]
    rows = [(number, row) for number, row in rows if len(row) >= 6]
    if not rows:
        raise ValueError('no rows in the .ener file')
    table = np.array([finite_numbers(row[:6], f'line {number} of the .ener file') for number, row in rows])
    return {'step': table[:, 0].astype(int), 'time_fs': table[:, 1], 'kinetic_energy': table[:, 2] * Hartree,
            'temperature': table[:, 3], 'potential_energy': table[:, 4] * Hartree,
            'conserved_energy': table[:, 5] * Hartree}


def read_dipoles(text: str) -> np.ndarray:
    """Dipole moments (e·Å, shape (M, 3)) of the ``Dipole moment [Debye]`` blocks of a MOMENTS file, in order.

    :raises ValueError: if a component is not a finite number (``NaN``, ``***``).
    """
    values = [finite_numbers(list(groups[:3] if groups[0] else groups[3:]),
                             f'dipole block {number} of the MOMENTS file')
              for number, groups in enumerate(_DIPOLE.findall(text), 1)]
    return np.array(values).reshape(-1, 3) * DEBYE_E_ANGSTROM


#: the header of the block printed after a frame's SCF; the same header with ``AFTER SCF STEP n`` marks a block of one
#: SCF iteration (CP2K 2023.1 prints one for the first iteration from a restarted wavefunction), which is not a frame's
_MO_BLOCK = re.compile(r'MO\| EIGENVALUES AND OCCUPATION NUMBERS\s*(AFTER SCF STEP)?')
_MO_ROW = re.compile(r'^\s*MO\|\s+(\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$')
#: the line CP2K writes once per SCF setup (closed shell: the HOMO is this MO index)
_OCCUPIED = re.compile(r'Number of occupied orbitals:\s+(\d+)')


def read_mo_energies(text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MO indices (M,), shared by every block, and energies (eV) and occupations (B, M), one row per
    ``MO| EIGENVALUES AND OCCUPATION NUMBERS`` block of an ``&MO`` print file (closed shell), in order. Blocks of
    single SCF iterations (``... AFTER SCF STEP n``) are skipped.

    :raises ValueError: if the blocks list different MOs (an open-shell file has alpha and beta blocks) or a value is
        not a finite number.
    """
    blocks: list[list[tuple[str, ...]]] = []
    keep = False
    for line in text.splitlines():
        header = _MO_BLOCK.search(line)
        if header:
            keep = header.group(1) is None
            if keep:
                blocks.append([])
        elif keep:
            match = _MO_ROW.match(line)
            if match:
                blocks[-1].append(match.groups())
    if not blocks:
        return np.zeros(0, dtype=int), np.zeros((0, 0)), np.zeros((0, 0))
    indices = [tuple(int(row[0]) for row in block) for block in blocks]
    if len(set(indices)) != 1 or not indices[0]:
        sizes = sorted({len(i) for i in indices})
        raise ValueError(f'the MO blocks list different orbitals (rows per block {sizes}): not one closed-shell range')
    energies = np.array([finite_numbers([row[2] for row in block], f'MO block {number} (eV)')
                         for number, block in enumerate(blocks, 1)], dtype=float)
    occupations = np.array([finite_numbers([row[3] for row in block], f'MO block {number} (occupation)')
                            for number, block in enumerate(blocks, 1)], dtype=float)
    return np.array(indices[0]), energies, occupations


def occupied_orbitals(output: str) -> int | None:
    """The ``Number of occupied orbitals`` of a CP2K output (its first mention), or None."""
    match = _OCCUPIED.search(output)
    return int(match.group(1)) if match else None


_MD_STEP = re.compile(r'^ MD\| Step number\s+(\d+)\s*$', re.M)
_FORCE_EVAL_ENERGY = re.compile(r'^ ENERGY\| Total FORCE_EVAL', re.M)


def md_evaluations(output: str) -> tuple[list[int], bool]:
    """``(steps, trailing)`` of one CP2K MD run from its main output: the MD steps it completed, in order, and whether
    it evaluated the forces once more after the last of them.

    Every run evaluates its start before its first step (step 0 of a first run; the restarted step of a continued
    one). A continued run that ends at its ``MAX_STEPS`` cap evaluates the next step's forces before it stops
    (CP2K 2023.1), so its per-frame files (dipoles, MO energies) hold one block more at the end; a run stopped at
    its wall time abandons that evaluation inside the SCF and prints nothing for it.
    """
    steps = [int(step) for step in _MD_STEP.findall(output)]
    evaluations = len(_FORCE_EVAL_ENERGY.findall(output))
    return steps, bool(steps) and evaluations > len(steps) + 1


def frontier_levels(indices: np.ndarray, energies: np.ndarray, homo_index: int) -> tuple[np.ndarray, np.ndarray]:
    """HOMO and LUMO energies (eV) of each block of :func:`read_mo_energies`: the MO ``homo_index`` (1-based, the
    aufbau HOMO: the number of doubly occupied orbitals) and the next one.

    :raises ValueError: if the printed range does not hold both.
    """
    columns = [int(i) for i in indices]
    if homo_index not in columns or homo_index + 1 not in columns:
        shown = f'{columns[0]}..{columns[-1]}' if columns else 'none'
        raise ValueError(f'the printed MO range ({shown}) does not hold the HOMO {homo_index} and the LUMO '
                         f'{homo_index + 1}')
    return energies[:, columns.index(homo_index)], energies[:, columns.index(homo_index + 1)]


def join_by_step(pieces: list[tuple[np.ndarray, dict[str, np.ndarray]]]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Join per-run arrays keyed by MD step: a step printed by two runs (a restart point) is kept from the later run.

    :param pieces: ``[(steps (F_i,), {name: array (F_i, ...)}), ...]`` in run order; every piece has the same names.
    :returns: ``(steps, arrays)`` sorted by step, one row per step.
    """
    if not pieces:
        raise ValueError('no MD run to join')
    names = set(pieces[0][1])
    chosen: dict[int, tuple[int, int]] = {}
    for run, (steps, arrays) in enumerate(pieces):
        if set(arrays) != names:
            raise ValueError(f'run {run} has arrays {sorted(arrays)}, the first run {sorted(names)}')
        for row, step in enumerate(steps):
            chosen[int(step)] = (run, row)
    order = sorted(chosen)
    joined = {name: np.array([pieces[chosen[s][0]][1][name][chosen[s][1]] for s in order]) for name in names}
    return np.array(order), joined


def kinetic_energy_ev(masses_amu: np.ndarray, velocities: np.ndarray) -> np.ndarray:
    """Kinetic energy (eV) per frame of velocities (F, N, 3) in Å/fs."""
    factor = _amu * (1e-10 / 1e-15) ** 2 / _e  # amu Å²/fs² in eV
    return 0.5 * factor * np.einsum('i,fij->f', np.asarray(masses_amu, float), np.asarray(velocities, float) ** 2)
