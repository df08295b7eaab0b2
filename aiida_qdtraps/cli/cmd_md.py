"""``qdtraps md``: molecular dynamics of a QD — ``md run`` (CP2K or MLFF, stored with provenance) and the trajectory
analyses on plain files (``md analyze``, ``md dephasing``).

``md run`` needs the project profile. The analysis commands read an extended-xyz trajectory or a CSV of gaps and write
CSV tables and PNG plots; they need no AiiDA profile. In the provenance graph the same kernels run as the
``qdtraps.compute_*`` calcfunctions (:mod:`aiida_qdtraps.workchains.dynamics`) on the trajectory ``md run`` stores.
"""

from __future__ import annotations

import csv
import pathlib

import click
import numpy as np

from .root import cli


@cli.group()
def md():
    """Molecular dynamics of a QD and the analyses of its trajectory (docs/dynamics.md)."""


def _write_csv(path: pathlib.Path, header: list[str], columns: list) -> None:
    rows = np.column_stack([np.asarray(c) for c in columns])
    with open(path, 'w', newline='', encoding='utf-8') as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            writer.writerow([_cell(value) for value in row])


def _cell(value) -> str:
    try:
        return f'{float(value):.8g}'
    except (TypeError, ValueError):
        return str(value)


def _table(rows: list[tuple]) -> str:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(row[k]) for row in cells) for k in range(len(cells[0]))]
    return '\n'.join('  '.join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells)


def _fail(exc: ValueError):
    raise click.ClickException(str(exc)) from None


@md.command()
@click.argument('trajectory', type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path))
@click.option('--rdf', 'rdf_pairs', multiple=True, metavar='A-B',
              help='RDF of an element pair, e.g. Pb-O (repeat the option for several).')
@click.option('--rmsf', 'do_rmsf', is_flag=True, help='RMSF per atom after rigid-body alignment, per element and '
              'per class (core / surface / ligand).')
@click.option('--vdos', 'do_vdos', is_flag=True, help='Vibrational density of states (needs velocities or momenta).')
@click.option('--ir', 'do_ir', is_flag=True, help='IR spectrum from the dipole (needs a dipole in every frame).')
@click.option('--binding-modes', 'do_modes', is_flag=True, help='Carboxylate binding modes (r1, r2, r3).')
@click.option('--dt', 'dt_fs', type=float, default=None,
              help='Time between frames (fs); default the frames\' time (info "time", ASE units).')
@click.option('--start', 'start_frame', type=int, default=0, show_default=True,
              help='First frame analysed (skip equilibration).')
@click.option('--r-max', type=float, default=8.0, show_default=True, help='RDF range (Å).')
@click.option('--dr', type=float, default=0.02, show_default=True, help='RDF bin width (Å).')
@click.option('--metal', default='Pb', show_default=True, help='Metal of the carboxylate binding modes.')
@click.option('--classes', 'class_array', default=None, metavar='ARRAY',
              help='Per-atom array of the first frame holding the RMSF classes (e.g. qd_domain); default core / '
                   'surface / ligand from the bonds, with the roles of a qd_role array when the file has one.')
@click.option('--window', type=click.Choice(['hann', 'blackman', 'none']), default='hann', show_default=True,
              help='Window applied to the velocity / dipole-derivative series.')
@click.option('-o', '--output', 'output', type=click.Path(file_okay=False, path_type=pathlib.Path), required=True,
              help='Folder for the CSV tables and PNG plots (created).')
def analyze(trajectory, rdf_pairs, do_rmsf, do_vdos, do_ir, do_modes, dt_fs, start_frame, r_max, dr, metal,
            class_array, window, output):
    """Analyse TRAJECTORY (ASE extended xyz, all frames): RDF, RMSF, VDOS, IR, binding modes.

    Writes rdf_<A>-<B>.csv, rmsf.csv, vdos.csv, ir.csv, binding_modes.csv (each with a header row) and a PNG plot of
    each into OUTPUT. Works on the file alone: no AiiDA profile is needed.
    """
    from aiida_qdtraps.analysis import binding_modes as modes_kernel
    from aiida_qdtraps.analysis import dynamics_plots, md_structure, spectra
    from aiida_qdtraps.analysis.trajectory import MdTrajectory, from_extxyz

    if not (rdf_pairs or do_rmsf or do_vdos or do_ir or do_modes):
        raise click.UsageError('choose at least one analysis: --rdf A-B, --rmsf, --vdos, --ir, --binding-modes')
    try:
        traj = from_extxyz(trajectory, dt_fs=dt_fs)
    except ValueError as exc:
        _fail(exc)
    if start_frame:
        if not 0 <= start_frame < traj.n_frames:
            raise click.BadParameter(f'{start_frame} is outside the {traj.n_frames} frames', param_hint='--start')
        traj = MdTrajectory(**{k: (v[start_frame:] if isinstance(v, np.ndarray) else v) for k, v in vars(traj).items()})
    output.mkdir(parents=True, exist_ok=True)
    click.echo(f'{trajectory.name}: {traj.n_frames} frames of {traj.n_atoms} atoms'
               + (f', {traj.timestep_fs:g} fs apart' if traj.n_frames > 1 else ''))
    written = []
    try:
        if rdf_pairs:
            result = md_structure.rdf(traj.symbols, traj.positions, rdf_pairs, r_max=r_max, dr=dr)
            rows = [('pair', 'first peak / Å', 'N(first minimum)', 'N_A', 'N_B')]
            for pair, data in result['pairs'].items():
                path = output / f'rdf_{pair}.csv'
                _write_csv(path, ['r_angstrom', 'g_r', 'n_r_per_angstrom', 'coordination'],
                           [result['r'], data['g'], data['n'], data['coordination']])
                dynamics_plots.plot_rdf(result['r'], data['g'], data['n'], pair, output / f'rdf_{pair}.png')
                written.append(path.name)
                peak, minimum = _first_shell(result['r'], data['n'])
                coordination = '-' if minimum is None else f"{data['coordination'][minimum]:.2f}"
                rows.append((pair, '-' if peak is None else f"{result['r'][peak]:.2f}", coordination,
                             data['n_a'], data['n_b']))
            click.echo(_table(rows))
        if do_rmsf:
            classes = _rmsf_classes(trajectory, traj, class_array)
            result = md_structure.rmsf(traj.positions, symbols=traj.symbols, labels=classes)
            _write_csv(output / 'rmsf.csv', ['index', 'symbol', 'class', 'rmsf_angstrom'],
                       [np.arange(traj.n_atoms), traj.symbols, classes, result['rmsf']])
            dynamics_plots.plot_rmsf(result['rmsf'], traj.symbols, output / 'rmsf.png')
            written.append('rmsf.csv')
            rows = [('group', 'atoms', 'mean RMSF / Å', 'std / Å')]
            for kind in ('per_element', 'per_label'):
                rows += [(name, v['count'], f"{v['mean']:.4f}", f"{v['std']:.4f}")
                         for name, v in result[kind].items()]
            click.echo(_table(rows))
        if do_vdos:
            velocities = traj.require('velocities', 'the vibrational density of states (--vdos)')
            result = spectra.vdos(velocities, traj.masses(), traj.timestep_fs, symbols=traj.symbols, window=window)
            columns = {'total': result['total'], **result['per_element']}
            written.append(_spectrum_files(output, 'vdos', 'VDOS', result['wavenumber'], columns, columns,
                                           'VDOS / states per cm⁻¹'))
        if do_ir:
            dipole = traj.require('dipole', 'the IR spectrum (--ir)')
            result = spectra.ir_spectrum(dipole, traj.timestep_fs, window=window)
            written.append(_spectrum_files(output, 'ir', 'IR', result['wavenumber'],
                                           {'intensity': result['intensity']},
                                           {'IR (harmonic correction)': result['intensity']},
                                           'intensity / (e·Å/fs)² per cm⁻¹'))
        if do_modes:
            result = modes_kernel.binding_modes(traj.symbols, traj.positions, metal=metal)
            n_frames, n_ligands = result['r1'].shape
            frames, ligands = np.indices((n_frames, n_ligands))
            triples = result['carboxylates'][ligands.ravel()]
            _write_csv(output / 'binding_modes.csv',
                       ['frame', 'ligand', 'carbon', 'oxygen_a', 'oxygen_b', 'r1_angstrom', 'r2_angstrom',
                        'r3_angstrom', 'primary_metal', 'mode'],
                       [frames.ravel() + start_frame, ligands.ravel(), triples[:, 0], triples[:, 1], triples[:, 2],
                        result['r1'].ravel(), result['r2'].ravel(), result['r3'].ravel(),
                        result['primary_metal'].ravel(), result['modes'].ravel()])
            modes_kernel.plot_histograms(result, output / 'binding_modes.png')
            written.append('binding_modes.csv')
            rows = [('mode', 'fraction')] + [(m, f'{v:.3f}') for m, v in result['fractions'].items()]
            click.echo(f'{n_ligands} carboxylates x {n_frames} frames')
            click.echo(_table(rows))
    except ValueError as exc:
        _fail(exc)
    click.echo(f'wrote {", ".join(written)} and their PNG plots to {output}')


def _rmsf_classes(path: pathlib.Path, traj, class_array: str | None) -> np.ndarray:
    """RMSF classes: the ``class_array`` of the first frame, else :func:`site_classes` (roles from ``qd_role``)."""
    from ase import io

    from aiida_qdtraps.analysis import md_structure

    arrays = io.read(str(path), index=0).arrays
    if class_array is not None:
        if class_array not in arrays:
            extra = sorted(set(arrays) - {'numbers', 'positions', 'momenta'})
            raise ValueError(f'--classes {class_array}: the first frame has no such per-atom array (it has {extra})')
        return np.asarray(arrays[class_array]).astype(str)
    return md_structure.site_classes(traj.symbols, traj.positions[0], roles=arrays.get('qd_role'))


def _first_shell(r, n) -> tuple[int | None, int | None]:
    """Indices of the first maximum of n(r) and of the first minimum after it (None where absent)."""
    occupied = np.flatnonzero(n > 0)
    if not occupied.size:
        return None, None
    smooth = np.convolve(n, np.ones(5) / 5, mode='same')
    start = occupied[0]
    peak = start + int(np.argmax(smooth[start:start + max(1, int(0.5 / (r[1] - r[0])))]))
    after = np.flatnonzero((smooth[peak + 1:-1] <= smooth[peak:-2]) & (smooth[peak + 1:-1] < smooth[peak + 2:]))
    return peak, (peak + 1 + int(after[0])) if after.size else None


def _spectrum_files(output: pathlib.Path, name: str, label: str, wavenumber, columns: dict, curves: dict,
                    ylabel: str) -> str:
    """Write ``<name>.csv`` (the wavenumber and ``columns``) and ``<name>.png`` (``curves``), print the five strongest
    peaks of the first column; returns the CSV's name."""
    from aiida_qdtraps.analysis import dynamics_plots, spectra

    first = next(iter(columns.values()))
    _write_csv(output / f'{name}.csv', ['wavenumber_cm-1', *columns], [wavenumber, *columns.values()])
    dynamics_plots.plot_spectrum(wavenumber, curves, output / f'{name}.png', ylabel,
                                 x_max=_upper_wavenumber(wavenumber, first))
    peaks = spectra.peak_wavenumbers(wavenumber, first, n_peaks=5)
    click.echo(f'{label} peaks / cm-1: ' + ', '.join(f'{p:.1f}' for p in np.sort(peaks)))
    return f'{name}.csv'


def _upper_wavenumber(wavenumber, spectrum) -> float:
    """A plotting range holding 99.9 % of the spectrum's area."""
    cumulative = np.cumsum(spectrum)
    index = int(np.searchsorted(cumulative, 0.999 * cumulative[-1]))
    return float(min(wavenumber[-1], 1.2 * wavenumber[min(index, len(wavenumber) - 1)] + 50.0))


def read_gap_csv(path: pathlib.Path) -> np.ndarray:
    """The first column (after the header row) of a CSV as floats; ValueError naming the first bad line."""
    values = []
    with open(path, newline='', encoding='utf-8') as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise ValueError(f'{path} is empty')
        for line, row in enumerate(reader, start=2):
            if not row or not row[0].strip():
                continue
            try:
                values.append(float(row[0]))
            except ValueError:
                raise ValueError(f'{path} line {line}: {row[0]!r} is not a number') from None
    return np.array(values)


@md.command()
@click.argument('gaps', type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path))
@click.option('--dt', 'dt_fs', type=float, required=True, help='Time between gap values (fs).')
@click.option('--max-time', 'max_time_fs', type=float, default=None,
              help='Largest lag of the autocorrelation (fs); default a quarter of the series.')
@click.option('-o', '--output', type=click.Path(dir_okay=False, path_type=pathlib.Path), default=None,
              help='CSV of the dephasing function (default: <GAPS>_dephasing.csv); a PNG is written next to it.')
def dephasing(gaps, dt_fs, max_time_fs, output):
    """Pure dephasing of a HOMO–LUMO gap series: GAPS is a CSV with a header row and the gaps (eV) in its first
    column, one every --dt fs. Prints dephasing_time_fs=<τ> (Gaussian fit of the second-order cumulant)."""
    from aiida_qdtraps.analysis import dynamics_plots, gap_dynamics

    try:
        series = read_gap_csv(gaps)
        stats = gap_dynamics.gap_statistics(series)
        result = gap_dynamics.dephasing(series, dt_fs, max_time_fs=max_time_fs)
    except ValueError as exc:
        _fail(exc)
    output = output or gaps.with_name(f'{gaps.stem}_dephasing.csv')
    _write_csv(output, ['time_fs', 'dephasing', 'g'], [result['time'], result['dephasing'], result['g']])
    dynamics_plots.plot_dephasing(result['time'], result['dephasing'], result['tau_fs'], output.with_suffix('.png'))
    click.echo(f"gap mean {stats['mean']:.4f} eV, std {stats['std']:.4f} eV over {stats['n']} values")
    click.echo(f"dephasing_time_fs={result['tau_fs']:.4f}")
    if not result['resolved']:
        click.echo(f'warning: the dephasing time is shorter than 3 time steps ({dt_fs} fs): sample the gap more '
                   'finely', err=True)
    click.echo(f'wrote {output}')


def _load_profile():
    """Load the project profile, unless a profile is loaded already (a script or test that set one up)."""
    from aiida.manage import get_manager

    if get_manager().get_profile() is not None:
        return
    from aiida_qdtraps.profile import load_project_profile, profile_exists

    if not profile_exists():
        raise click.ClickException('the project profile does not exist yet: run `qdtraps setup` (or `make demo`).')
    load_project_profile()


def _load(pk: int, node_type, hint: str):
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    try:
        node = orm.load_node(pk)
    except NotExistent:
        raise click.BadParameter(f'no node with pk {pk}', param_hint=hint) from None
    if not isinstance(node, node_type):
        raise click.BadParameter(f'node {pk} is a {type(node).__name__}, not a {node_type.__name__}', param_hint=hint)
    return node


def _mlff_builder(structure, models, code, temperature, time_ps, ensemble, timestep_fs, save_interval,
                  dipole_model=None, driver=None, freeze=None, stop_devi_f=None, parent=None, compress=False):
    from aiida import orm

    from aiida_qdtraps.calculations.mlff_md import MlffMdCalculation, check_inputs, md_parameters

    type_maps = []
    for model in models:
        type_map = model.base.attributes.get('type_map', None)
        if not type_map:
            raise click.BadParameter(f'model {model.pk} has no type_map attribute (a frozen model of '
                                     'DeepmdTrainCalculation has one)', param_hint='--model')
        type_maps.append(list(type_map))
    if any(tm != type_maps[0] for tm in type_maps):
        raise click.BadParameter(f'the models have different type maps {type_maps}: an ensemble shares one',
                                 param_hint='--model')
    type_map = type_maps[0]
    missing = sorted(set(structure.get_kind_names()) - set(type_map))
    if missing:
        raise click.BadParameter(f'the model knows {type_map}, not {missing}', param_hint='--model')
    steps = round(1000.0 * (time_ps if time_ps is not None else 10.0) / timestep_fs)
    changes = {'thermostat': ensemble, 'timestep_fs': timestep_fs, 'steps': steps, 'save_interval': save_interval}
    if temperature is not None:
        changes['temperature_K'] = temperature
    if driver is not None:
        if driver != 'mean' and not (driver.isdigit() and 1 <= int(driver) <= len(models)):
            raise click.BadParameter(f"{driver!r} is neither 'mean' nor a member number 1..{len(models)} (the "
                                     'order of --model)', param_hint='--driver')
        changes['driver'] = 'mean' if driver == 'mean' else int(driver) - 1
    if freeze:
        from aiida_qdtraps.analysis.md_structure import frozen_atoms

        atoms = structure.get_ase()
        roles = structure.base.attributes.get('qd_roles', None)
        try:
            changes['frozen_indices'] = frozen_atoms(atoms.get_chemical_symbols(), atoms.positions, freeze, roles)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint='--freeze') from None
    if stop_devi_f is not None:
        changes['stop_devi_f'] = stop_devi_f
    changes['compress'] = compress
    try:
        parameters = md_parameters(changes, len(structure.sites))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    builder = MlffMdCalculation.get_builder()
    builder.code = code
    builder.structure = structure
    builder.models = {f'model_{i}': model for i, model in enumerate(models)}
    builder.type_map = orm.List(list(type_map))
    builder.parameters = orm.Dict(parameters)
    if dipole_model is not None:
        try:
            check_inputs({'structure': structure, 'models': dict(builder.models), 'dipole_model': dipole_model})
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint='--dipole-model') from None
        builder.dipole_model = dipole_model
    if parent is not None:
        try:
            check_inputs({'structure': structure, 'models': dict(builder.models), 'parent_trajectory': parent,
                          'parameters': builder.parameters})
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint='--continue') from None
        builder.parent_trajectory = parent
    summary = (f"{ensemble} at {parameters['temperature_K']} K, {steps} steps of {timestep_fs} fs, a frame every "
               f'{save_interval}' + (f', dipoles from SinglefileData<{dipole_model.pk}>' if dipole_model else ''))
    if len(models) > 1:
        summary += (f"; {len(models)} models, driven by "
                    + ('their mean' if parameters['driver'] == 'mean' else f"model {parameters['driver'] + 1}"))
    if parameters['frozen_indices']:
        summary += f"; {len(parameters['frozen_indices'])} frozen atoms ({freeze})"
    if parameters['stop_devi_f'] is not None:
        summary += f"; stops above a force deviation of {parameters['stop_devi_f']} eV/Å"
    if parent is not None:
        summary += (f'; continues TrajectoryData<{parent.pk}> from its step {int(parent.get_stepids()[-1])} '
                    f"({parent.get_array('times')[-1] if 'times' in parent.get_arraynames() else 0:.1f} fs)")
    if compress:
        summary += '; driving model(s) compressed'
    return builder, summary


def _chain_builder(calculation, steps_per_job, job_hours):
    """The builder of an ``MlffMdChainWorkChain`` that runs the MD of ``calculation`` (a builder) as a chain of jobs."""
    from aiida import orm

    from aiida_qdtraps.workchains.mlff_md_chain import MlffMdChainWorkChain, validate_inputs

    builder = MlffMdChainWorkChain.get_builder()
    for name in ('code', 'structure', 'models', 'type_map', 'parameters', 'dipole_model', 'parent_trajectory'):
        if name in calculation:
            builder.md[name] = calculation[name]
    summary = '; as a chain of jobs'
    if steps_per_job is not None:
        builder.steps_per_job = orm.Int(steps_per_job)
        summary += f' of at most {steps_per_job} steps'
    if job_hours is not None:
        if not job_hours > 0:
            raise click.BadParameter(f'{job_hours} h: a wall time must be > 0', param_hint='--job-hours')
        builder.md.metadata.options.max_wallclock_seconds = int(round(3600 * job_hours))
        summary += f', {job_hours} h each'
    max_jobs = MlffMdChainWorkChain.spec().inputs['max_jobs'].default()
    error = validate_inputs({'md': dict(builder.md), 'max_jobs': max_jobs,
                             **({'steps_per_job': builder.steps_per_job} if steps_per_job is not None else {})}, None)
    if error:
        raise click.BadParameter(error, param_hint='--steps-per-job')
    return builder, summary


@md.command('run')
@click.argument('structure_pk', metavar='STRUCTURE', type=int)
@click.option('--engine', type=click.Choice(['cp2k', 'mlff']), default='cp2k', show_default=True,
              help='cp2k: Born-Oppenheimer MD (QdMdWorkChain: heat-up, then NVE); mlff: a DeePMD model '
                   '(MlffMdCalculation: Langevin BAOAB or NVE).')
@click.option('--protocol', type=click.Choice(['fast', 'moderate', 'precise', 'xtb']), default=None,
              help='cp2k (default moderate): the DFT of the relax protocol of that name and the dynamics of md.yaml; '
                   'xtb: GFN1-xTB forces for screening dynamics (docs/md.md). The MLFF has no protocol.')
@click.option('--temperature', type=float, default=None, help="Temperature (K); default the protocol's (300 K).")
@click.option('--time', 'time_ps', type=float, default=None,
              help="Length (ps) of the NVE run (cp2k) or of the whole run (mlff); default the protocol's / 10 ps.")
@click.option('--model', 'model_pks', type=int, multiple=True,
              help='mlff: pk of a frozen DeePMD model (a SinglefileData with a type_map attribute); repeat it for an '
                   'ensemble: every stored frame gets the ensemble force deviation (max_devi_f).')
@click.option('--driver', default=None,
              help="mlff: the member that drives the MD (1, 2, ... in --model order; default 1), or 'mean': the "
                   'committee mean of all models (one model evaluation per member and step).')
@click.option('--freeze', default=None,
              help="mlff: atoms held fixed: elements, comma-separated (e.g. Cd,Se: the whole nanocrystal, Sowa et "
                   "al.'s FF1), and/or `core`: the cations and anions with a full shell of counter-ions (the "
                   "interior held, the surface free: their FF2).")
@click.option('--stop-devi-f', type=float, default=None,
              help='mlff: stop at the first stored frame whose ensemble force deviation exceeds this (eV/Å).')
@click.option('--dipole-model', 'dipole_pk', type=int, default=None,
              help='mlff: pk of a frozen DeePMD dipole model (DeepmdTrainCalculation kind dipole): every stored frame '
                   'gets its dipole, for `compute_ir` / `qdtraps md analyze --ir`.')
@click.option('--continue', 'parent_pk', type=int, default=None,
              help='mlff: pk of the TrajectoryData of an earlier MLFF MD of the same QD: start from its last frame '
                   '(positions and velocities) and count steps on; `qdtraps md join` makes one trajectory of the '
                   'pieces.')
@click.option('--compress/--no-compress', default=False, show_default=True,
              help='mlff: compress the model(s) evaluated at every step in the job (dp --pt compress; checked '
                   'against the original): about a third less time per step.')
@click.option('--steps-per-job', type=int, default=None,
              help='mlff: run the MD as a chain of jobs of at most this many steps (MlffMdChainWorkChain), joined '
                   'into one trajectory.')
@click.option('--job-hours', type=float, default=None,
              help="mlff: each job's wall time (h): its MD stops in time at a saved frame and the next job of the "
                   'chain (MlffMdChainWorkChain) continues from there.')
@click.option('--ensemble', type=click.Choice(['langevin', 'nve']), default='langevin', show_default=True,
              help='mlff: Langevin BAOAB at the temperature, or NVE from velocities drawn at it.')
@click.option('--timestep', 'timestep_fs', type=float, default=1.0, show_default=True, help='mlff: time step (fs).')
@click.option('--save-every', 'save_interval', type=int, default=10, show_default=True,
              help='mlff: store a frame every this many steps.')
@click.option('--charge', type=int, default=0, show_default=True, help='cp2k: net charge of the QD (e).')
@click.option('--multiplicity', type=int, default=1, show_default=True, help='cp2k: spin multiplicity.')
@click.option('--code', 'code_label', default=None,
              help='Code: default cp2k@localhost (cp2k) or dp-python@localhost (mlff).')
@click.option('--daemon/--no-daemon', default=False, show_default=True,
              help='Submit to the daemon and return at once, instead of running here until the MD ends.')
def run(structure_pk, engine, protocol, temperature, time_ps, model_pks, driver, freeze, stop_devi_f, dipole_pk,
        parent_pk, compress, steps_per_job, job_hours, ensemble, timestep_fs, save_interval, charge, multiplicity,
        code_label, daemon):
    """Run MD of the QD stored as STRUCTURE (pk of a StructureData) with provenance; prints the pks of the process and,
    when it ran here, of its trajectory (the layout of docs/md.md, which `qdtraps.compute_*` analyse)."""
    _load_profile()
    from aiida import orm
    from aiida.common.exceptions import NotExistent
    from aiida.engine import run_get_node, submit

    structure = _load(structure_pk, orm.StructureData, 'STRUCTURE')
    if engine == 'mlff' and protocol is not None:
        raise click.BadParameter('--protocol picks the DFT of --engine cp2k; an MLFF MD has none (its model is its '
                                 'level of theory)', param_hint='--protocol')
    protocol = protocol or 'moderate'
    if engine == 'mlff' and not model_pks:
        raise click.BadParameter('--engine mlff needs --model PK (a frozen DeePMD model)', param_hint='--model')
    if engine == 'cp2k' and dipole_pk is not None:
        raise click.BadParameter('--dipole-model is for --engine mlff; CP2K MD prints its own dipoles',
                                 param_hint='--dipole-model')
    mlff_only = [name for name, value in (('--driver', driver), ('--freeze', freeze), ('--stop-devi-f', stop_devi_f),
                                          ('--continue', parent_pk), ('--compress', True if compress else None),
                                          ('--steps-per-job', steps_per_job), ('--job-hours', job_hours))
                 if value is not None]
    if engine == 'cp2k' and mlff_only:
        raise click.BadParameter(f"{', '.join(mlff_only)}: options of --engine mlff")
    code_label = code_label or {'cp2k': 'cp2k@localhost', 'mlff': 'dp-python@localhost'}[engine]
    try:
        code = orm.load_code(code_label)
    except NotExistent:
        raise click.BadParameter(f'no code {code_label!r}; `qdtraps status` lists the codes', param_hint='--code') \
            from None
    if engine == 'mlff':
        models = [_load(pk, orm.SinglefileData, '--model') for pk in model_pks]
        dipole = _load(dipole_pk, orm.SinglefileData, '--dipole-model') if dipole_pk is not None else None
        parent = _load(parent_pk, orm.TrajectoryData, '--continue') if parent_pk is not None else None
        builder, summary = _mlff_builder(structure, models, code, temperature, time_ps, ensemble, timestep_fs,
                                         save_interval, dipole, driver, freeze, stop_devi_f, parent, compress)
        label = 'MlffMdCalculation'
        if steps_per_job is not None or job_hours is not None:
            builder, chain_summary = _chain_builder(builder, steps_per_job, job_hours)
            summary += chain_summary
            label = 'MlffMdChainWorkChain'
    else:
        from aiida_qdtraps.workchains.md import QdMdWorkChain

        md_overrides = {}
        if temperature is not None:
            md_overrides['temperature'] = temperature
        if time_ps is not None:
            md_overrides['nve_fs'] = 1000.0 * time_ps
        try:
            builder = QdMdWorkChain.get_builder_from_protocol(code, structure, protocol=protocol,
                                                              overrides={'md': md_overrides}, charge=charge,
                                                              multiplicity=multiplicity)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
        settings = builder.md.get_dict()
        summary = (f"protocol {protocol}, heat-up to {settings['temperature']} K in {settings['heatup_fs']} fs, "
                   f"{settings['nve_fs']} fs NVE, time step {settings['timestep_fs']} fs")
        label = 'QdMdWorkChain'
    click.echo(f'{label} on {structure.get_formula()} (StructureData<{structure.pk}>): {summary}')
    if daemon:
        node = submit(builder)
        click.echo(f'submitted {label}<{node.pk}>; follow it with `verdi process report {node.pk}`')
        return
    results, node = run_get_node(builder)
    if not node.is_finished_ok:
        raise click.ClickException(f'{label}<{node.pk}> failed: exit status {node.exit_status}: {node.exit_message}; '
                                   f'see `verdi process report {node.pk}`')
    trajectory = results['trajectory']
    click.echo(f'{label}<{node.pk}>: TrajectoryData<{trajectory.pk}> ({trajectory.numsteps} frames, '
               f"{trajectory.get_array('times')[-1]:.1f} fs)")
    if 'max_devi_f' in trajectory.get_arraynames():
        deviation = trajectory.get_array('max_devi_f')
        click.echo(f'ensemble force deviation: median {np.median(deviation):.3f}, largest {deviation.max():.3f} eV/Å')
    drift = results['output_parameters'].get('nve_drift_mev_per_atom_ps') if 'output_parameters' in results else None
    if drift is not None:
        click.echo(f'NVE: conserved-energy drift {drift:+.3f} meV/atom/ps')
    stopped = results['output_parameters'].get('stopped_at_step') if 'output_parameters' in results else None
    if stopped is not None:
        raise click.ClickException(
            f"{label}<{node.pk}> stopped at step {stopped}: ensemble force deviation "
            f"{results['output_parameters']['stop_max_devi_f']:.2f} eV/Å > --stop-devi-f; the MD left the region "
            'the models were trained on')
    if 'md_summary' in results:
        summary = results['md_summary'].get_dict()
        click.echo(f"md_summary Dict<{results['md_summary'].pk}>")
        if summary.get('nve_drift_mev_per_atom_ps') is not None:
            click.echo(f"NVE: mean temperature {summary['nve_mean_temperature_k']:.1f} K, conserved-energy drift "
                       f"{summary['nve_drift_mev_per_atom_ps']:+.3f} meV/atom/ps")


@md.command('join')
@click.argument('trajectory_pks', metavar='TRAJECTORY...', type=int, nargs=-1, required=True)
def join(trajectory_pks):
    """One trajectory of the pieces of a continued MLFF MD (`qdtraps md run --continue`), given in order: prints the
    pk of the joined TrajectoryData (made by the calcfunction join_trajectories, so it traces to every piece)."""
    _load_profile()
    from aiida import orm

    from aiida_qdtraps.workchains.dynamics import join_trajectories

    pieces = {f'piece_{k + 1}': _load(pk, orm.TrajectoryData, 'TRAJECTORY') for k, pk in enumerate(trajectory_pks)}
    results, node = join_trajectories.run_get_node(**pieces)
    if not node.is_finished_ok:
        raise click.ClickException(f'join_trajectories<{node.pk}> refused the pieces: {node.exit_message}')
    joined = results['trajectory']
    times = joined.get_array('times') if 'times' in joined.get_arraynames() else None
    click.echo(f'TrajectoryData<{joined.pk}>: {joined.numsteps} frames from {len(pieces)} pieces'
               + (f', {times[0]:.1f}-{times[-1]:.1f} fs' if times is not None else '')
               + f' (join_trajectories<{node.pk}>)')
