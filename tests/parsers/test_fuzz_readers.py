"""Property-based tests of the pure output readers on truncated, garbled and mixed-version files.

Each reader is fed mutations of recorded outputs (``tests/data``): cut at a random byte or line, a line cut short,
lines deleted, duplicated or shuffled, numbers replaced by garbage (``NaN``, ``***``, ``1.0E+999``, nothing), the head
of a CP2K 2023.1 output joined to the tail of a 2025.1 one, random bytes, an empty file. The contract
(docs/reliability.md): a reader returns a result whose documented invariants hold (shapes consistent, numbers finite)
or raises a ``ValueError`` with a message; never an ``IndexError``, ``KeyError``, ``TypeError``,
``ZeroDivisionError`` or a numpy error, and never a NaN or infinite value returned as if it were read.

The examples are derandomised and the example database is off, so every run draws the same inputs.
"""

from __future__ import annotations

import functools
import gzip
import io
import pathlib
import re

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from aiida_qdtraps.analysis import bader
from aiida_qdtraps.parsers import cp2k_files, cp2k_md_files, cp2k_progress

DATA = pathlib.Path(__file__).resolve().parent.parent / 'data'

#: Hypothesis settings of every fuzz test: reproducible (derandomised, no example database), no per-example deadline.
FUZZ = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])

GARBAGE = ('NaN', 'nan', '-inf', '***', '1.0E+999', '', '--', '1.2.3', 'x')
_NUMBER = re.compile(r'-?\d+\.\d+(?:[Ee][-+]?\d+)?|\b\d+\b')


def read_or_refuse(read, *args):
    """``read(*args)``, or None when ``read`` refuses its input with a ValueError that says why."""
    try:
        return read(*args)
    except ValueError as exc:
        assert str(exc), f'{read} refused its input without saying why'
        return None


@functools.cache
def recorded(relative: str) -> str:
    """Text of a recorded file under tests/data (gzip-compressed ones unpacked), or of a seed built here."""
    if relative in BUILT_SEEDS:
        return BUILT_SEEDS[relative]()
    path = DATA / relative
    raw = path.read_bytes()
    if path.suffix == '.gz':
        raw = gzip.decompress(raw)
    return raw.decode()


@st.composite
def mutated(draw, seeds: tuple[str, ...], splice_with: tuple[str, ...] = ()) -> str:
    """A recorded file (one of ``seeds``) after one to three random mutations."""
    text = recorded(draw(st.sampled_from(seeds)))
    kinds = ['truncate_byte', 'truncate_line', 'cut_line', 'delete', 'duplicate', 'shuffle', 'garble', 'garble',
             'garble']
    if splice_with:
        kinds.append('splice')
    kind = draw(st.sampled_from(kinds + ['bytes', 'empty']))
    if kind == 'empty':
        return ''
    if kind == 'bytes':
        return draw(st.binary(max_size=400)).decode('utf-8', errors='replace')
    for _ in range(draw(st.integers(1, 3))):
        lines = text.splitlines(keepends=True) or ['']
        if kind == 'truncate_byte':
            text = text[:draw(st.integers(0, len(text)))]
        elif kind == 'truncate_line':
            text = ''.join(lines[:draw(st.integers(0, len(lines)))])
        elif kind == 'cut_line':  # one line with a number cut short, the rest kept: a short row or key line
            numbered = [i for i, line in enumerate(lines) if _NUMBER.search(line)] or [0]
            index = draw(st.sampled_from(numbered))
            line = lines[index]
            lines[index] = line[:draw(st.integers(0, max(0, len(line) - 2)))] + '\n'
            text = ''.join(lines)
        elif kind == 'splice':
            other = recorded(draw(st.sampled_from(splice_with))).splitlines(keepends=True)
            head, tail = draw(st.integers(0, len(lines))), draw(st.integers(0, len(other)))
            text = ''.join(lines[:head] + other[tail:])
        else:
            start = draw(st.integers(0, len(lines) - 1))
            stop = min(len(lines), start + draw(st.integers(1, 20)))
            chunk = lines[start:stop]
            if kind == 'delete':
                chunk = []
            elif kind == 'duplicate':
                chunk = chunk * 2
            elif kind == 'shuffle':
                chunk = draw(st.permutations(chunk))
            else:  # garble: numbers of the chunk replaced by garbage
                garbage = draw(st.sampled_from(GARBAGE))
                every = draw(st.booleans())
                chunk = [_NUMBER.sub(garbage, line, count=0 if every else 1) for line in chunk]
            text = ''.join(lines[:start] + list(chunk) + lines[stop:])
        kind = draw(st.sampled_from(kinds))
    return text


def small_cube() -> str:
    """The recorded CP2K density cube's header and atoms on a 4x4x4 grid (the recording holds only its head)."""
    lines = recorded('cp2k/pbe0_success/aiida-ELECTRON_DENSITY-1_0.cube').splitlines()
    grid = ['    4    5.669178    0.000000    0.000000', '    4    0.000000    5.669178    0.000000',
            '    4    0.000000    0.000000    5.669178']
    values = [f'  {0.001 * (i % 7 + 1):.5E}' for i in range(64)]
    rows = [''.join(values[i:i + 6]) for i in range(0, 64, 6)]
    return '\n'.join(lines[:3] + grid + lines[6:20] + rows) + '\n'


BUILT_SEEDS = {'small density cube': small_cube}


def finite(array) -> bool:
    return bool(np.all(np.isfinite(np.asarray(array, dtype=float))))


CP2K_2023 = ('cp2k/pbe0_success/aiida.out', 'cp2k/charges/h2o_cation_uks.out', 'cp2k/failed/scf_diverged.out',
             'cp2k/failed/geo_max_iter.out', 'cp2k/failed/incomplete.out')
CP2K_NEW = ('cp2k/versions/2024.1_md.out', 'cp2k/versions/2024.3_geo_opt.out',
            'cp2k/versions/2025.1_water_energy_force.out')
CP2K_OUTPUTS = CP2K_2023 + CP2K_NEW


def cp2k_output():
    return mutated(CP2K_OUTPUTS, splice_with=CP2K_OUTPUTS)


# --- CP2K main output ----------------------------------------------------------------------------------------------

@FUZZ
@given(text=cp2k_output())
@example(text=' ENERGY| Total FORCE_EVAL ( QS ) energy [a.u.]:             1.0E+999\n')
def test_energies_are_finite_or_refused(text):
    energies = read_or_refuse(cp2k_files.read_total_energies, text)
    if energies is None:
        return
    assert energies.ndim == 1 and finite(energies)
    energy = cp2k_files.parse_total_energy(text)
    assert energy is None or np.isfinite(energy)


@FUZZ
@given(text=cp2k_output())
@example(text=' ATOMIC FORCES in [a.u.]\n\n # Atom   Kind   Element          X              Y              Z\n'
              '      1      1      O          NaN   0.1   0.2\n SUM OF ATOMIC FORCES    0.0 0.0 0.0  0.0\n')
def test_force_tables_are_finite_or_refused(text):
    blocks = read_or_refuse(cp2k_files.read_force_blocks, text)
    if blocks is None:
        return
    for block in blocks:
        assert block.ndim == 2 and block.shape[1] == 3 and len(block) and finite(block)


@FUZZ
@given(text=cp2k_output())
@example(text=' Mulliken Population Analysis\n\n #  Atom  Element  Kind  Atomic population  Net charge\n'
              '       1     O       1          6.5             ***\n')
@example(text=' Mulliken Population Analysis\n\n #  Atom  Element  Kind  Atomic population  Net charge\n'
              '       1     O       1          6.5             NaN\n')
@example(text=' Dipole moment [Debye]\n    X=    NaN Y=    0.1 Z=    0.2     Total=      0.3\n')
def test_scalar_readers(text):
    """MO blocks, charges, dipole, gap, wall time, grid quality, version: a value, None, or a ValueError."""
    for read in (cp2k_files.parse_mo_eigenvalues, cp2k_files.parse_dipole_moment, cp2k_files.parse_reported_gap,
                 cp2k_files.parse_total_walltime, cp2k_files.parse_grid_quality, cp2k_files.parse_cp2k_version,
                 *[functools.partial(cp2k_files.parse_atomic_charges, analysis=name)
                   for name in cp2k_files.POPULATION_ANALYSES]):
        value = read_or_refuse(read, text)
        if value is None:
            continue
        if isinstance(value, dict) and read is cp2k_files.parse_mo_eigenvalues:
            for block in value.values():
                assert block.ndim == 2 and block.shape[1] == 2 and finite(block)
        elif isinstance(value, dict):  # grid quality
            assert value['grid_electron_error'] is None or np.isfinite(value['grid_electron_error'])
        elif isinstance(value, (list, np.ndarray, float)):
            assert finite(value)
    cp2k_files.untested_version_warning(cp2k_files.parse_cp2k_version(text))


@FUZZ
@given(text=mutated(CP2K_OUTPUTS + ('cp2k/failed/scf_stalled_geo_opt.out',
                                    'cp2k/failed/ga10p4f18_geo_opt_diverged_stopped_by_monitor.out'),
                    splice_with=CP2K_OUTPUTS))
def test_progress_readers(text):
    """The monitor's readers on a running (cut) or garbled output: a verdict or None, never an exception."""
    cycles = cp2k_progress.read_scf_cycles(text)
    for cycle in cycles:
        assert cycle.residuals.shape == cycle.energies.shape and cycle.status in ('converged', 'not converged',
                                                                                  'running')
    cp2k_progress.read_trajectory_steps(text)
    cp2k_progress.read_run_type(text)
    reason = cp2k_progress.stop_reason(text)
    assert reason is None or reason[0] in ('scf_unconverged', 'scf_diverged', 'scf_stalled', 'geometry_stalled')


# --- MOLDEN and PDOS ----------------------------------------------------------------------------------------------

@settings(FUZZ, max_examples=15)
@given(text=mutated(('cp2k/pbe0_success/aiida-MOS-1_0.molden',)))
@example(text=recorded('cp2k/pbe0_success/aiida-MOS-1_0.molden')[:2000])  # PySCF: IndexError inside [GTO]
@example(text=recorded('cp2k/pbe0_success/aiida-MOS-1_0.molden').replace(' P        1 ', ' P        NaN ', 1))
@example(text='')
def test_molden(text):
    data = read_or_refuse(cp2k_files.read_molden, text)
    if data is None:
        return
    nspin, nmo = data.energies.shape
    assert data.occupations.shape == (nspin, nmo)
    assert data.coefficients.shape == (nspin, data.overlap.shape[0], nmo)
    assert data.ao_atom.shape == (data.overlap.shape[0],)
    assert finite(data.energies) and finite(data.occupations) and finite(data.coefficients)


PDOS = ('cp2k/pbe0_success/aiida-k1-1.pdos', 'cp2k/pbe0_success/aiida-k2-1.pdos')


@FUZZ
@given(text=mutated(PDOS, splice_with=PDOS))
@example(text='')
@example(text=recorded(PDOS[0]).replace('0.', '***', 3))
def test_pdos(text):
    pdos = read_or_refuse(cp2k_files.read_pdos, text)
    if pdos is None:
        return
    n = len(pdos['energies'])
    assert n and pdos['occupations'].shape == (n,) and pdos['projections'].shape == (n, len(pdos['columns']))
    assert finite(pdos['energies']) and finite(pdos['occupations']) and finite(pdos['projections'])
    assert pdos['fermi_ev'] is None or np.isfinite(pdos['fermi_ev'])


# --- CP2K MD files ------------------------------------------------------------------------------------------------

XYZ = ('cp2k/md/aiida-pos-1.xyz', 'cp2k/md/aiida-vel-1.xyz', 'cp2k/md/restarted/aiida-pos-1.xyz')


@FUZZ
@given(text=mutated(XYZ, splice_with=XYZ))
@example(text='1\n i = 0, time = 0.0, E = -1.0\nIn NaN 0.0 0.0\n')
@example(text='1\n i = 0, time = 0.0, E = -1.0\nIn 0.0\n')
def test_md_xyz(text):
    parsed = read_or_refuse(cp2k_md_files.read_xyz_frames, text)
    if parsed is None:
        return
    symbols, steps, times, frames = parsed
    assert frames.shape == (len(steps), len(symbols), 3) and times.shape == steps.shape
    assert finite(frames) and finite(times)


ENER = ('cp2k/md/aiida-1.ener', 'cp2k/md/restarted/aiida-1.ener')


@FUZZ
@given(text=mutated(ENER, splice_with=ENER))
@example(text='0 0.0 NaN 300.0 -1.0 -1.0 0.1\n')
def test_md_ener(text):
    table = read_or_refuse(cp2k_md_files.read_ener, text)
    if table is None:
        return
    n = len(table['step'])
    assert n and all(values.shape == (n,) and finite(values) for values in table.values())


@FUZZ
@given(text=mutated(('cp2k/md/aiida-moments.dat', 'cp2k/md/restarted/aiida-moments.dat')))
@example(text=' Dipole moment [Debye]\n    X=    1.0 Y=    NaN Z=    0.2\n')
def test_md_dipoles(text):
    dipoles = read_or_refuse(cp2k_md_files.read_dipoles, text)
    if dipoles is None:
        return
    assert dipoles.ndim == 2 and dipoles.shape[1] == 3 and finite(dipoles)


# --- Bader outputs and density cube -------------------------------------------------------------------------------

@FUZZ
@given(text=mutated(('bader/ACF.dat', 'bader/atom_summary.tsv')))
@example(text=recorded('bader/ACF.dat')[:600])  # cut in the atom table: atoms would be missing silently
@example(text=recorded('bader/atom_summary.tsv').replace('11.23312', 'NaN'))
@example(text=recorded('bader/atom_summary.tsv').replace('\t0.67638', ''))  # a row one column short
def test_bader_tables(text):
    for read in (bader.parse_acf, bader.parse_baderkit_atoms):
        result = read_or_refuse(read, text)
        if result is None:
            continue
        n = len(result.populations)
        assert n and result.volumes.shape == (n,) and result.positions.shape == (n, 3)
        assert finite(result.populations) and finite(result.volumes) and finite(result.positions)
        assert np.isfinite(result.vacuum_charge)


def test_small_cube_seed_is_read():
    density, atoms = bader.read_density_cube(io.StringIO(small_cube()))
    assert density.shape == (4, 4, 4) and len(atoms) == 14


@settings(FUZZ, max_examples=30)
@given(text=mutated(('small density cube', 'cp2k/pbe0_success/aiida-ELECTRON_DENSITY-1_0.cube')))
@example(text=small_cube()[:400])  # cut in the atom lines
@example(text=small_cube().replace('E-0', 'x-0', 1))  # numpy would stop reading at the token and only warn
def test_density_cube(text):
    parsed = read_or_refuse(bader.read_density_cube, io.StringIO(text))
    if parsed is None:
        return
    density, atoms = parsed
    assert density.ndim == 3 and finite(density) and finite(atoms.positions) and len(atoms)
