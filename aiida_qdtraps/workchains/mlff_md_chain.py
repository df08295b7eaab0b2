"""``MlffMdChainWorkChain`` (``qdtraps.mlff_md.chain``): a long MLFF MD as a chain of jobs, joined into one trajectory.

Each job is an :class:`~aiida_qdtraps.calculations.mlff_md.MlffMdCalculation` that continues the one before it
(``parent_trajectory``: the last saved frame, positions and velocities, and its step number). A job ends early when it
reaches its wall time (``metadata.options.max_wallclock_seconds``, or ``walltime_s``: the MD stops at its next saved
frame and the job exits with ``ERROR_MD_INCOMPLETE``) or when it is killed (the parser then reads the checkpoint chunks
the job wrote every ``checkpoint_interval`` steps); either way its trajectory holds the frames it saved, and the next
job starts from the last of them, so nothing before that frame is recomputed. ``steps_per_job`` splits the MD into
jobs of at most that many steps on purpose (a queue's limit). The pieces are joined by
:func:`~aiida_qdtraps.workchains.dynamics.join_trajectories` into ``trajectory``, in the trajectory layout every
analysis reads.

An NVE chain is the unbroken MD (same positions and velocities at every saved frame); a Langevin chain draws its noise
from ``seed`` and each job's start step, so it is another, equally valid sample of the same ensemble.
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import ToContext, WorkChain, calcfunction, while_

from ..calculations.mlff_md import MlffMdCalculation, md_parameters
from ..calculations.script_job import parameters_of
from .dynamics import join_trajectories


class MlffMdChainWorkChain(WorkChain):
    """Run ``md.parameters['steps']`` MLFF MD steps as a chain of jobs and join their trajectories."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(MlffMdCalculation, namespace='md')
        spec.input('steps_per_job', valid_type=orm.Int, required=False,
                   help='At most this many MD steps per job (a multiple of save_interval); default: all that remain.')
        spec.input('max_jobs', valid_type=orm.Int, default=lambda: orm.Int(20),
                   help='Stop with ERROR_TOO_MANY_JOBS rather than start more jobs than this.')
        spec.inputs.validator = validate_inputs
        spec.outline(cls.setup, while_(cls.should_run)(cls.run_job, cls.inspect_job), cls.results)
        spec.output('trajectory', valid_type=orm.TrajectoryData,
                    help='The whole MD: the jobs\' trajectories joined (the one job\'s own when there was one).')
        spec.output('output_parameters', valid_type=orm.Dict,
                    help='Steps, jobs, the jobs that ended early and why, and the PKs of the jobs in order.')
        spec.exit_code(300, 'ERROR_JOB_FAILED', message='{job} failed with exit status {status}: {message}')
        spec.exit_code(301, 'ERROR_NO_PROGRESS', message='{job} ended early without saving a frame past step {step}.')
        spec.exit_code(302, 'ERROR_TOO_MANY_JOBS',
                       message='{jobs} jobs ran {steps} of {total} steps: raise max_jobs or the jobs\' wall time.')
        spec.exit_code(303, 'ERROR_LEFT_TRAINED_REGION',
                       message='{job} stopped at step {step}, where the ensemble disagreed (stop_devi_f); the '
                               'trajectory holds the MD up to there.')
        spec.exit_code(304, 'ERROR_JOIN_FAILED', message='join_trajectories refused the pieces: {message}')

    def setup(self):
        params = md_parameters(parameters_of(self.inputs.md))
        self.ctx.total = int(params['steps'])
        self.ctx.thermostat = params['thermostat']
        self.ctx.per_job = int(self.inputs.steps_per_job.value) if 'steps_per_job' in self.inputs else None
        parent = self.inputs.md.get('parent_trajectory')
        self.ctx.first_step = int(parent.get_stepids()[-1]) if parent is not None else 0
        self.ctx.parent = parent
        self.ctx.done = 0
        self.ctx.pieces, self.ctx.jobs = [], []
        self.ctx.stopped = None
        self.report(f"{self.ctx.total} MD steps from step {self.ctx.first_step}"
                    + (f', at most {self.ctx.per_job} per job' if self.ctx.per_job else ''))

    def should_run(self) -> bool:
        return self.ctx.done < self.ctx.total and self.ctx.stopped is None

    def run_job(self):
        if len(self.ctx.jobs) >= self.inputs.max_jobs.value:
            return self.exit_codes.ERROR_TOO_MANY_JOBS.format(jobs=len(self.ctx.jobs), steps=self.ctx.done,
                                                              total=self.ctx.total)
        inputs = self.exposed_inputs(MlffMdCalculation, 'md')
        remaining = self.ctx.total - self.ctx.done
        steps = min(remaining, self.ctx.per_job) if self.ctx.per_job else remaining
        inputs['parameters'] = orm.Dict({**parameters_of(inputs), 'steps': steps})
        if self.ctx.parent is not None:
            inputs['parent_trajectory'] = self.ctx.parent
        inputs.setdefault('metadata', {})['call_link_label'] = f'job_{len(self.ctx.jobs) + 1}'
        job = self.submit(MlffMdCalculation, **inputs)
        self.report(f'job {len(self.ctx.jobs) + 1}: {job.process_label}<{job.pk}>, steps '
                    f'{self.ctx.first_step + self.ctx.done}–{self.ctx.first_step + self.ctx.done + steps}')
        return ToContext(job=job)

    def inspect_job(self):
        job = self.ctx.job
        self.ctx.jobs.append(job.pk)
        incomplete = job.exit_status == MlffMdCalculation.exit_codes.ERROR_MD_INCOMPLETE.status
        if not (job.is_finished_ok or incomplete) or 'trajectory' not in job.outputs:
            return self.exit_codes.ERROR_JOB_FAILED.format(job=f'{job.process_label}<{job.pk}>',
                                                           status=job.exit_status, message=job.exit_message)
        trajectory = job.outputs.trajectory
        last = int(trajectory.get_stepids()[-1])
        before = self.ctx.first_step + self.ctx.done
        if last <= before:
            return self.exit_codes.ERROR_NO_PROGRESS.format(job=f'{job.process_label}<{job.pk}>', step=before)
        self.ctx.pieces.append(trajectory)
        self.ctx.parent = trajectory
        self.ctx.done = last - self.ctx.first_step
        stopped = job.outputs.output_parameters.get('stopped_at_step', None)
        if incomplete:
            self.report(f'job {len(self.ctx.jobs)} ended early at step {last} ({self.ctx.done} of {self.ctx.total} '
                        'steps): the next job continues from there')
        elif stopped is not None:
            self.ctx.stopped = (job.pk, int(stopped))
        else:
            self.report(f'job {len(self.ctx.jobs)} done at step {last} ({self.ctx.done} of {self.ctx.total} steps)')
        return None

    def results(self):
        if len(self.ctx.pieces) == 1:
            trajectory = self.ctx.pieces[0]
        else:
            pieces = {f'piece_{i + 1}': piece for i, piece in enumerate(self.ctx.pieces)}
            joined, node = join_trajectories.run_get_node(**pieces)
            if not node.is_finished_ok:
                return self.exit_codes.ERROR_JOIN_FAILED.format(message=node.exit_message)
            trajectory = joined['trajectory']
        self.out('trajectory', trajectory)
        settings = orm.Dict({'thermostat': self.ctx.thermostat, 'steps_requested': self.ctx.total,
                             'first_step': self.ctx.first_step})
        jobs = {f'job_{i + 1}': orm.load_node(pk).outputs.output_parameters for i, pk in enumerate(self.ctx.jobs)}
        summary = summarize_md_chain(trajectory=trajectory, settings=settings, **jobs)
        self.out('output_parameters', summary)
        if 'nve_drift_mev_per_atom_ps' in summary.get_dict():
            self.report(f"NVE: drift of the conserved energy {summary['nve_drift_mev_per_atom_ps']:+.3f} meV/atom/ps "
                        'over the whole chain')
        self.report(f"{self.ctx.done} steps in {len(self.ctx.jobs)} job(s) ({len(summary['incomplete_jobs'])} ended "
                    f'early), {trajectory.numsteps} frames joined')
        if self.ctx.stopped is not None:
            pk, step = self.ctx.stopped
            return self.exit_codes.ERROR_LEFT_TRAINED_REGION.format(job=f'MlffMdCalculation<{pk}>', step=step)
        return None


def validate_inputs(inputs, _):
    """Refuse, before anything runs, a ``steps_per_job`` that is not a positive multiple of ``save_interval`` (the
    jobs must end on saved frames to continue each other) or a relaxation."""
    try:
        params = md_parameters(parameters_of(inputs['md']))
    except ValueError as exception:
        return str(exception)
    if params['mode'] != 'md':
        return 'MlffMdChainWorkChain runs an MD; run a relaxation (mode relax) as one MlffMdCalculation'
    save = int(params['save_interval'])
    if params['steps'] % save:
        return f"steps {params['steps']} must be a multiple of save_interval {save}: the jobs end on saved frames"
    if 'steps_per_job' in inputs:
        per_job = inputs['steps_per_job'].value
        if per_job < save or per_job % save:
            return f'steps_per_job {per_job} must be a positive multiple of save_interval {save}'
    if inputs['max_jobs'].value < 1:
        return f"max_jobs must be >= 1, got {inputs['max_jobs'].value}"
    return None


@calcfunction
def summarize_md_chain(trajectory: orm.TrajectoryData, settings: orm.Dict, **jobs: orm.Dict) -> orm.Dict:
    """What a chain of MLFF MD jobs did, from the joined ``trajectory`` and each job's ``output_parameters``
    (``job_1``, ``job_2``, ...): steps run and requested, the jobs (PKs, in order) and those that ended early (their
    last step and why), the frames, and for NVE the drift of the conserved energy over the whole chain (meV/atom/ps).
    """
    from ..analysis.trajectory import drift

    names = sorted(jobs, key=lambda name: (len(name), name))
    steps = trajectory.get_stepids()
    summary = {'steps': int(steps[-1]) - int(settings['first_step']), 'steps_requested': settings['steps_requested'],
               'first_step': settings['first_step'], 'n_jobs': len(names), 'n_frames': int(trajectory.numsteps),
               'jobs': [jobs[name].creator.pk for name in names], 'incomplete_jobs': []}
    for name in names:
        job = jobs[name].get_dict()
        reason = 'wall time' if job.get('stopped_at_walltime') else 'killed: checkpoint chunks' \
            if job.get('from_checkpoint') else None
        if reason:
            summary['incomplete_jobs'].append({'job': jobs[name].creator.pk, 'reason': reason,
                                               'step': int(job['start_step']) + int(job['steps_run'])})
    if settings['thermostat'] == 'nve' and 'conserved_energy' in trajectory.get_arraynames() and len(steps) >= 3:
        summary['nve_drift_mev_per_atom_ps'] = drift(trajectory.get_array('times'),
                                                     trajectory.get_array('conserved_energy'),
                                                     len(trajectory.symbols))
    return orm.Dict(summary)
