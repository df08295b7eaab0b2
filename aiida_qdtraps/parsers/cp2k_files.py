"""Readers for CP2K output files: MO eigenvalue blocks, MOLDEN, PDOS, timings. No AiiDA import.

Energies are returned in eV (CODATA 2018 Hartree, as ``ase.units.Hartree``).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from ase.units import Hartree

_MO_HEADER = re.compile(r'^\s*MO\|\s*(?:(ALPHA|BETA)\s+)?EIGENVALUES AND OCCUPATION NUMBERS', re.M)
_MO_ROW = re.compile(r'^\s*MO\|\s+(\d+)\s+(-?\d+\.\d+)\s+(-?\d+\.\d+)\s+(\d+\.\d+)\s*$')


def _number(value: str, what: str) -> float:
    """``float(value)``, refusing what is not a finite number (``NaN``, ``***``, an overflow such as ``1.0E+999``).

    :raises ValueError: naming ``what`` (the line or table the value comes from) and the value.
    """
    try:
        number = float(value)
    except ValueError:
        number = float('nan')
    if not np.isfinite(number):
        raise ValueError(f'{what}: {value!r} is not a finite number (garbled or truncated output?)')
    return number


def finite_numbers(fields: Sequence[str], what: str) -> list[float]:
    """The fields as floats; :raises ValueError: naming ``what`` if one is not a finite number (``NaN``, ``***``)."""
    try:
        values = [float(field) for field in fields]
    except ValueError:
        values = [float('nan')]
    if not np.all(np.isfinite(values)):
        raise ValueError(f'{what}: {" ".join(fields)!r} holds a value that is not a finite number')
    return values


def parse_mo_eigenvalues(text: str) -> dict[str, np.ndarray]:
    """Last MO eigenvalue block(s) printed by ``&DFT &PRINT &MO`` in a CP2K main output.

    :returns: ``{'alpha': array (n, 2) of [energy_eV, occupation], 'beta': ...}``; a restricted
        calculation has only ``'alpha'``. Empty dict if no block is found.
    """
    blocks: dict[str, np.ndarray] = {}
    headers = list(_MO_HEADER.finditer(text))
    for header in headers:
        spin = (header.group(1) or 'ALPHA').lower()
        rows = []
        for line in text[header.end():].splitlines()[1:]:
            if not line.strip().startswith('MO|'):
                break
            match = _MO_ROW.match(line)
            if match:
                rows.append((float(match.group(3)), float(match.group(4))))
            elif rows:
                break
        if rows:
            blocks[spin] = np.array(rows)  # later blocks overwrite earlier ones: keep the final SCF
    return blocks


def homo_lumo(energies: np.ndarray, occupations: np.ndarray, threshold: float = 1e-3) -> tuple[int, int]:
    """Indices of the highest occupied and lowest unoccupied orbital (0-based).

    With integer occupations: the last orbital holding more than ``threshold`` electrons and the first holding less.
    With smeared (fractional) occupations, as under Fermi smearing or xTB's electronic temperature, the aufbau
    count: the electrons of the spin channel fill ⌈N / n_max⌉ orbitals in energy order (``n_max`` 2 for a restricted,
    1 for an unrestricted channel), whatever the tail of the Fermi function puts above the gap.
    """
    occupations = np.asarray(occupations, dtype=float)
    full = 2.0 if occupations.max(initial=0.0) > 1.0 + threshold else 1.0
    if np.any((occupations > threshold) & (occupations < full - threshold)):
        n_filled = int(np.ceil(occupations.sum() / full - threshold))
        if not 0 < n_filled < len(occupations):
            raise ValueError(f'{occupations.sum():.3f} electrons in {len(occupations)} orbitals leave no HOMO and '
                             'LUMO; increase ADDED_MOS')
        order = np.argsort(np.asarray(energies, dtype=float), kind='stable')
        return int(order[n_filled - 1]), int(order[n_filled])
    occupied = np.where(occupations > threshold)[0]
    empty = np.where(occupations <= threshold)[0]
    if len(occupied) == 0 or len(empty) == 0:
        raise ValueError('need at least one occupied and one virtual orbital to locate HOMO and LUMO; '
                         'increase ADDED_MOS')
    return int(occupied.max()), int(empty.min())


def parse_total_walltime(text: str) -> float | None:
    """Total wall time (s) from the CP2K timing table (line ``CP2K  1  1.0 ...``)."""
    match = re.findall(r'^\s*CP2K\s+1\s+\S+\s+\S+\s+\S+\s+\S+\s+(\S+)\s*$', text, re.M)
    return _number(match[-1], 'CP2K timing line "CP2K  1 ..."') if match else None


#: ``CP2K| version string:   CP2K version 2024.3``; a build of the master branch adds ``(Development Version)``.
_VERSION = re.compile(r'^\s*CP2K\|\s+version string:\s+CP2K version\s+(\S+)(\s+\(Development Version\))?\s*$', re.M)

#: The CP2K versions whose main outputs the readers of this module are tested on (recordings in ``tests/data/cp2k``
#: and ``tests/data/cp2k/versions``; docs/cp2k_versions.md), named as :func:`parse_cp2k_version` returns them.
TESTED_CP2K_VERSIONS = frozenset({'2023.1', '2024.1', '2024.3', '2025.1', '2025.2', '2026.2'})


def parse_cp2k_version(text: str) -> str | None:
    """The CP2K version of a main output (``'2024.3'``, ``'2026.1 (Development Version)'``), None if not printed."""
    match = _VERSION.search(text)
    if match is None:
        return None
    return match.group(1) + (' (Development Version)' if match.group(2) else '')


def untested_version_warning(version: str | None) -> str | None:
    """A warning for an output of a CP2K version outside :data:`TESTED_CP2K_VERSIONS` (None for a tested one).

    The readers follow the blocks, not the version (a master build labelled 2024.3 already prints the 2025 energy
    line), so an untested version is read all the same; the warning says its numbers were not checked against a
    recording of that version.
    """
    if version in TESTED_CP2K_VERSIONS:
        return None
    tested = ', '.join(sorted(TESTED_CP2K_VERSIONS))
    if version is None:
        return f'no "CP2K| version string" line in the CP2K output; the readers are tested on CP2K {tested}'
    return (f'CP2K version {version} is not among the versions the output readers are tested on ({tested}); '
            'check energies, forces and charges of this output by hand (docs/cp2k_versions.md)')


#: One ``ENERGY| Total FORCE_EVAL ( <method> ) energy`` line: ``energy [a.u.]:  <value>`` up to CP2K 2024.x (and the
#: master branch until November 2024), ``energy [hartree]  <value>`` without the colon from 2025.1 on, ``energy
#: (a.u.):`` before 8.1. CP2K's own ``gap`` and ``free energy`` lines (SIRIUS) are not matched.
_ENERGY_LINE = re.compile(r'^\s*ENERGY\|\s+Total FORCE_EVAL \(\s*\w+\s*\)\s+energy\s+[\[(](?P<unit>[^\])]*)[\])]:?'
                          r'\s+(?P<value>-?\d+\.\d+(?:[Ee][-+]?\d+)?)\s*$', re.M)
#: Units CP2K labels Hartree with: ``a.u.`` up to 2024.x, ``hartree`` from 2025.1 on (``ENERGY_UNIT`` default).
HARTREE_UNITS = frozenset({'a.u.', 'hartree'})


def read_total_energies(text: str) -> np.ndarray:
    """The total energy (Ha) of every ``ENERGY| Total FORCE_EVAL`` line of a CP2K main output, in order.

    Own regular expression: aiida-cp2k reads the 9th word of any ``ENERGY|`` line, which is the energy in both layouts
    but the band gap on a ``gap`` line, and it labels every value ``a.u.``; cp2kdata 0.7.3 reads only the ``[a.u.]:``
    layout.

    :raises ValueError: if a line gives the energy in another unit than Hartree (``PROGRAM_RUN_INFO/ENERGY_UNIT``) or
        a value that is not a finite number (``1.0E+999``).
    """
    energies = []
    for match in _ENERGY_LINE.finditer(text):
        if match['unit'] not in HARTREE_UNITS:
            raise ValueError(f'CP2K energy line {match.group(0).strip()!r} is in [{match["unit"]}]; expected [a.u.] '
                             'or [hartree] (Hartree): remove ENERGY_UNIT from FORCE_EVAL/PRINT/PROGRAM_RUN_INFO')
        energies.append(_number(match['value'], f'CP2K energy line {match.group(0).strip()!r}'))
    return np.array(energies)


def parse_total_energy(text: str) -> float | None:
    """The last ``ENERGY| Total FORCE_EVAL`` energy of a CP2K main output (Ha), or ``None``; both layouts
    (:func:`read_total_energies`)."""
    energies = read_total_energies(text)
    return float(energies[-1]) if len(energies) else None


def parse_reported_gap(text: str) -> float | None:
    """CP2K's own ``MO| Band gap`` (eV) of the final SCF, if printed."""
    match = re.findall(r'MO\|\s*Band gap:\s+\S+\s+a\.u\.\s+(\S+)\s+eV', text)
    return _number(match[-1], 'CP2K "MO| Band gap" line') if match else None


#: CP2K's warning when the density on the faces of a non-periodic (wavelet Poisson) cell exceeds 1e-4 e/bohr^3
#: (wrapped over two ``*** WARNING`` lines in the output)
WAVELET_EDGE_WARNING = re.compile(r'Density non-zero on the[\s*]+edges of the unit cell')


def parse_grid_quality(text: str) -> dict:
    """How well CP2K's real-space grids hold the density, from its main output.

    ``grid_electron_error``: the last ``Electronic density on regular grids`` deviation (electrons integrated on the
    grid minus the electron count); ``wavelet_edge_warnings``: how many times CP2K warned that the density on the
    faces of the non-periodic cell is above 1e-4 e/bohr^3 (``pw/ps_wavelet_methods.F``). Measured on In4PF9
    (``docs/pipeline.md``): the electron error tracks the grid spacing (GPW: 2e-3 at 200 Ry, 6e-5 at 300 Ry; for GAPW,
    which holds only the soft density on the grid, it is None), while the face warning comes and goes with
    REL_CUTOFF and the box size at the same noise.
    """
    errors = re.findall(r'Electronic density on regular grids:\s+\S+\s+(\S+)', text)
    if re.search(r'^\s*QS\| Method:\s+GAPW', text, re.M):
        # GAPW keeps the hard one-centre densities off the grid: the grid holds only the soft part (In4PF9: 87 of 120
        # electrons), so its deviation from the electron count says nothing about the grid
        errors = []
    return {'grid_electron_error': (_number(errors[-1], 'CP2K "Electronic density on regular grids" line')
                                    if errors else None),
            'wavelet_edge_warnings': len(WAVELET_EDGE_WARNING.findall(text))}


#: ``ATOMIC FORCES in [a.u.]`` (CP2K up to 2024.x): rows ``<atom> <kind> <element> x y z``, closed by ``SUM OF ATOMIC
#: FORCES``.
_LEGACY_FORCES_HEADER = re.compile(r'^\s*ATOMIC FORCES in \[(?P<unit>[^\]]*)\]\s*$', re.M)
_LEGACY_FORCES_ROW = re.compile(r'^\s*\d+\s+\d+\s+\S+\s+(\S+)\s+(\S+)\s+(\S+)\s*$')
#: ``FORCES| Atomic forces [hartree/bohr]`` (CP2K 2025.1 on): rows ``FORCES| <atom> x y z |f|``, closed by
#: ``FORCES| Sum``.
_FORCES_HEADER = re.compile(r'^\s*FORCES\|\s+Atomic forces \[(?P<unit>[^\]]*)\]\s*$', re.M)
_FORCES_ROW = re.compile(r'^\s*FORCES\|\s+\d+\s+(\S+)\s+(\S+)\s+(\S+)\s+\S+\s*$')
_FORCES_COLUMNS = re.compile(r'^FORCES\|\s+Atom\s')
#: Force units CP2K labels Hartree/Bohr with: ``a.u.`` up to 2024.x, ``hartree/bohr`` from 2025.1 on.
HARTREE_PER_BOHR_UNITS = frozenset({'a.u.', 'hartree/bohr'})


def read_force_blocks(text: str) -> list[np.ndarray]:
    """Every complete atomic forces table (``&FORCE_EVAL &PRINT &FORCES``) of a CP2K main output, in order, each of
    shape (n_atoms, 3) in Ha/bohr; both layouts (``ATOMIC FORCES in [a.u.]`` up to 2024.x, ``FORCES| Atomic forces
    [hartree/bohr]`` from 2025.1 on). A table cut off before its sum line (a running or killed job) is left out.

    Own reader: aiida-cp2k reads no forces from the main output, cp2kdata 0.7.3 only the old table, and dpdata 1.1.0
    (``cp2k/output``) reads one single point per file and joins the rows of all tables of a GEO_OPT or MD into one.

    :raises ValueError: if a table is in another unit than Hartree/Bohr (``FORCE_EVAL/PRINT/FORCES/FORCE_UNIT``) or a
        row holds a value that is not a finite number (``NaN``, ``***``).
    """
    blocks, block = [], None  # block: (row pattern, end marker, rows) of the table being read
    for line in text.splitlines():
        if 'FORCES' in line:
            header = _LEGACY_FORCES_HEADER.match(line) or _FORCES_HEADER.match(line)
            if header:
                if header['unit'] not in HARTREE_PER_BOHR_UNITS:
                    raise ValueError(f'CP2K forces table {line.strip()!r} is in [{header["unit"]}]; expected '
                                     '[a.u.] or [hartree/bohr] (Hartree/Bohr): remove FORCE_UNIT from '
                                     'FORCE_EVAL/PRINT/FORCES')
                legacy = header.re is _LEGACY_FORCES_HEADER
                block = (_LEGACY_FORCES_ROW if legacy else _FORCES_ROW,
                         'SUM OF ATOMIC FORCES' if legacy else 'FORCES| Sum', [])
                continue
        if block is None:
            continue
        row, end, rows = block
        stripped = line.strip()
        match = row.match(line)
        if match:
            rows.append([_number(value, f'CP2K forces row {stripped!r}') for value in match.groups()])
        elif stripped.startswith(end) and rows:
            blocks.append(np.array(rows))
            block = None
        elif rows or not (stripped == '' or stripped.startswith('#') or _FORCES_COLUMNS.match(stripped)):
            block = None  # cut off or not a forces table after all
    return blocks


def parse_forces(text: str) -> np.ndarray | None:
    """The last atomic forces table of a CP2K main output, shape (n_atoms, 3), Ha/bohr, or None if there is none
    (:func:`read_force_blocks`)."""
    blocks = read_force_blocks(text)
    return blocks[-1] if blocks else None


#: Headers of CP2K's population analyses (``&DFT &PRINT &MULLIKEN`` (default on), ``&LOWDIN``, ``&HIRSHFELD``).
POPULATION_ANALYSES = {
    'mulliken': 'Mulliken Population Analysis',
    'lowdin': 'LOWDIN POPULATION ANALYSIS',
    'hirshfeld': 'Hirshfeld Charges',
}


def parse_atomic_charges(text: str, analysis: str = 'mulliken') -> np.ndarray | None:
    """Net atomic charges (e) of the last ``analysis`` table in a CP2K output, or ``None`` if it is not printed.

    Mulliken/Löwdin rows are ``# Atom Element Kind Population Net-charge``; unrestricted ones have an α/β population
    pair and a spin moment after the net charge, so the net charge is the last column (RKS) or the one before (UKS).
    Hirshfeld rows end with the net charge in both cases (``... Ref-charge Population [α β Spin-moment] Net-charge``).

    :raises ValueError: if a row's net charge is not a finite number.
    """
    header = POPULATION_ANALYSES[analysis]
    start = text.rfind(header)
    if start < 0:
        return None
    charges = []
    for line in text[start:].splitlines()[1:]:
        parts = line.split()
        if parts and parts[0].isdigit():
            last = analysis == 'hirshfeld' or len(parts) == 5
            charges.append(_number(parts[-1] if last else parts[-2], f'CP2K {header} row {line.strip()!r}'))
        elif charges:  # the first non-atom line after the rows ends the table
            break
    return np.array(charges) if charges else None


def parse_dipole_moment(text: str) -> list[float] | None:
    """The last ``Dipole moment [Debye]`` vector (x, y, z) of a CP2K output (``&DFT &PRINT &MOMENTS``)."""
    match = re.findall(r'Dipole moment \[Debye\]\s*\n\s*X=\s*(\S+)\s*Y=\s*(\S+)\s*Z=\s*(\S+)', text)
    return [_number(x, 'CP2K "Dipole moment [Debye]" line') for x in match[-1]] if match else None


@dataclass
class MoldenData:
    """MOs read from a CP2K MOLDEN file with PySCF."""

    energies: np.ndarray          # (nspin, nmo) eV
    occupations: np.ndarray       # (nspin, nmo)
    coefficients: np.ndarray      # (nspin, nao, nmo), AO basis of PySCF's order (spherical)
    overlap: np.ndarray           # (nao, nao) AO overlap
    ao_atom: np.ndarray           # (nao,) atom index of each AO
    ao_labels: list[str] = field(default_factory=list)
    symbols: list[str] = field(default_factory=list)


def read_molden(path_or_text: str) -> MoldenData:
    """Read MOs, AO overlap and the AO→atom map from a CP2K MOLDEN file (``&MO_MOLDEN NDIGITS 12``).

    :raises ValueError: for a file PySCF cannot read (truncated, garbled: PySCF's own error is in the message), MO
        arrays of inconsistent shapes, or an energy, occupation or coefficient that is not a finite number.
    """
    try:
        data = _read_molden(path_or_text)
    except ValueError:
        raise
    except Exception as exc:  # PySCF's reader fails on a damaged file with any error (Index, Type, ...)
        raise ValueError(f'the MOLDEN file could not be read (truncated or garbled?): {type(exc).__name__}: '
                         f'{exc}') from exc
    nspin, nmo = data.energies.shape
    nao = data.overlap.shape[0]
    if nmo == 0 or data.occupations.shape != (nspin, nmo) or data.coefficients.shape != (nspin, nao, nmo):
        raise ValueError(f'the MOLDEN file holds inconsistent MO arrays: energies {data.energies.shape}, occupations '
                         f'{data.occupations.shape}, coefficients {data.coefficients.shape} for {nao} AOs')
    for name in ('energies', 'occupations', 'coefficients'):
        if not np.all(np.isfinite(getattr(data, name))):
            raise ValueError(f'the MOLDEN file holds MO {name} that are not finite numbers (garbled file?)')
    return data


def _read_molden(path_or_text: str) -> MoldenData:
    from pyscf.tools import molden

    cleanup = None
    path = path_or_text
    if '\n' in path_or_text or not os.path.exists(path_or_text):
        handle = tempfile.NamedTemporaryFile('w', suffix='.molden', delete=False)
        handle.write(path_or_text)
        handle.close()
        path = cleanup = handle.name
    try:
        mol, mo_energy, mo_coeff, mo_occ, _, spins = molden.load(path)
    finally:
        if cleanup:
            os.unlink(cleanup)
    mo_energy, mo_occ, mo_coeff = np.asarray(mo_energy), np.asarray(mo_occ), np.asarray(mo_coeff)
    spins = np.asarray(spins) if spins is not None else np.zeros(len(mo_energy), dtype=int)
    if mo_coeff.ndim == 3:  # pyscf already split alpha/beta
        energies, occs, coeffs = mo_energy, mo_occ, mo_coeff
    elif np.any(spins == 1):
        sel = [spins == 0, spins == 1]
        energies = np.array([mo_energy[s] for s in sel])
        occs = np.array([mo_occ[s] for s in sel])
        coeffs = np.array([mo_coeff[:, s] for s in sel])
    else:
        energies, occs, coeffs = mo_energy[None], mo_occ[None], mo_coeff[None]
    ao_atom = np.zeros(mol.nao, dtype=int)
    for atom, (_, _, start, stop) in enumerate(mol.aoslice_by_atom()):
        ao_atom[start:stop] = atom
    return MoldenData(
        energies=energies * Hartree,
        occupations=occs,
        coefficients=coeffs,
        overlap=mol.intor('int1e_ovlp'),
        ao_atom=ao_atom,
        ao_labels=list(mol.ao_labels()),
        symbols=[mol.atom_pure_symbol(i) for i in range(mol.natm)],
    )


def mo_window(data: MoldenData, n_occupied: int, n_virtual: int, spin: int = 0) -> np.ndarray:
    """Indices of the ``n_occupied`` highest occupied and ``n_virtual`` lowest virtual MOs of ``spin``.

    :raises ValueError: if the file holds fewer virtual MOs than requested (raise ``ADDED_MOS``).
    """
    homo, lumo = homo_lumo(data.energies[spin], data.occupations[spin])
    n_mo = data.energies.shape[1]
    if lumo + n_virtual > n_mo:
        raise ValueError(f'window asks for {n_virtual} virtual MOs but only {n_mo - lumo} were computed; '
                         f'increase ADDED_MOS')
    return np.arange(max(0, homo + 1 - n_occupied), lumo + n_virtual)


def read_pdos(text: str) -> dict:
    """Read one CP2K ``*.pdos`` file (per kind), in either layout:

    - up to 2025.2 (``&PRINT &PDOS``): ``# Projected DOS for atomic kind P at iteration step i = 0, E(Fermi) = ...
      a.u.``, then ``# MO Eigenvalue [a.u.] Occupation s p d``;
    - 2026.2 (``&PRINT &DOS &PDOS``): the kind line, ``# E(Fermi) = ... a.u. = ... eV``, ``# E(HOCO) = ...``, then
      ``# MO Energy[a.u.] Occupation Total s p d``; the ``Total`` column (the sum of the others) is dropped.

    :returns: dict with ``kind``, ``fermi_ev``, ``columns`` (orbital labels), ``energies`` (eV),
        ``occupations`` and ``projections`` (nmo, ncolumns).
    :raises ValueError: for a file without its header lines, rows with another number of columns than the
        header names, no rows, or a value that is not a finite number.
    """
    lines = text.splitlines()
    n_header = next((i for i, line in enumerate(lines) if not line.startswith('#')), len(lines))
    header_lines = lines[:n_header]
    if len(header_lines) < 2 or 'Occupation' not in header_lines[-1].lstrip('#').split() \
            or 'Projected DOS' not in header_lines[0]:
        raise ValueError('the PDOS file lacks its header lines ("# Projected DOS for atomic kind ..." and '
                         '"# MO Eigenvalue [a.u.] Occupation ..." or "# MO Energy[a.u.] Occupation Total ...")')
    kind = re.search(r'atomic kind\s+(\S+)', header_lines[0])
    fermi = re.search(r'E\(Fermi\)\s*=\s*(-?\d+\.\d+)', '\n'.join(header_lines))
    header = header_lines[-1].lstrip('#').split()
    columns = header[header.index('Occupation') + 1:]
    rows = [(number, line.split()) for number, line in enumerate(lines[n_header:], n_header + 1) if line.strip()]
    if not rows:
        raise ValueError('the PDOS file has no rows after its header')
    for number, fields in rows:
        if len(fields) != 3 + len(columns):
            raise ValueError(f'line {number} of the PDOS file has {len(fields)} columns; the header names '
                             f'{3 + len(columns)} (MO, eigenvalue, occupation, {", ".join(columns)})')
    data = np.array([[_number(value, f'line {number} of the PDOS file') for value in fields]
                     for number, fields in rows])
    projections = data[:, 3:]
    if columns and columns[0] == 'Total':
        columns, projections = columns[1:], projections[:, 1:]
    return {
        'kind': kind.group(1) if kind else None,
        'fermi_ev': float(fermi.group(1)) * Hartree if fermi else None,
        'columns': columns,
        'energies': data[:, 1] * Hartree,
        'occupations': data[:, 2],
        'projections': projections,
    }
