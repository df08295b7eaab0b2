"""Parsers of the DeePMD jobs: ``qdtraps.deepmd.train`` (model, learning curve, validation) and ``qdtraps.mlff_md``."""

from __future__ import annotations

import io
import json
import re
import zipfile

import numpy as np
from aiida import orm
from aiida.common.log import LOG_LEVEL_REPORT
from aiida.parsers import Parser

from ..analysis.mlff import parity_metrics
from ..calculations.deepmd import DETAIL_PREFIX, LCURVE_FILE, LOG, MODEL_FILE
from ..calculations.mlff_md import CHECKPOINT_PREFIX

#: What dp writes when ``--init-frz-model`` matched only part of the model (``deepmd/pt/train/training.py``).
PARTIAL_LOAD = 'Checkpoint loaded non-strictly'
#: What dp writes when the data need more neighbours than the model's ``sel`` (kept from the init model).
SEL_WARNING = re.compile(r'sel of type \d+ is not enough[^\n]*')

#: Coordinates further than this (Å) from the start are taken as an exploded MD.
MAX_DISPLACEMENT = 50.0

#: the checkpoint chunks an MLFF MD writes as it goes (``checkpoint_00001.npz``, ...)
CHECKPOINT_CHUNK = re.compile(rf'{re.escape(CHECKPOINT_PREFIX)}\d{{5}}\.npz')


def read_table(text: str, name: str, min_columns: int) -> np.ndarray:
    """The numeric rows of a whitespace table (``#`` comments), shape (n_rows, n_columns).

    ``nan`` is read as a value (DeePMD prints it for a diverged or missing quantity); anything else that is not a
    number, rows of unequal length, fewer than ``min_columns`` columns or no rows raise a ValueError naming the line.
    """
    rows = [(number, line.split()) for number, line in enumerate(text.splitlines(), 1)
            if line.strip() and not line.lstrip().startswith('#')]
    if not rows:
        raise ValueError(f'{name} has no rows (empty or truncated file?)')
    width = len(rows[0][1])
    for number, fields in rows:
        if len(fields) != width or width < min_columns:
            raise ValueError(f'line {number} of {name} has {len(fields)} columns; expected {max(width, min_columns)}')
        try:
            [float(field) for field in fields]
        except ValueError:
            raise ValueError(f'line {number} of {name} holds a value that is not a number: '
                             f'{" ".join(fields)!r}') from None
    return np.array([[float(field) for field in fields] for _, fields in rows])


def read_lcurve(text: str) -> dict[str, np.ndarray]:
    """Columns of DeePMD's ``lcurve.out`` by name (header ``#  step  rmse_trn  rmse_e_trn ...``).

    :raises ValueError: no header line with a ``step`` column, rows that do not match the header, or a value that is
        not a number (``nan`` is kept: the parser takes it as a diverged training).
    """
    header = next((line for line in text.splitlines() if line.startswith('#')), '').lstrip('#').split()
    if 'step' not in header:
        raise ValueError(f'{LCURVE_FILE} has no "# step rmse_trn ..." header line')
    data = read_table(text, LCURVE_FILE, len(header))
    if data.shape[1] != len(header):
        raise ValueError(f'{LCURVE_FILE} rows have {data.shape[1]} columns, the header names {len(header)}')
    if not np.all(np.isfinite(data[:, header.index('step')])):
        raise ValueError(f'{LCURVE_FILE} has a step that is not a finite number')
    return {name: data[:, i] for i, name in enumerate(header)}


class DeepmdTrainParser(Parser):
    """Store the frozen model, the learning curve and the held-out parity of a ``DeepmdTrainCalculation``."""

    def _content(self, name: str) -> str | None:
        if name not in self.retrieved.base.repository.list_object_names():
            return None
        return self.retrieved.base.repository.get_object_content(name)

    def parse(self, **kwargs):
        names = self.retrieved.base.repository.list_object_names()
        for filename in (LCURVE_FILE, MODEL_FILE):
            if filename not in names:
                return self.exit_codes.ERROR_MISSING_OUTPUT.format(filename=filename)
        try:  # every file is read before an output is registered: a damaged file leaves no outputs
            curve = read_lcurve(self._content(LCURVE_FILE))
            dipole = 'kind' in self.node.inputs and self.node.inputs.kind.value == 'dipole'
            parity = self._read_dipole_validation() if dipole else self._read_validation()
            log = self._content(LOG) or ''
            settings = json.loads(self._content('input.json') or '{}')
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError included
            self.logger.error(f'could not read the training outputs: {exc}')
            return self.exit_codes.ERROR_INVALID_OUTPUT
        if any(np.isnan(values).any() for values in curve.values()):
            return self.exit_codes.ERROR_TRAINING_DIVERGED
        warm_start = 'init_model' in self.node.inputs
        if warm_start and PARTIAL_LOAD in log:
            line = next(line for line in log.splitlines() if PARTIAL_LOAD in line)
            return self.exit_codes.ERROR_INIT_MODEL_NOT_LOADED.format(message=line.strip()[:300])
        learning_curve = orm.ArrayData()
        for name, values in curve.items():
            learning_curve.set_array(name, values)
        self.out('learning_curve', learning_curve)
        with self.retrieved.base.repository.open(MODEL_FILE, 'rb') as handle:
            model = orm.SinglefileData(handle, filename=MODEL_FILE)
        if 'type_map' in self.node.inputs:
            model.base.attributes.set('type_map', self.node.inputs.type_map.get_list())
        model.base.attributes.set('kind', 'dipole' if dipole else 'energy')
        self.out('model', model)

        steps = settings.get('training', {}).get('numb_steps', int(curve['step'][-1]))
        result = {'numb_steps': int(steps), 'last_lcurve_step': int(curve['step'][-1]), 'warm_start': warm_start,
                  **{f'initial_{key}': float(values[0]) for key, values in curve.items() if key.startswith('rmse')},
                  **{f'final_{key}': float(values[-1]) for key, values in curve.items() if key.startswith('rmse')}}
        sel_warnings = sorted(set(SEL_WARNING.findall(log)))
        if sel_warnings:
            result['sel_warnings'] = sel_warnings
        if parity is not None and dipole:
            self.out('validation_parity', parity)
            metrics = parity_metrics(parity.get_array('dipole_mlff'), parity.get_array('dipole_dft'))
            labels = parity.get_array('dipole_dft')
            # the labels' own spread about their mean, per component as the RMSE: what predicting the mean would give
            spread = float(np.sqrt(np.square(labels - labels.mean(axis=0)).mean()))
            result.update(n_validation_frames=len(labels), dipole_mae=metrics['mae'], dipole_rmse=metrics['rmse'],
                          dipole_max_error=metrics['max'], dipole_std=spread,
                          units={'dipole': 'e*angstrom', 'lcurve_dipole': 'e*angstrom per atom'})
        elif parity is not None:
            e, f = parity
            parity = orm.ArrayData()
            parity.set_array('energy_per_atom_dft', e[:, 0])
            parity.set_array('energy_per_atom_mlff', e[:, 1])
            parity.set_array('forces_dft', f[:, :3])
            parity.set_array('forces_mlff', f[:, 3:6])
            self.out('validation_parity', parity)
            energy = parity_metrics(e[:, 1], e[:, 0])
            force = parity_metrics(f[:, 3:6], f[:, :3])
            result.update(n_validation_frames=len(e), energy_mae_per_atom=energy['mae'],
                          energy_rmse_per_atom=energy['rmse'], force_mae=force['mae'], force_rmse=force['rmse'],
                          force_max_error=force['max'], units={'energy': 'eV/atom', 'force': 'eV/Å'})
        self.out('output_parameters', orm.Dict(result))
        return None

    def _read_dipole_validation(self) -> orm.ArrayData | None:
        """``dp test``'s global dipoles of a dipole model (label x y z, prediction x y z; e·Å) as ``dipole_dft`` and
        ``dipole_mlff`` arrays, None if it was not run.

        :raises ValueError: for a damaged table or values that are not finite numbers.
        """
        name = f'{DETAIL_PREFIX}.out'
        text = self._content(name)
        if text is None:
            return None
        table = read_table(text, name, 6)
        if table.shape[1] != 6 or not np.all(np.isfinite(table)):
            raise ValueError(f'{name} must hold 6 finite columns (label and predicted dipole), got {table.shape[1]}')
        parity = orm.ArrayData()
        parity.set_array('dipole_dft', table[:, :3])
        parity.set_array('dipole_mlff', table[:, 3:])
        return parity

    def _read_validation(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``dp test``'s per-atom energies (n_frames, 2) and forces (n_atoms, 6), None if it was not run.

        :raises ValueError: for a damaged table or values that are not finite numbers.
        """
        names = (f'{DETAIL_PREFIX}.e_peratom.out', f'{DETAIL_PREFIX}.f.out')
        energies, forces = (self._content(name) for name in names)
        if energies is None or forces is None:
            return None
        e, f = read_table(energies, names[0], 2), read_table(forces, names[1], 6)
        if not (np.all(np.isfinite(e[:, :2])) and np.all(np.isfinite(f[:, :6]))):
            raise ValueError(f'{names[0]} or {names[1]} holds values that are not finite numbers')
        return e, f


class MlffMdParser(Parser):
    """Turn ``md.npz`` of an ``MlffMdCalculation`` into a TrajectoryData with the model-deviation arrays."""

    def parse(self, **kwargs):
        names = self.retrieved.base.repository.list_object_names()
        chunks = sorted(name for name in names if CHECKPOINT_CHUNK.fullmatch(name))
        if 'md.npz' not in names and not chunks:
            return self.exit_codes.ERROR_MISSING_OUTPUT
        start = self.node.inputs.structure.get_ase().get_positions()
        if 'parent_trajectory' in self.node.inputs:  # a continuation starts where its parent ended
            start = self.node.inputs.parent_trajectory.get_positions()[-1]
        try:  # the files are read and checked before an output is registered
            if 'md.npz' in names:
                data, timings = self._read_outputs(len(start))
            else:  # the job ended before its end: the chunks it wrote as it went
                data, timings = self._read_checkpoints(chunks, len(start))
        except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            self.logger.error(f'could not read md.npz / md.json / checkpoint_*.npz: {type(exc).__name__}: {exc}')
            return self.exit_codes.ERROR_INVALID_OUTPUT
        positions = data['positions']
        if not np.all(np.isfinite(positions)) or np.abs(positions - start[None]).max() > MAX_DISPLACEMENT:
            return self.exit_codes.ERROR_MD_DIVERGED
        symbols = [site.kind_name for site in self.node.inputs.structure.sites]
        symbols = [self.node.inputs.structure.get_kind(name).symbol for name in symbols]
        trajectory = orm.TrajectoryData()
        cells = np.repeat(data['cell'][None], len(positions), axis=0)
        trajectory.set_trajectory(symbols=symbols, positions=positions, stepids=data['steps'].astype(int), cells=cells,
                                  pbc=(False, False, False))
        for name in ('energies', 'forces', 'temperatures', 'max_devi_f', 'min_devi_f', 'avg_devi_f', 'devi_e'):
            if name in data:
                trajectory.set_array(name, data[name])
        if 'dipoles' in data:
            trajectory.set_array('dipole', data['dipoles'])
        self._set_md_layout(trajectory, data)
        thermostat = self._md_settings()['thermostat']
        if thermostat == 'nve' and 'kinetic_energies' in data and len(positions) >= 3:
            from ..analysis.trajectory import drift

            timings['nve_drift_mev_per_atom_ps'] = drift(trajectory.get_array('times'),
                                                         trajectory.get_array('conserved_energy'), len(symbols))
            self.logger.log(LOG_LEVEL_REPORT,  # `verdi process report` shows REPORT and above
                            f"NVE: drift of the conserved energy {timings['nve_drift_mev_per_atom_ps']:+.3f} "
                            f'meV/atom/ps over {len(positions)} frames')
        self.out('trajectory', trajectory)
        self.out('output_parameters', orm.Dict(timings))
        step = int(data['steps'][-1])
        if timings.get('from_checkpoint'):
            return self._incomplete(f'the job ended without md.npz; {len(chunks)} checkpoint chunk(s)', step)
        if timings.get('stopped_at_walltime'):
            return self._incomplete(f"stopped at its wall time, after {timings['walltime_s']:.0f} s", step)
        return None

    def _incomplete(self, reason: str, step: int):
        self.logger.log(LOG_LEVEL_REPORT, f'MD incomplete ({reason}): frames to step {step}')
        return self.exit_codes.ERROR_MD_INCOMPLETE.format(reason=reason, step=step)

    def _read_checkpoints(self, chunks: list[str], n_atoms: int) -> tuple[dict, dict]:
        """The frames of the checkpoint chunks, joined in their order, and what the timings can say of them.

        :raises ValueError: (or the OSError, KeyError, BadZipFile of a damaged chunk) naming what is wrong.
        """
        parts = []
        for name in chunks:
            with self.retrieved.base.repository.open(name, 'rb') as handle:
                with np.load(io.BytesIO(handle.read()), allow_pickle=False) as archive:
                    parts.append({key: archive[key] for key in archive.files})
            self._check_arrays(parts[-1], n_atoms, name)
        keys = set(parts[0])
        if any(set(part) != keys for part in parts):
            raise ValueError(f'the checkpoint chunks {chunks} do not hold the same arrays')
        data = {key: np.concatenate([part[key] for part in parts]) for key in keys if key != 'cell'}
        data['cell'] = parts[-1]['cell']
        if np.any(np.diff(data['steps']) <= 0):
            raise ValueError(f'the steps of the checkpoint chunks {chunks} do not increase')
        settings = self._md_settings()
        start_step = 0
        if 'parent_trajectory' in self.node.inputs:
            start_step = int(self.node.inputs.parent_trajectory.get_stepids()[-1])
        timings = {'from_checkpoint': True, 'checkpoint_chunks': len(chunks), 'n_frames': len(data['positions']),
                   'start_step': start_step, 'steps_run': int(data['steps'][-1]) - start_step,
                   'steps_requested': int(settings['steps'])}
        return data, timings

    def _md_settings(self) -> dict:
        from ..calculations.mlff_md import md_parameters

        return md_parameters(self.node.inputs.parameters.get_dict() if 'parameters' in self.node.inputs else {})

    def _read_outputs(self, n_atoms: int) -> tuple[dict, dict]:
        """The arrays of ``md.npz`` and the timings of ``md.json``, with their shapes checked.

        :raises ValueError: (or the OSError, KeyError, BadZipFile of a damaged archive) naming what is wrong.
        """
        with self.retrieved.base.repository.open('md.npz', 'rb') as handle:
            with np.load(io.BytesIO(handle.read()), allow_pickle=False) as archive:
                data = {name: archive[name] for name in archive.files}
        timings = json.loads(self.retrieved.base.repository.get_object_content('md.json'))
        if not isinstance(timings, dict):
            raise ValueError(f'md.json holds a {type(timings).__name__}, not an object')
        self._check_arrays(data, n_atoms, 'md.npz')
        return data, timings

    @staticmethod
    def _check_arrays(data: dict, n_atoms: int, name: str) -> None:
        """:raises ValueError: naming the array of ``name`` that is missing or has the wrong shape."""
        missing = sorted({'positions', 'steps', 'cell', 'energies', 'temperatures'} - set(data))
        if missing:
            raise ValueError(f'{name} lacks the arrays {missing}')
        n_frames = len(data['positions'])
        if data['positions'].shape != (n_frames, n_atoms, 3) or n_frames == 0:
            raise ValueError(f'{name} positions have shape {data["positions"].shape}; expected (frames, {n_atoms}, 3)')
        for key, value in data.items():
            if key != 'cell' and (value.ndim == 0 or len(value) != n_frames):
                raise ValueError(f'{name} array {key!r} has shape {value.shape}, not {n_frames} frames')
        if data['cell'].shape != (3, 3):
            raise ValueError(f'{name} cell has shape {data["cell"].shape}, expected (3, 3)')


    def _set_md_layout(self, trajectory: orm.TrajectoryData, data: dict) -> None:
        """Add the trajectory layout every MD analysis reads (docs/md.md): times (fs), velocities (Å/fs), potential /
        kinetic / conserved energy (eV), temperature (K) and the ``timestep_fs``, ``md_timestep_fs``, ``engine``,
        ``units`` attributes; outputs of the script before velocities were saved get what they have."""
        dt = float(self._md_settings()['timestep_fs'])
        steps = data['steps'].astype(float)
        trajectory.set_array('times', steps * dt)
        if 'velocities' in data:
            trajectory.set_array('velocities', data['velocities'])
        trajectory.set_array('potential_energy', data['energies'])
        trajectory.set_array('temperature', data['temperatures'])
        if 'kinetic_energies' in data:
            trajectory.set_array('kinetic_energy', data['kinetic_energies'])
            trajectory.set_array('conserved_energy', data['energies'] + data['kinetic_energies'])
        stride = float(np.median(np.diff(steps))) if len(steps) > 1 else 1.0
        trajectory.base.attributes.set_many({
            'timestep_fs': stride * dt, 'md_timestep_fs': dt, 'engine': 'mlff', 'mode': self._md_settings()['mode'],
            'units': {'positions': 'angstrom', 'velocities': 'angstrom/fs', 'times': 'fs', 'energy': 'eV',
                      'temperature': 'K', 'dipole': 'e*angstrom'}})
