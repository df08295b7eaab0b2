"""Readers for CP2K output files: MO eigenvalue blocks, MOLDEN, PDOS, timings. No AiiDA import.

Energies are returned in eV (CODATA 2018 Hartree, as ``ase.units.Hartree``).
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field

import numpy as np
from ase.units import Hartree

_MO_HEADER = re.compile(r'^\s*MO\|\s*(?:(ALPHA|BETA)\s+)?EIGENVALUES AND OCCUPATION NUMBERS', re.M)
_MO_ROW = re.compile(r'^\s*MO\|\s+(\d+)\s+(-?\d+\.\d+)\s+(-?\d+\.\d+)\s+(\d+\.\d+)\s*$')


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
    """Indices of the highest occupied and lowest unoccupied orbital (0-based)."""
    occupied = np.where(occupations > threshold)[0]
    empty = np.where(occupations <= threshold)[0]
    if len(occupied) == 0 or len(empty) == 0:
        raise ValueError('need at least one occupied and one virtual orbital to locate HOMO and LUMO; '
                         'increase ADDED_MOS')
    return int(occupied.max()), int(empty.min())


def parse_total_walltime(text: str) -> float | None:
    """Total wall time (s) from the CP2K timing table (line ``CP2K  1  1.0 ...``)."""
    match = re.findall(r'^\s*CP2K\s+1\s+\S+\s+\S+\s+\S+\s+\S+\s+(\S+)\s*$', text, re.M)
    return float(match[-1]) if match else None


def parse_total_energy(text: str) -> float | None:
    """The last ``ENERGY| Total FORCE_EVAL ( QS ) energy [a.u.]`` of a CP2K main output (Ha), or ``None``."""
    match = re.findall(r'ENERGY\|\s*Total FORCE_EVAL \( QS \) energy[^:]*:\s+(\S+)', text)
    return float(match[-1]) if match else None


def parse_reported_gap(text: str) -> float | None:
    """CP2K's own ``MO| Band gap`` (eV) of the final SCF, if printed."""
    match = re.findall(r'MO\|\s*Band gap:\s+\S+\s+a\.u\.\s+(\S+)\s+eV', text)
    return float(match[-1]) if match else None


#: CP2K's warning when the density on the faces of a non-periodic (wavelet Poisson) cell exceeds 1e-4 e/bohr^3
#: (wrapped over two ``*** WARNING`` lines in the output)
WAVELET_EDGE_WARNING = re.compile(r'Density non-zero on the[\s*]+edges of the unit cell')


def parse_grid_quality(text: str) -> dict:
    """How well CP2K's real-space grids hold the density, from its main output.

    ``grid_electron_error``: the last ``Electronic density on regular grids`` deviation (electrons integrated on the
    grid minus the electron count); ``wavelet_edge_warnings``: how many times CP2K warned that the density on the
    faces of the non-periodic cell is above 1e-4 e/bohr^3 (``pw/ps_wavelet_methods.F``). Measured on In4PF9
    (``docs/pipeline.md``): the electron error tracks the grid spacing (GPW: 2e-3 at 200 Ry, 6e-5 at 300 Ry; for GAPW,
    which holds only the soft density on the grid, it is None), while the face warning comes and goes with REL_CUTOFF and the box size at the same noise.
    """
    errors = re.findall(r'Electronic density on regular grids:\s+\S+\s+(\S+)', text)
    if re.search(r'^\s*QS\| Method:\s+GAPW', text, re.M):
        # GAPW keeps the hard one-centre densities off the grid: the grid holds only the soft part (In4PF9: 87 of 120
        # electrons), so its deviation from the electron count says nothing about the grid
        errors = []
    return {'grid_electron_error': float(errors[-1]) if errors else None,
            'wavelet_edge_warnings': len(WAVELET_EDGE_WARNING.findall(text))}


def parse_forces(text: str) -> np.ndarray | None:
    """The last ``ATOMIC FORCES in [a.u.]`` table (``&FORCE_EVAL &PRINT &FORCES``), shape (n_atoms, 3), Ha/bohr."""
    if 'ATOMIC FORCES in [a.u.]' not in text:
        return None
    block = text.split('ATOMIC FORCES in [a.u.]')[-1].split('SUM OF ATOMIC FORCES')[0]
    rows = [line.split() for line in block.splitlines() if re.match(r'\s+\d+\s+\d+\s+\w+\s+-?\d', line)]
    return np.array([[float(value) for value in row[3:6]] for row in rows])


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
            charges.append(float(parts[-1] if last else parts[-2]))
        elif charges:  # the first non-atom line after the rows ends the table
            break
    return np.array(charges) if charges else None


def parse_dipole_moment(text: str) -> list[float] | None:
    """The last ``Dipole moment [Debye]`` vector (x, y, z) of a CP2K output (``&DFT &PRINT &MOMENTS``)."""
    match = re.findall(r'Dipole moment \[Debye\]\s*\n\s*X=\s*(\S+)\s*Y=\s*(\S+)\s*Z=\s*(\S+)', text)
    return [float(x) for x in match[-1]] if match else None


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
    """Read MOs, AO overlap and the AO→atom map from a CP2K MOLDEN file (``&MO_MOLDEN NDIGITS 12``)."""
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
    """Read one CP2K ``*.pdos`` file (``&PDOS``, per kind).

    :returns: dict with ``kind``, ``fermi_ev``, ``columns`` (orbital labels), ``energies`` (eV),
        ``occupations`` and ``projections`` (nmo, ncolumns).
    """
    lines = text.splitlines()
    kind = re.search(r'atomic kind\s+(\S+)', lines[0])
    fermi = re.search(r'E\(Fermi\)\s*=\s*(-?\d+\.\d+)', lines[0])
    header = lines[1].lstrip('#').split()
    # header: MO Eigenvalue [a.u.] Occupation s p d ...
    columns = header[header.index('Occupation') + 1:]
    data = np.loadtxt(lines[2:], ndmin=2)
    return {
        'kind': kind.group(1) if kind else None,
        'fermi_ev': float(fermi.group(1)) * Hartree if fermi else None,
        'columns': columns,
        'energies': data[:, 1] * Hartree,
        'occupations': data[:, 2],
        'projections': data[:, 3:],
    }
