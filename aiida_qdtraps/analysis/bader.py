"""Bader input and output files (pure; no AiiDA): cube → CHGCAR conversion, baderkit and Henkelman readers.

Why convert: baderkit 0.10.2 reads a Gaussian cube whose grid is not cubic with the wrong axis order, and it takes a
density whose maximum is ≤ 1.01 for an ELF and leaves it unconverted (docs/charge_flow.md). A VASP
CHGCAR written with ase has neither problem. Units: a CP2K (or pp.x) cube holds the valence density in e/bohr³;
``ase.io.cube`` returns it unconverted, so it is divided by ``ase.units.Bohr**3`` to e/Å³ before the CHGCAR (which
stores ρ·V_cell, x fastest, POSCAR header from ase) is written. The atoms are shifted by the cube origin so that
grid point (0, 0, 0) sits at the CHGCAR's fractional origin.

Electron bookkeeping: the populations of the atomic basins plus the charge baderkit assigns to vacuum must add up to
the number of valence electrons of the calculation (minus its net charge); :func:`check_electron_conservation`
says by how much they do not.
"""

from __future__ import annotations

import dataclasses
import io
import pathlib
import warnings
from collections.abc import Sequence

import ase
import numpy as np
from ase.units import Bohr

from ..parsers.cp2k_files import finite_numbers

#: Bader programs whose output this module reads.
BADER_PROGRAMS = ('baderkit', 'bader')
#: File names of their per-atom output.
BADERKIT_ATOM_FILE = 'atom_summary.tsv'
HENKELMAN_ATOM_FILE = 'ACF.dat'


@dataclasses.dataclass
class BaderResult:
    """Per-atom Bader populations.

    :ivar populations: electrons in each atom's basins (n_atoms,), e.
    :ivar volumes: basin volume per atom (n_atoms,), Å³.
    :ivar positions: atom positions as the Bader program saw them (n_atoms, 3), Å (CHGCAR frame).
    :ivar vacuum_charge: electrons the program assigned to vacuum, e.
    :ivar vacuum_volume: vacuum volume, Å³ (``nan`` if not reported).
    :ivar program: ``'baderkit'`` or ``'bader'``.
    """

    populations: np.ndarray
    volumes: np.ndarray
    positions: np.ndarray
    vacuum_charge: float
    vacuum_volume: float
    program: str

    @property
    def total_electrons(self) -> float:
        """Electrons in atomic basins plus vacuum, e."""
        return float(self.populations.sum() + self.vacuum_charge)


def read_density_cube(source: str | pathlib.Path | io.TextIOBase) -> tuple[np.ndarray, ase.Atoms]:
    """Density (e/Å³) on the cube grid and the atoms shifted into the grid frame.

    The header is read as :func:`ase.io.cube.read_cube` reads it; the grid values are parsed by numpy in one pass
    (ase builds a Python list of floats, ~40 bytes per grid point: 2.5 GB for a 400³ grid).

    :param source: path or text handle of a Gaussian cube whose values are in e/bohr³ (CP2K ``E_DENSITY_CUBE``,
        Quantum ESPRESSO ``pp.x`` with ``output_format=6``).
    :returns: ``(density, atoms)`` with ``density`` of shape (n1, n2, n3) in e/Å³ and ``atoms`` carrying the cell
        spanned by the grid (periodic) with positions relative to the cube origin (Å).
    :raises ValueError: for a malformed header, a wrong number of values, or a grid holding no electrons.
    """
    if isinstance(source, (str, pathlib.Path)):
        with open(source) as handle:
            return read_density_cube(handle)
    lines = [source.readline() for _ in range(6)]
    try:
        n_atoms, *origin = lines[2].split()[:4]
        n_atoms = int(n_atoms)
        origin = np.array([float(v) for v in origin]) * Bohr
        shape = [int(line.split()[0]) for line in lines[3:6]]
        spacing = np.array([[float(v) for v in line.split()[1:4]] for line in lines[3:6]]) * Bohr
    except (ValueError, IndexError) as exc:
        raise ValueError(f'malformed cube header: {exc}') from None
    if n_atoms <= 0 or min(shape) <= 0:
        raise ValueError(f'cube header gives {n_atoms} atoms and grid {shape}; need a positive atom count '
                         '(no orbital-list cubes) and a positive grid')
    if not np.all(np.isfinite(origin)) or not np.all(np.isfinite(spacing)):
        raise ValueError('malformed cube header: the origin or a grid vector is not a finite number')
    numbers, positions = [], []
    for number in range(7, 7 + n_atoms):
        line = source.readline()
        fields = line.split()
        try:
            numbers.append(int(fields[0]))
            positions.append(finite_numbers(fields[2:5], f'cube line {number}'))
            if len(fields) < 5 or numbers[-1] < 0:
                raise ValueError
        except (ValueError, IndexError):
            raise ValueError(f'cube line {number}: expected an atom (Z, charge, x, y, z), got {line.strip()!r}; '
                             f'the header announces {n_atoms} atoms') from None
    with warnings.catch_warnings():
        # numpy stops at the first token that is not a number and only warns: a garbled grid is an error here
        warnings.simplefilter('error', DeprecationWarning)
        try:
            values = np.fromstring(source.read(), sep=' ')
        except DeprecationWarning:
            raise ValueError('the cube grid holds a token that is not a number (garbled file?)') from None
    if values.size != int(np.prod(shape)):
        raise ValueError(f'the cube holds {values.size} values but its header announces a grid of {shape}')
    if not np.all(np.isfinite(values)):
        raise ValueError('the cube grid holds values that are not finite numbers (NaN, inf)')
    density = values.reshape(shape) / Bohr**3
    atoms = ase.Atoms(numbers=numbers, positions=np.array(positions) * Bohr - origin,
                      cell=np.array(shape)[:, None] * spacing, pbc=True)
    if density.sum() <= 0:
        raise ValueError(f'the cube integrates to {integrate_density(density, atoms):.4g} electrons (must be > 0)')
    return density, atoms


def integrate_density(density: np.ndarray, atoms: ase.Atoms) -> float:
    """Number of electrons ∫ρ dV on the grid (ρ in e/Å³, cell of ``atoms`` in Å)."""
    return float(density.sum() * atoms.get_volume() / density.size)


def write_chgcar(path: str | pathlib.Path, density: np.ndarray, atoms: ase.Atoms, chunk_rows: int = 200_000) -> None:
    """Write ``density`` (e/Å³ on the grid spanning ``atoms.cell``) as a VASP CHGCAR: ρ·V_cell, x fastest.

    Same layout as ase's ``VaspChargeDensity.write`` (POSCAR header by :func:`ase.io.vasp.write_vasp`, grid line,
    five values per line), written in chunks so that large grids need no per-value Python objects.
    """
    from ase.io.vasp import write_vasp

    values = (np.asarray(density, dtype=float) * atoms.get_volume()).ravel(order='F')
    with open(path, 'w') as handle:
        write_vasp(handle, atoms, direct=True)
        handle.write('\n' + ''.join(f' {n:4d}' for n in density.shape) + '\n')
        full = values.size // 5 * 5
        rows = values[:full].reshape(-1, 5)
        for start in range(0, len(rows), chunk_rows):
            np.savetxt(handle, rows[start:start + chunk_rows], fmt=' %17.10E', delimiter='')
        if full < values.size:
            handle.write(''.join(f' {v:17.10E}' for v in values[full:]) + '\n')


def cube_to_chgcar(cube: str | pathlib.Path | io.TextIOBase, chgcar: str | pathlib.Path) -> dict:
    """Convert a cube in e/bohr³ into a CHGCAR baderkit reads correctly.

    :returns: ``{'electrons_on_grid': ∫ρ dV (e), 'grid': [n1, n2, n3], 'cell_volume': Å³, 'max_density': e/Å³}``.
    """
    density, atoms = read_density_cube(cube)
    write_chgcar(chgcar, density, atoms)
    return {'electrons_on_grid': integrate_density(density, atoms), 'grid': list(density.shape),
            'cell_volume': float(atoms.get_volume()), 'max_density': float(density.max())}


#: Largest accepted |Σ populations + vacuum − the file's electron total| (e): the tables print 4-5 decimals, so the
#: rounding of ~100 rows stays below it, while a lost atom row takes at least a hydrogen's ~0.6 e.
ELECTRON_TOTAL_TOLERANCE = 0.01


def _atom_table_result(name: str, program: str, rows: list, volume_column: int, vacuum: tuple[float | None, str],
                       vacuum_volume: float, total: tuple[float | None, str]) -> BaderResult:
    """The ``BaderResult`` of an atom table's ``rows`` (x, y, z, population, ... with the volume in
    ``volume_column``), refusing a table without atoms, a missing ``(value, footer name)`` of the vacuum charge or the
    electron total (a truncated file), and atoms and vacuum that do not add up to the total (rows lost or repeated)."""
    (vacuum_charge, vacuum_footer), (total_electrons, total_footer) = vacuum, total
    if not rows:
        raise ValueError(f'{name} lists no atoms')
    if vacuum_charge is None:
        raise ValueError(f'{name} has no "{vacuum_footer}" footer line: truncated file?')
    table = np.array(rows)
    result = BaderResult(populations=table[:, 3], volumes=table[:, volume_column], positions=table[:, :3],
                         vacuum_charge=vacuum_charge, vacuum_volume=vacuum_volume, program=program)
    if total_electrons is None:
        raise ValueError(f'{name} has no "{total_footer}" footer line: truncated file?')
    if abs(result.total_electrons - total_electrons) > ELECTRON_TOTAL_TOLERANCE:
        raise ValueError(f'the {len(result.populations)} atoms and the vacuum of {name} hold '
                         f'{result.total_electrons:.4f} e but its "{total_footer}" line gives {total_electrons:.4f} e: '
                         'atom rows lost or repeated')
    return result


def parse_baderkit_atoms(text: str) -> BaderResult:
    """Read baderkit's ``atom_summary.tsv`` (columns label, x, y, z, charge, volume, ...; vacuum in the footer).

    baderkit calls the basin population "charge" (electrons, positive).

    :raises ValueError: for a file without the header columns, no atom rows, an atom row with a missing or
        non-finite value (naming its line), no ``Vacuum Charge`` or ``Total Electrons`` footer (a truncated file), or
        atoms and vacuum that do not add up to ``Total Electrons`` (rows lost or repeated).
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError(f'{BADERKIT_ATOM_FILE} is empty')
    header = [col.strip().lower() for col in lines[0].split('\t')]
    needed = ('x', 'y', 'z', 'charge', 'volume')
    if not all(col in header for col in needed):
        raise ValueError(f'{BADERKIT_ATOM_FILE} header {header} lacks one of the columns {needed}')
    col = {name: header.index(name) for name in needed}
    rows, vacuum_charge, vacuum_volume, total = [], None, float('nan'), None
    for number, line in enumerate(lines[1:], 2):
        fields = [f.strip() for f in line.split('\t')]
        key = fields[0].lower()
        if key.startswith('vacuum'):
            value = finite_numbers(fields[-1:], f'{BADERKIT_ATOM_FILE} line {number}')[0]
            if 'volume' in key:
                vacuum_volume = value
            else:
                vacuum_charge = value
            continue
        if key.startswith('total'):  # footer lines with the totals
            if 'electron' in key:
                total = finite_numbers(fields[-1:], f'{BADERKIT_ATOM_FILE} line {number}')[0]
            continue
        if len(fields) <= max(col.values()):
            raise ValueError(f'{BADERKIT_ATOM_FILE} line {number} has {len(fields)} columns, the header '
                             f'{len(header)}: {line.strip()!r}')
        rows.append(finite_numbers([fields[col[name]] for name in needed], f'{BADERKIT_ATOM_FILE} line {number}'))
    return _atom_table_result(BADERKIT_ATOM_FILE, 'baderkit', rows, 4, (vacuum_charge, 'Vacuum Charge'),
                              vacuum_volume, (total, 'Total Electrons'))


def parse_acf(text: str) -> BaderResult:
    """Read the Henkelman ``bader`` program's ``ACF.dat`` (columns #, X, Y, Z, CHARGE, MIN DIST, ATOMIC VOL).

    Positions are in the units of the input file (Å for a CHGCAR, bohr for a cube); the footer gives
    ``VACUUM CHARGE``, ``VACUUM VOLUME`` and ``NUMBER OF ELECTRONS``.

    :raises ValueError: for no atom rows, an atom row with fewer than seven columns, a non-finite value or a number out
        of sequence (naming its line), no ``VACUUM CHARGE`` or ``NUMBER OF ELECTRONS`` footer line (a truncated file),
        or atoms and vacuum that do not add up to ``NUMBER OF ELECTRONS`` (rows lost or repeated).
    """
    rows, vacuum_charge, vacuum_volume, total = [], None, float('nan'), None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        upper = stripped.upper()
        what = f'{HENKELMAN_ATOM_FILE} line {number}'
        if upper.startswith('VACUUM CHARGE'):
            vacuum_charge = finite_numbers([stripped.split(':')[-1].strip()], what)[0]
        elif upper.startswith('VACUUM VOLUME'):
            vacuum_volume = finite_numbers([stripped.split(':')[-1].strip()], what)[0]
        elif upper.startswith('NUMBER OF ELECTRONS'):
            total = finite_numbers([stripped.split(':')[-1].strip()], what)[0]
        elif stripped and stripped[0].isdigit():
            fields = stripped.split()
            if len(fields) < 7:
                raise ValueError(f'{what} has {len(fields)} columns, expected 7 (#, X, Y, Z, CHARGE, MIN DIST, '
                                 f'ATOMIC VOL): {stripped!r}')
            if fields[0] != str(len(rows) + 1):
                raise ValueError(f'{what} is numbered {fields[0]!r}, expected atom {len(rows) + 1}: rows missing, '
                                 'repeated or out of order')
            rows.append(finite_numbers(fields[1:7], what))
    return _atom_table_result(HENKELMAN_ATOM_FILE, 'bader', rows, 5, (vacuum_charge, 'VACUUM CHARGE'),
                              vacuum_volume, (total, 'NUMBER OF ELECTRONS'))


def read_bader_file(path: str | pathlib.Path) -> BaderResult:
    """Read an ``ACF.dat`` or a baderkit ``atom_summary.tsv`` (told apart by content)."""
    text = pathlib.Path(path).read_text()
    first = next((line for line in text.splitlines() if line.strip()), '')
    if '\t' in first and 'charge' in first.lower():
        return parse_baderkit_atoms(text)
    return parse_acf(text)


def check_electron_conservation(result: BaderResult, valence_electrons: float, tolerance: float = 0.1) -> dict:
    """Compare Bader populations (+ vacuum) with the number of valence electrons.

    :param valence_electrons: Σ Z_val − net charge of the calculation, e.
    :param tolerance: largest accepted |difference|, e.
    :returns: ``{'conserved', 'electrons_in_basins', 'vacuum_charge', 'electrons_total', 'valence_electrons',
        'difference', 'tolerance'}`` (electrons; ``difference = total − valence``).
    """
    if tolerance <= 0:
        raise ValueError(f'tolerance must be > 0 e, got {tolerance}')
    difference = result.total_electrons - valence_electrons
    return {'conserved': bool(abs(difference) <= tolerance),
            'electrons_in_basins': float(result.populations.sum()), 'vacuum_charge': float(result.vacuum_charge),
            'electrons_total': result.total_electrons, 'valence_electrons': float(valence_electrons),
            'difference': float(difference), 'tolerance': float(tolerance)}


def valence_charges(symbols: Sequence[str], valence: dict[str, float]) -> np.ndarray:
    """Z_val per atom from an element → valence map.

    :raises ValueError: naming the elements without a valence.
    """
    missing = sorted(set(symbols) - set(valence))
    if missing:
        raise ValueError(f'no valence charge for element(s) {missing}; given for {sorted(valence)}')
    return np.array([float(valence[s]) for s in symbols])


def check_same_atoms(reference: np.ndarray, found: np.ndarray, tolerance: float = 0.05) -> None:
    """Check that the Bader program's atoms are the structure's atoms in the same order (positions in Å).

    Compares each atom's distance to the first atom, which does not depend on the cube origin or the box.

    :raises ValueError: if the counts differ or a distance differs by more than ``tolerance`` Å.
    """
    reference, found = np.asarray(reference, float), np.asarray(found, float)
    if reference.shape != found.shape:
        raise ValueError(f'{len(found)} Bader atoms for {len(reference)} structure atoms')
    if not len(reference):
        return
    expected = np.linalg.norm(reference - reference[0], axis=1)
    seen = np.linalg.norm(found - found[0], axis=1)
    worst = int(np.argmax(np.abs(seen - expected)))
    if abs(seen[worst] - expected[worst]) > tolerance:
        raise ValueError(f'atom {worst} is {seen[worst]:.3f} Å from atom 0 in the Bader output but '
                         f'{expected[worst]:.3f} Å in the structure (tolerance {tolerance} Å)')
