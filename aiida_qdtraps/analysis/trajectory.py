"""An MD trajectory as plain numpy arrays (pure; no AiiDA): :class:`MdTrajectory`, its extended-xyz reader and the
NVE energy drift.

Units (the layout every engine of the project writes, docs/dynamics.md): positions Å, times fs, velocities Å/fs,
energies eV, temperature K, dipole e·Å. Frames are equally spaced in time: the analyses (autocorrelations, FFTs)
need a constant time step, so :class:`MdTrajectory` refuses anything else.
"""

from __future__ import annotations

import dataclasses

import numpy as np

#: Relative tolerance on the spacing of frame times.
TIME_STEP_RTOL = 1e-6


def _array(name: str, value, shape: tuple, dtype=float) -> np.ndarray:
    """``value`` as an array of ``shape`` (``None`` entries free), finite; ValueError naming ``name`` otherwise."""
    array = np.asarray(value, dtype=dtype)
    if array.ndim != len(shape) or any(want is not None and got != want for got, want in zip(array.shape, shape)):
        expected = '(' + ', '.join('?' if s is None else str(s) for s in shape) + ')'
        raise ValueError(f'{name} has shape {array.shape}, expected {expected}')
    if dtype is float and not np.all(np.isfinite(array)):
        bad = np.argwhere(~np.isfinite(array))[0]
        raise ValueError(f'{name} holds a non-finite value (NaN or inf) at index {tuple(int(i) for i in bad)}')
    return array


@dataclasses.dataclass
class MdTrajectory:
    """Frames of a finite cluster: ``positions`` (F, N, 3) Å at ``times_fs`` (F,) equally spaced.

    Optional per-frame data: ``velocities`` (F, N, 3) Å/fs, ``cell`` (F, 3, 3) Å, ``potential_energy``,
    ``kinetic_energy``, ``conserved_energy`` (F,) eV, ``temperature`` (F,) K and ``dipole`` (F, 3) e·Å.
    """

    symbols: list[str]
    positions: np.ndarray
    times_fs: np.ndarray
    velocities: np.ndarray | None = None
    cell: np.ndarray | None = None
    potential_energy: np.ndarray | None = None
    kinetic_energy: np.ndarray | None = None
    conserved_energy: np.ndarray | None = None
    temperature: np.ndarray | None = None
    dipole: np.ndarray | None = None

    def __post_init__(self):
        self.symbols = [str(s) for s in self.symbols]
        positions = self.positions
        if isinstance(positions, (list, tuple)) and len({np.shape(frame) for frame in positions}) > 1:
            counts = [len(frame) for frame in positions]
            first_bad = next(k for k, c in enumerate(counts) if c != counts[0])
            raise ValueError(f'frames have different atom counts: frame 0 has {counts[0]} atoms, '
                             f'frame {first_bad} has {counts[first_bad]}')
        n_atoms = len(self.symbols)
        self.positions = _array('positions', positions, (None, n_atoms, 3))
        n_frames = self.positions.shape[0]
        if n_frames < 1:
            raise ValueError('positions hold no frame')
        self.times_fs = _array('times_fs', self.times_fs, (n_frames,))
        if n_frames > 1:
            steps = np.diff(self.times_fs)
            dt = steps[0]
            if dt <= 0:
                raise ValueError(f'times_fs must increase: frame 1 is at {self.times_fs[1]} fs, frame 0 at '
                                 f'{self.times_fs[0]} fs')
            bad = np.flatnonzero(np.abs(steps - dt) > TIME_STEP_RTOL * abs(dt))
            if bad.size:
                k = int(bad[0])
                raise ValueError(f'the time step is not constant: {steps[k]} fs between frames {k} and {k + 1}, '
                                 f'{dt} fs between frames 0 and 1 (relative tolerance {TIME_STEP_RTOL})')
        for name, shape in (('velocities', (n_frames, n_atoms, 3)), ('cell', (n_frames, 3, 3)),
                            ('potential_energy', (n_frames,)), ('kinetic_energy', (n_frames,)),
                            ('conserved_energy', (n_frames,)), ('temperature', (n_frames,)),
                            ('dipole', (n_frames, 3))):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, _array(name, value, shape))

    @property
    def n_frames(self) -> int:
        return self.positions.shape[0]

    @property
    def n_atoms(self) -> int:
        return self.positions.shape[1]

    @property
    def timestep_fs(self) -> float:
        """Time between stored frames (fs); ValueError for a single frame."""
        if self.n_frames < 2:
            raise ValueError('a single frame has no time step')
        return float(self.times_fs[1] - self.times_fs[0])

    def masses(self) -> np.ndarray:
        """Atomic masses (amu) of the symbols (ASE's standard atomic weights)."""
        from ase.data import atomic_masses, atomic_numbers

        unknown = sorted({s for s in self.symbols if s not in atomic_numbers})
        if unknown:
            raise ValueError(f'unknown element symbol(s) {unknown}')
        return np.array([atomic_masses[atomic_numbers[s]] for s in self.symbols])

    def require(self, name: str, analysis: str) -> np.ndarray:
        """The optional array ``name``; ValueError naming it and the ``analysis`` that needs it when absent."""
        value = getattr(self, name)
        if value is None:
            raise ValueError(f'{analysis} needs {name}, which this trajectory does not have')
        return value


def from_extxyz(path, dt_fs: float | None = None) -> MdTrajectory:
    """Read an ASE extended-xyz trajectory (all frames) as an :class:`MdTrajectory`.

    Velocities come from the ``momenta`` array (ASE writes them; velocity = momentum / mass) or a ``velocities``
    array, both in ASE units (Å per ASE time unit) and converted to Å/fs (× ``ase.units.fs``). Frame times come from
    ``info['time']`` (ASE time units → fs) or, when a frame has none, from ``dt_fs`` (the time between frames,
    starting at 0); ``dt_fs`` given wins. The dipole comes from ``dipole`` (e·Å) of the comment line when each frame has
    one; energies (eV) from ``potential_energy`` / ``energy``, ``kinetic_energy``, ``conserved_energy`` and
    ``temperature`` (K) likewise (ASE keeps them in ``atoms.info`` or, for calculator keys such as ``energy`` and
    ``dipole``, in the frame's SinglePointCalculator).
    """
    from ase import io, units

    frames = io.read(str(path), index=':')
    if not frames:
        raise ValueError(f'{path} holds no frame')
    counts = [len(atoms) for atoms in frames]
    if len(set(counts)) > 1:
        k = next(i for i, c in enumerate(counts) if c != counts[0])
        raise ValueError(f'frames have different atom counts in {path}: frame 0 has {counts[0]} atoms, '
                         f'frame {k} has {counts[k]}')
    symbols = frames[0].get_chemical_symbols()
    for k, atoms in enumerate(frames):
        if atoms.get_chemical_symbols() != symbols:
            raise ValueError(f'frame {k} of {path} has other elements or another atom order than frame 0')

    if dt_fs is not None:
        if not dt_fs > 0:
            raise ValueError(f'dt_fs must be positive, got {dt_fs}')
        times = np.arange(len(frames)) * float(dt_fs)
    elif all('time' in atoms.info for atoms in frames):
        times = np.array([float(atoms.info['time']) for atoms in frames]) / units.fs
    elif len(frames) == 1:
        times = np.zeros(1)
    else:
        raise ValueError(f'{path} has no time in the frames\' info: give dt_fs (the time between frames in fs)')

    velocities = None
    if all('momenta' in atoms.arrays for atoms in frames):
        velocities = np.array([atoms.get_velocities() for atoms in frames]) * units.fs
    elif all('velocities' in atoms.arrays for atoms in frames):
        velocities = np.array([atoms.arrays['velocities'] for atoms in frames], dtype=float) * units.fs

    def info_series(*keys):
        # ASE's reader moves the calculator keys (energy, dipole, ...) of the comment line to a SinglePointCalculator.
        for key in keys:
            values = [atoms.info.get(key, (atoms.calc.results if atoms.calc is not None else {}).get(key))
                      for atoms in frames]
            if all(value is not None for value in values):
                return np.array(values, dtype=float)
        return None

    cell = None
    if all(atoms.cell.rank == 3 for atoms in frames):
        cell = np.array([atoms.cell.array for atoms in frames])
    return MdTrajectory(
        symbols=symbols, positions=np.array([atoms.positions for atoms in frames]), times_fs=times,
        velocities=velocities, cell=cell, potential_energy=info_series('potential_energy', 'energy'),
        kinetic_energy=info_series('kinetic_energy'), conserved_energy=info_series('conserved_energy'),
        temperature=info_series('temperature'), dipole=info_series('dipole'))


def drift(times_fs, conserved_energy, n_atoms: int) -> float:
    """NVE drift of the conserved energy in meV/atom/ps: slope of a least-squares line through E(t) / N.

    ``times_fs`` (F,) fs, ``conserved_energy`` (F,) eV; at least two frames.
    """
    t = _array('times_fs', times_fs, (None,))
    e = _array('conserved_energy', conserved_energy, (t.size,))
    if t.size < 2:
        raise ValueError('drift needs at least two frames')
    if n_atoms < 1:
        raise ValueError(f'n_atoms must be positive, got {n_atoms}')
    slope_ev_per_fs = np.polyfit(t, e, 1)[0]
    return float(slope_ev_per_fs * 1e3 * 1e3 / n_atoms)


def join_frames(chunks: list[dict], steps_key: str = 'steps') -> dict[str, np.ndarray]:
    """Join the per-frame arrays of consecutive pieces of one MD into one set of arrays.

    Each piece is ``{name: array}`` with frames along axis 0 and an integer ``steps_key`` array of MD step numbers.
    Each piece after the first must continue the one before: its steps increase, it starts no earlier than the
    previous piece's last step and no later than one frame stride after it. A first frame that repeats the previous
    piece's last step is dropped. Arrays missing from a piece are left out of the result.

    :raises ValueError: naming the piece that does not continue the one before, or a malformed piece.
    """
    if not chunks:
        raise ValueError('no pieces to join')
    strides = []
    for index, chunk in enumerate(chunks):
        if steps_key not in chunk or len(chunk[steps_key]) == 0:
            raise ValueError(f'piece {index} has no {steps_key!r} array (or no frame)')
        steps = np.asarray(chunk[steps_key])
        if np.any(np.diff(steps) <= 0):
            raise ValueError(f'piece {index}: its {steps_key} do not increase')
        for name, value in chunk.items():
            if np.ndim(value) == 0 or len(value) != len(steps):
                raise ValueError(f'piece {index}: array {name!r} has shape {np.shape(value)}, not {len(steps)} frames')
        strides.append(int(np.max(np.diff(steps))) if len(steps) > 1 else None)
    keep = [np.ones(len(chunks[0][steps_key]), dtype=bool)]
    for index in range(1, len(chunks)):
        last = int(chunks[index - 1][steps_key][-1])
        steps = np.asarray(chunks[index][steps_key])
        new = steps[steps != last]
        stride = max((s for s in strides[index - 1:index + 1] if s is not None), default=None)
        if steps[0] < last or (new.size and stride is not None and new[0] - last > stride):
            raise ValueError(f'piece {index} starts at step {int(steps[0])} where piece {index - 1} ends at step '
                             f'{last} (frame stride {stride}): it does not continue it')
        keep.append(steps != last)
    names = [name for name in chunks[0] if all(name in chunk for chunk in chunks)]
    return {name: np.concatenate([np.asarray(chunk[name])[mask] for chunk, mask in zip(chunks, keep)])
            for name in names}
