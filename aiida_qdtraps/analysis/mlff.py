"""Pure kernels of the MLFF active-learning loop (no aiida): model deviation, selection, DFT labels, parity.

Units follow DeePMD-kit: energies in eV, forces in eV/Å, positions in Å. CP2K reports atomic units (Hartree,
Hartree/Bohr); :func:`read_cp2k_atomic_forces` and :func:`cp2k_label` convert and check them.

Selection follows DP-GEN's model-deviation scheme (Sowa et al., Methods): a frame whose maximum per-atom force
deviation ``max_devi_f`` (eV/Å) over the ensemble is below ``trust_lo`` is *accurate*, between ``trust_lo`` and
``trust_hi`` a *candidate* for DFT labelling, above ``trust_hi`` *failed* (unphysical, not labelled).
"""

from __future__ import annotations

import dataclasses
import pathlib
import re

import numpy as np
from ase import Atoms
from ase.units import Bohr, Hartree
from deepmd.infer.model_devi import calc_model_devi_e, calc_model_devi_f

__all__ = (
    'HARTREE_EV',
    'HARTREE_PER_BOHR_EV_PER_ANGSTROM',
    'MAX_PLAUSIBLE_FORCE',
    'LabelledFrame',
    'Selection',
    'assemble_dataset',
    'assign_validation',
    'cp2k_label',
    'labelled_system',
    'model_deviation',
    'parity_metrics',
    'parity_panels',
    'parity_plot',
    'rattled_positions',
    'read_cp2k_atomic_forces',
    'read_cp2k_md_frames',
    'recenter_in_cell',
    'select_by_deviation',
)

HARTREE_EV = float(Hartree)  #: 1 Hartree in eV (ASE's CODATA value)
HARTREE_PER_BOHR_EV_PER_ANGSTROM = float(Hartree / Bohr)  #: 1 Hartree/Bohr in eV/Å
#: Largest |F| (eV/Å) accepted on one atom of a labelled frame: a larger value means wrong units or a broken SCF.
MAX_PLAUSIBLE_FORCE = 50.0

_XYZ_COMMENT = re.compile(r'i\s*=\s*(?P<step>\d+),\s*time\s*=\s*(?P<time>[-+.\dEe]+),\s*E\s*=\s*(?P<energy>[-+.\dEe]+)')


def model_deviation(forces: np.ndarray, energies: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Ensemble deviation per frame, as DeePMD-kit's ``dp model-devi`` defines it.

    :param forces: ``(n_models, n_frames, n_atoms, 3)`` forces in eV/Å.
    :param energies: optional ``(n_models, n_frames)`` total energies in eV.
    :returns: ``max_devi_f``, ``min_devi_f``, ``avg_devi_f`` (eV/Å; norm of the per-atom force standard deviation,
        max/min/mean over atoms) and, with energies, ``devi_e`` (eV/atom; standard deviation of E/N).
    """
    forces = np.asarray(forces, dtype=float)
    if forces.ndim != 4 or forces.shape[0] < 2 or forces.shape[-1] != 3:
        raise ValueError(f'forces must have shape (n_models >= 2, n_frames, n_atoms, 3), got {forces.shape}')
    max_f, min_f, avg_f = calc_model_devi_f(forces)
    result = {'max_devi_f': max_f, 'min_devi_f': min_f, 'avg_devi_f': avg_f}
    if energies is not None:
        energies = np.asarray(energies, dtype=float)
        if energies.shape != forces.shape[:2]:
            raise ValueError(f'energies must have shape {forces.shape[:2]} (n_models, n_frames), got {energies.shape}')
        result['devi_e'] = calc_model_devi_e(energies[..., None] / forces.shape[2])
    return result


@dataclasses.dataclass(frozen=True)
class Selection:
    """Outcome of :func:`select_by_deviation`: frame indices (into the deviation array) and fractions."""

    accurate: np.ndarray
    candidates: np.ndarray  #: all frames between the trust levels (before stride and cap)
    selected: np.ndarray  #: the candidates picked for labelling (after stride and cap)
    failed: np.ndarray

    @property
    def n_frames(self) -> int:
        return len(self.accurate) + len(self.candidates) + len(self.failed)

    def fractions(self) -> dict[str, float]:
        """Accurate / candidate / failed fractions of all frames (0 for an empty selection)."""
        n = max(self.n_frames, 1)
        return {'accurate': len(self.accurate) / n, 'candidate': len(self.candidates) / n,
                'failed': len(self.failed) / n}


def select_by_deviation(max_devi_f, trust_lo: float, trust_hi: float, max_candidates: int, stride: int = 1,
                        seed: int = 0, groups=None) -> Selection:
    """Split frames by their maximum force deviation and pick at most ``max_candidates`` to label.

    :param max_devi_f: per-frame maximum force deviation (eV/Å).
    :param trust_lo: lower trust level (eV/Å); below it a frame is accurate.
    :param trust_hi: upper trust level (eV/Å); at or above it a frame is failed.
    :param max_candidates: cap on the frames picked for labelling (>= 0).
    :param stride: keep every ``stride``-th candidate (in frame order) before the cap (>= 1), to decorrelate.
    :param seed: seed of the random choice applied when more candidates than the cap remain.
    :param groups: optional group of every frame (e.g. the kind of exploration that made it, MD or relaxation):
        when the candidates belong to more than one group, the cap is shared round-robin over the groups, each
        group's candidates in random order, so that short relaxation paths are not outnumbered by long MDs; else
        (and without ``groups``) the choice is uniform over all candidates.
    """
    devi = np.asarray(max_devi_f, dtype=float)
    if devi.ndim != 1:
        raise ValueError(f'max_devi_f must be one value per frame, got shape {devi.shape}')
    if not np.all(np.isfinite(devi)):
        raise ValueError('max_devi_f holds NaN or inf values (a diverged MD?)')
    if not 0 <= trust_lo < trust_hi:
        raise ValueError(f'trust levels must satisfy 0 <= trust_lo < trust_hi, got trust_lo={trust_lo}, '
                         f'trust_hi={trust_hi} (eV/Å)')
    if int(max_candidates) < 0:
        raise ValueError(f'max_candidates must be >= 0, got {max_candidates}')
    if int(stride) < 1:
        raise ValueError(f'stride must be >= 1, got {stride}')
    accurate = np.flatnonzero(devi < trust_lo)
    candidates = np.flatnonzero((devi >= trust_lo) & (devi < trust_hi))
    failed = np.flatnonzero(devi >= trust_hi)
    picked = candidates[::int(stride)]
    if groups is not None and np.shape(groups) != devi.shape:
        raise ValueError(f'groups must give one group per frame ({devi.shape}), got shape {np.shape(groups)}')
    if len(picked) > max_candidates and groups is not None and len(np.unique(np.asarray(groups)[picked])) > 1:
        groups = np.asarray(groups)
        rng = np.random.default_rng(seed)
        queues = [rng.permutation(picked[groups[picked] == g]) for g in np.unique(groups[picked])]
        rounds = [queue[k] for k in range(max(len(q) for q in queues)) for queue in queues if k < len(queue)]
        picked = np.sort(np.array(rounds[:int(max_candidates)], dtype=int))
    elif len(picked) > max_candidates:
        picked = np.sort(np.random.default_rng(seed).choice(picked, size=int(max_candidates), replace=False))
    return Selection(accurate=accurate, candidates=candidates, selected=picked, failed=failed)


def read_cp2k_atomic_forces(output: str) -> np.ndarray:
    """Last atomic forces table of a CP2K main output, converted to eV/Å, shape ``(n_atoms, 3)``.

    Both layouts are read (:func:`aiida_qdtraps.parsers.cp2k_files.read_force_blocks`): ``ATOMIC FORCES in [a.u.]``
    of CP2K up to 2024.x and ``FORCES| Atomic forces [hartree/bohr]`` of 2025.1 on.

    :raises ValueError: if there is no complete table or its unit is not Hartree/Bohr.
    """
    from aiida_qdtraps.parsers.cp2k_files import read_force_blocks

    blocks = read_force_blocks(output)
    if not blocks:
        raise ValueError('no complete atomic forces table (`ATOMIC FORCES in [a.u.]` of CP2K <= 2024, '
                         '`FORCES| Atomic forces [hartree/bohr]` of CP2K >= 2025.1) in the CP2K output: was '
                         'FORCE_EVAL/PRINT/FORCES set?')
    return blocks[-1] * HARTREE_PER_BOHR_EV_PER_ANGSTROM


def cp2k_label(energy: float, energy_units: str, forces_ev_per_angstrom: np.ndarray, n_atoms: int) -> tuple[float,
                                                                                                             np.ndarray]:
    """Check one CP2K label and return ``(energy in eV, forces in eV/Å)``.

    :param energy: CP2K total energy as parsed by aiida-cp2k (``output_parameters['energy']``).
    :param energy_units: its unit as parsed (``output_parameters['energy_units']``); only Hartree (``a.u.``, as
        aiida-cp2k and :class:`~aiida_qdtraps.parsers.cp2k.QdCp2kParser` label it, or ``hartree``).
    :raises ValueError: on another energy unit, a force array of the wrong shape, or |F| above
        :data:`MAX_PLAUSIBLE_FORCE` eV/Å on any atom (wrong units or a broken calculation).
    """
    if energy_units not in ('a.u.', 'hartree'):
        raise ValueError(f'CP2K energy unit {energy_units!r} is not supported; expected `a.u.` (Hartree)')
    forces = np.asarray(forces_ev_per_angstrom, dtype=float)
    if forces.shape != (n_atoms, 3):
        raise ValueError(f'forces have shape {forces.shape}, expected ({n_atoms}, 3) for the labelled structure')
    largest = float(np.linalg.norm(forces, axis=1).max())
    if not np.isfinite(largest) or largest > MAX_PLAUSIBLE_FORCE:
        raise ValueError(f'largest atomic force {largest:.3g} eV/Å is outside the plausible range '
                         f'[0, {MAX_PLAUSIBLE_FORCE}] eV/Å: check units or the SCF')
    return float(energy) * HARTREE_EV, forces


def labelled_system(atoms: Atoms, energy_ev: float, forces_ev_per_angstrom: np.ndarray, type_map: list[str]):
    """One labelled frame as a non-periodic ``dpdata.LabeledSystem`` (units: eV, eV/Å, Å).

    :param type_map: element order shared by the whole dataset and all models; must contain every element.
    """
    import dpdata

    symbols = atoms.get_chemical_symbols()
    missing = sorted(set(symbols) - set(type_map))
    if missing:
        raise ValueError(f'elements {missing} are not in the type map {type_map}')
    cell = np.asarray(atoms.cell.array if atoms.cell.rank == 3 else np.eye(3) * 100.0, dtype=float)
    data = {
        'atom_names': list(type_map),
        'atom_numbs': [symbols.count(el) for el in type_map],
        'atom_types': np.array([type_map.index(s) for s in symbols]),
        'cells': cell[None],
        'coords': atoms.get_positions()[None],
        'energies': np.array([float(energy_ev)]),
        'forces': np.asarray(forces_ev_per_angstrom, dtype=float)[None],
        'orig': np.zeros(3),
        'nopbc': True,
    }
    return dpdata.LabeledSystem(data=data)


def assign_validation(n_existing: int, n_new: int, every: int) -> np.ndarray:
    """Boolean mask over ``n_new`` frames: ``True`` for those held out for validation.

    Frames are numbered on from the ``n_existing`` already in the dataset; every ``every``-th (0, every, 2 every, ...)
    is held out, so the split does not depend on how the frames arrive. ``every = 0`` holds out nothing.
    """
    if every < 0:
        raise ValueError(f'every must be >= 0, got {every}')
    index = np.arange(n_existing, n_existing + n_new)
    return np.zeros(n_new, bool) if every == 0 else index % every == 0


def parity_metrics(predicted, reference) -> dict[str, float]:
    """MAE, RMSE and maximum absolute error of ``predicted`` against ``reference`` (same units as the inputs)."""
    predicted, reference = np.asarray(predicted, dtype=float), np.asarray(reference, dtype=float)
    if predicted.shape != reference.shape or predicted.size == 0:
        raise ValueError(f'predicted {predicted.shape} and reference {reference.shape} must have one equal, '
                         'non-empty shape')
    error = predicted - reference
    return {'mae': float(np.abs(error).mean()), 'rmse': float(np.sqrt(np.square(error).mean())),
            'max': float(np.abs(error).max())}


@dataclasses.dataclass(frozen=True)
class LabelledFrame:
    """One DFT-labelled geometry for the dataset: energy in eV, forces in eV/Å (shape (n_atoms, 3)), the id of what
    labelled it (a CalcJob's uuid) and its MD step (None for a single-point label of a prepared geometry)."""

    atoms: Atoms
    energy: float
    forces: np.ndarray
    source: str
    md_step: int | None = None


def assemble_dataset(frames, type_map: list[str], validation_every: int, systems: dict | None = None,
                     sources: dict | None = None, md_steps: dict | None = None,
                     subsets: tuple[str, str] = ('training', 'validation')) -> tuple[dict, dict, dict]:
    """Add labelled frames to a deepmd dataset: one ``dpdata.LabeledSystem`` per subset and composition.

    The frames are numbered on from those already in ``sources``; every ``validation_every``-th is held out
    (:func:`assign_validation`). A frame goes to the system ``<subset>/<composition>``, the composition written in
    ``type_map`` order without absent elements (``training/In4P1F9``), and its ``source`` and ``md_step`` are appended
    to that system's lists, which stay aligned with its frames (systems from before MD steps were recorded get
    ``None`` for each earlier frame).

    :param frames: :class:`LabelledFrame` s, in order.
    :param systems: the dataset's systems by name (extended in place), ``sources`` / ``md_steps``: per system the
        source and MD step of each frame (copied, not changed).
    :param subsets: names of the training and validation subsets.
    :returns: ``(systems, sources, md_steps)`` with the new frames.
    :raises ValueError: for an element missing from ``type_map`` (:func:`labelled_system`) or a negative
        ``validation_every``.
    """
    systems = {} if systems is None else systems
    sources = {name: list(values) for name, values in (sources or {}).items()}
    md_steps = {name: list(values) for name, values in (md_steps or {}).items()}
    frames = list(frames)
    held_out = assign_validation(sum(len(v) for v in sources.values()), len(frames), int(validation_every))
    for frame, validation in zip(frames, held_out):
        system = labelled_system(frame.atoms, frame.energy, frame.forces, type_map)
        name = f'{subsets[1] if validation else subsets[0]}/' + ''.join(
            f'{el}{n}' for el, n in zip(type_map, system.get_atom_numbs()) if n)
        if name in systems:
            systems[name].append(system)
        else:
            systems[name] = system
        md_steps.setdefault(name, [None] * len(sources.get(name, [])))
        sources.setdefault(name, []).append(frame.source)
        md_steps[name].append(frame.md_step)
    return systems, sources, md_steps


def write_dipole_systems(directory, symbols, positions, dipoles, type_map: list[str], validation_every: int,
                         subsets: tuple[str, str] = ('training', 'validation')) -> dict[str, int]:
    """Write frames with their global dipoles as deepmd/npy systems for a DeePMD dipole model.

    ``<directory>/<subset>/<composition>/`` gets ``type.raw``, ``type_map.raw``, ``nopbc`` and ``set.000/`` with
    ``coord.npy`` (Å), ``box.npy`` (a zero box, ignored with ``nopbc``) and ``dipole.npy`` (e·Å, shape (frames, 3));
    every ``validation_every``-th frame (0, n, 2n, ...; 0: none) goes to the validation subset.

    :param symbols: the element of each atom (the same for every frame).
    :param positions: (frames, atoms, 3) in Å; ``dipoles``: (frames, 3) in e·Å.
    :returns: per written system, the indices of its frames in ``positions`` (``{'training/F9In4P1': [1, 2, ...],
        'validation/F9In4P1': [0, 5, ...]}``).
    :raises ValueError: naming what is wrong: shapes that disagree, values that are not finite, an element missing
        from ``type_map``, no frames.
    """
    positions = np.asarray(positions, dtype=float)
    dipoles = np.asarray(dipoles, dtype=float)
    symbols = list(symbols)
    if positions.ndim != 3 or positions.shape[1:] != (len(symbols), 3) or len(positions) == 0:
        raise ValueError(f'positions have shape {positions.shape}; expected (frames > 0, {len(symbols)}, 3)')
    if dipoles.shape != (len(positions), 3):
        raise ValueError(f'dipoles have shape {dipoles.shape}; expected ({len(positions)}, 3), one per frame')
    for name, values in (('positions', positions), ('dipoles', dipoles)):
        bad = np.flatnonzero(~np.isfinite(values.reshape(len(values), -1)).all(axis=1))
        if len(bad):
            raise ValueError(f'{name} of frame {int(bad[0])} are not finite numbers')
    missing = sorted(set(symbols) - set(type_map))
    if missing:
        raise ValueError(f'elements {missing} are not in type_map {type_map}')
    types = np.array([type_map.index(symbol) for symbol in symbols])
    composition = ''.join(f'{el}{symbols.count(el)}' for el in type_map if el in symbols)
    held_out = assign_validation(0, len(positions), int(validation_every))
    written = {}
    for subset, mask in ((subsets[0], ~held_out), (subsets[1], held_out)):
        if not mask.any():
            continue
        system = pathlib.Path(directory) / subset / composition
        (system / 'set.000').mkdir(parents=True, exist_ok=True)
        np.savetxt(system / 'type.raw', types, fmt='%d')
        (system / 'type_map.raw').write_text('\n'.join(type_map) + '\n')
        (system / 'nopbc').write_text('')
        n = int(mask.sum())
        np.save(system / 'set.000' / 'coord.npy', positions[mask].reshape(n, -1))
        np.save(system / 'set.000' / 'box.npy', np.zeros((n, 9)))
        np.save(system / 'set.000' / 'dipole.npy', dipoles[mask])
        written[f'{subset}/{composition}'] = np.flatnonzero(mask).tolist()
    return written


#: Panels of the parity plot: name, axis label.
PARITY_PANELS = (('energy', 'energy (eV/atom)'), ('force', 'force (eV/Å)'))


def parity_panels(energy_dft, energy_mlff, forces_dft, forces_mlff) -> list[dict]:
    """The two panels of the parity plot: per-atom energies (eV/atom) and force components (eV/Å, flattened).

    :returns: per panel ``name``, ``label``, ``reference`` and ``predicted`` (1-D arrays), their
        :func:`parity_metrics` and the ``low`` / ``high`` ends of the diagonal (the range of both).
    """
    panels = []
    for (name, label), (reference, predicted) in zip(PARITY_PANELS, ((energy_dft, energy_mlff),
                                                                      (forces_dft, forces_mlff))):
        reference, predicted = np.asarray(reference, float), np.asarray(predicted, float)
        metrics = parity_metrics(predicted, reference)
        reference, predicted = reference.ravel(), predicted.ravel()
        panels.append({'name': name, 'label': label, 'reference': reference, 'predicted': predicted, **metrics,
                       'low': float(min(reference.min(), predicted.min())),
                       'high': float(max(reference.max(), predicted.max()))})
    return panels


def parity_plot(energy_dft, energy_mlff, forces_dft, forces_mlff) -> bytes:
    """PNG (800 × 400 pixels) of MLFF against DFT: energies per atom (eV/atom) and force components (eV/Å), each
    with the diagonal and its MAE and RMSE in the title (:func:`parity_panels`)."""
    import io

    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(8, 4))
    for axis, panel in zip(axes, parity_panels(energy_dft, energy_mlff, forces_dft, forces_mlff)):
        axis.scatter(panel['reference'], panel['predicted'], s=8)
        axis.plot([panel['low'], panel['high']], [panel['low'], panel['high']], 'k--', lw=0.8)
        axis.set_xlabel(f"DFT {panel['label']}")
        axis.set_ylabel(f"MLFF {panel['label']}")
        axis.set_title(f"MAE {panel['mae']:.3g}, RMSE {panel['rmse']:.3g}")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format='png', dpi=100)
    plt.close(figure)
    return buffer.getvalue()


def recenter_in_cell(atoms: Atoms, cell) -> Atoms:
    """Copy of ``atoms`` in ``cell`` (3x3, Å) with its centre of geometry at the cell centre, non-periodic."""
    cell = np.asarray(cell, dtype=float)
    out = atoms.copy()
    out.set_cell(cell)
    out.set_pbc(False)
    out.translate(cell.sum(axis=0) / 2 - out.get_positions().mean(axis=0))
    return out


def rattled_positions(positions, stdev: float, n_frames: int, seed: int) -> np.ndarray:
    """``n_frames`` copies of ``positions`` (Å) with independent Gaussian displacements of ``stdev`` Å per coordinate.

    Frame 0 is the unperturbed structure.
    """
    if not 0 < stdev <= 0.5:
        raise ValueError(f'rattle stdev must be in (0, 0.5] Å, got {stdev}')
    if n_frames < 1:
        raise ValueError(f'n_frames must be >= 1, got {n_frames}')
    positions = np.asarray(positions, dtype=float)
    rng = np.random.default_rng(seed)
    frames = positions[None] + rng.normal(0.0, stdev, size=(n_frames, *positions.shape))
    frames[0] = positions
    return frames


def _read_cp2k_xyz_frames(text: str, what: str) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Frames of a CP2K MD ``.xyz`` file: symbols, step numbers, energies (from the comment lines) and vectors."""
    lines = text.splitlines()
    symbols, steps, energies, vectors = None, [], [], []
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        n_atoms = int(lines[i].split()[0])
        comment = _XYZ_COMMENT.search(lines[i + 1])
        if comment is None:
            raise ValueError(f'{what}: comment line {i + 2} {lines[i + 1].strip()!r} is not `i = <step>, time = ..., '
                             'E = <energy>`')
        rows = [line.split() for line in lines[i + 2:i + 2 + n_atoms]]
        if len(rows) != n_atoms or any(len(row) != 4 for row in rows):
            raise ValueError(f'{what}: frame at line {i + 1} has fewer than {n_atoms} complete atom lines (truncated?)')
        frame_symbols = [row[0] for row in rows]
        if symbols is None:
            symbols = frame_symbols
        elif frame_symbols != symbols:
            raise ValueError(f'{what}: the atoms of step {comment["step"]} differ from those of the first frame')
        steps.append(int(comment['step']))
        energies.append(float(comment['energy']))
        vectors.append([[float(x) for x in row[1:]] for row in rows])
        i += 2 + n_atoms
    if not steps:
        raise ValueError(f'{what}: no frames')
    return symbols, np.array(steps), np.array(energies), np.array(vectors)


def read_cp2k_md_frames(positions_xyz: str, forces_xyz: str, ener: str | None = None) -> dict:
    """Labelled frames of a CP2K MD run from its ``-pos-1.xyz`` and ``-frc-1.xyz`` files (and ``-1.ener``).

    CP2K writes positions in Å and (``MOTION/PRINT/FORCES/UNIT`` at its default) forces in Hartree/Bohr; the potential
    energy in Hartree is on each frame's comment line of both files and in the ``Pot.[a.u.]`` column of the ``.ener``
    file. The three must agree frame by frame (to 1e-6 Ha), and the two files must hold the same steps and atoms.

    :returns: ``symbols``, ``steps``, ``positions`` (Å, ``(n_frames, n_atoms, 3)``), ``energies`` (eV) and ``forces``
        (eV/Å), without any plausibility check (see :func:`cp2k_label`).
    :raises ValueError: naming the mismatch (steps, atoms, energies) or the malformed line.
    """
    symbols, steps, energies, positions = _read_cp2k_xyz_frames(positions_xyz, 'positions file')
    f_symbols, f_steps, f_energies, forces = _read_cp2k_xyz_frames(forces_xyz, 'forces file')
    if f_symbols != symbols:
        raise ValueError('the forces file lists other atoms than the positions file')
    if not np.array_equal(steps, f_steps):
        raise ValueError(f'the positions file has steps {steps.tolist()} but the forces file {f_steps.tolist()}')
    if not np.allclose(energies, f_energies, rtol=0, atol=1e-6):
        raise ValueError('the energies of the positions and forces files differ by more than 1e-6 Ha')
    if ener is not None:
        table = np.atleast_2d(np.loadtxt(ener.splitlines(), comments='#'))
        pot = dict(zip(table[:, 0].astype(int), table[:, 4]))
        missing = [int(s) for s in steps if int(s) not in pot]
        if missing:
            raise ValueError(f'the .ener file has no row for step(s) {missing}')
        largest = max(abs(pot[int(s)] - e) for s, e in zip(steps, energies))
        if largest > 1e-6:
            raise ValueError(f'the .ener potential energies differ from the trajectory energies by {largest:.3g} Ha')
    return {'symbols': symbols, 'steps': steps, 'positions': positions, 'energies': energies * HARTREE_EV,
            'forces': forces * HARTREE_PER_BOHR_EV_PER_ANGSTROM}
