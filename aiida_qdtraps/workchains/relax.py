"""``QdRelaxWorkChain``: PBE geometry optimisation of a non-periodic QD.

``engine: cp2k`` (default) runs CP2K through aiida-cp2k; ``engine: qe`` runs pw.x through aiida-quantumespresso's
``PwBaseWorkChain`` with the GTH-PBE UPF family (steps in :mod:`aiida_qdtraps.workchains.qe`), optionally followed by
pp.x for the valence density cube and projwfc.x for Löwdin charges and the PDOS.
"""

from __future__ import annotations

import pathlib

from aiida import orm
from aiida.engine import if_

from ..protocols import PROTOCOL_DIR
from .common import QdCp2kStageWorkChain
from .cp2k_base import QdCp2kBaseWorkChain
from .qe import QeRelaxStage, define_qe_inputs

ENGINES = ('cp2k', 'qe')


def validate_engine(value, _):
    if value is not None and value.value not in ENGINES:
        return f'engine {value.value!r} is not available; choose one of {ENGINES}'
    return None


def validate_engine_inputs(inputs, _):
    """The namespace of the chosen engine must be given: ``base`` for cp2k, ``qe`` for qe."""
    engine = inputs['engine'].value if 'engine' in inputs else 'cp2k'
    namespace = {'cp2k': 'base', 'qe': 'qe'}.get(engine)
    if namespace is not None and namespace not in inputs:
        return f'engine {engine!r} needs the `{namespace}` inputs (use get_builder_from_protocol)'
    return None


class QdRelaxWorkChain(QeRelaxStage, QdCp2kStageWorkChain):
    """Relax a QD with PBE in a non-periodic box: CP2K GEO_OPT (default) or pw.x relax, with restarts on failure."""

    _namespace = 'base'

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('engine', valid_type=orm.Str, default=lambda: orm.Str('cp2k'), validator=validate_engine,
                   help='Electronic-structure engine: `cp2k` (inputs in `base`) or `qe` (inputs in `qe`, `qe_pp`, '
                        '`qe_projwfc`).')
        spec.expose_inputs(QdCp2kBaseWorkChain, namespace='base', exclude=('cp2k.structure',),
                           namespace_options={'required': False, 'populate_defaults': False})
        define_qe_inputs(spec)
        spec.input('mlff_model', valid_type=orm.SinglefileData, required=False,
                   help='CP2K engine only: a frozen DeePMD model (.pth, e.g. from MlffActiveLearningWorkChain) that '
                        'pre-relaxes the QD (ASE BFGS, `mlff_prerelax` calcfunction) before the GEO_OPT.')
        spec.input('mlff_prerelax', valid_type=orm.Dict, required=False,
                   help='Settings of the MLFF pre-relaxation: `fmax` (eV/Å), `steps`, `maxstep` (Å), `max_move` (Å).')
        spec.inputs.validator = validate_engine_inputs
        spec.outline(
            cls.setup,
            if_(cls.should_box)(cls.put_in_box),
            if_(cls.is_qe)(
                cls.validate_qe_inputs,
                cls.run_qe_relax,
                cls.inspect_qe_relax,
                if_(cls.should_run_density)(cls.run_qe_density, cls.inspect_qe_density),
                if_(cls.should_run_projwfc)(cls.run_qe_projwfc, cls.inspect_qe_projwfc),
                cls.qe_results,
            ).else_(
                cls.validate_inputs,
                if_(cls.should_prerelax)(cls.prerelax),
                cls.run_relax,
                cls.inspect_relax,
                cls.results,
            ),
        )
        spec.output('relaxed_structure', valid_type=orm.StructureData, help='The relaxed QD.')
        spec.output('output_parameters', valid_type=orm.Dict, help='Parsed output of the last CP2K/pw.x calculation.')
        spec.output('remote_folder', valid_type=orm.RemoteData, help='Folder of the last calculation (wavefunction).')
        spec.output('output_trajectory', valid_type=orm.TrajectoryData, required=False)
        spec.exit_code(401, 'ERROR_RELAX_FAILED', message='The CP2K relaxation failed: {message}')
        spec.exit_code(402, 'ERROR_NO_RELAXED_STRUCTURE', message='The CP2K run finished without a structure.')

    @classmethod
    def get_protocol_filepath(cls) -> pathlib.Path:
        return PROTOCOL_DIR / 'relax.yaml'

    @classmethod
    def get_builder_from_protocol(cls, code: orm.Code, structure: orm.StructureData, protocol: str | None = None,
                                  overrides: dict | None = None, charge: int = 0, multiplicity: int = 1,
                                  options: dict | None = None, pp_code: orm.Code | None = None,
                                  projwfc_code: orm.Code | None = None):
        """Builder for ``structure`` with the ``fast``/``moderate``/``precise`` protocol.

        The engine follows ``code``: a ``quantumespresso.pw`` code selects ``engine: qe`` (protocols of
        ``qe_relax.yaml``), anything else CP2K (``relax.yaml``).

        :param overrides: nested dict with the input layout of the engine's protocol file, merged last.
        :param options: CalcJob options merged into ``base.cp2k.metadata.options`` (e.g. resources), or into the pw.x
            and pp.x options for QE.
        :param pp_code: QE only: a ``quantumespresso.pp`` code; if given, the valence density cube is made too.
        :param projwfc_code: QE only: a ``quantumespresso.projwfc`` code; if given, projwfc.x runs on the relaxed QD
            (Löwdin charges, HOMO/LUMO, PDOS figure).
        """
        if code.default_calc_job_plugin == 'quantumespresso.pw':
            return cls._qe_builder_from_protocol(code, structure, protocol, overrides, charge, multiplicity, options,
                                                 pp_code, projwfc_code)
        builder, _, _ = cls._builder_from_protocol(code, structure, protocol, overrides, charge, multiplicity,
                                                   options)
        return builder

    def should_prerelax(self):
        return 'mlff_model' in self.inputs

    def prerelax(self):
        """Pre-relax ``ctx.structure`` with the DeePMD model; the GEO_OPT starts from the result."""
        from .mlff_prerelax import mlff_prerelax, prerelax_settings

        parameters = self.inputs.mlff_prerelax if 'mlff_prerelax' in self.inputs else orm.Dict({})
        try:
            prerelax_settings(parameters.get_dict())
        except ValueError as exception:
            return self.exit_codes.ERROR_RELAX_FAILED.format(message=str(exception))
        result = mlff_prerelax(self.ctx.structure, self.inputs.mlff_model, parameters)
        summary = result['output_parameters']
        self.ctx.structure = result['structure']  # the input geometry if the model relaxation was not accepted
        start = 'the model-relaxed geometry' if summary['accepted'] else 'the input geometry'
        self.report(f"MLFF pre-relaxation: {summary['reason']}; the GEO_OPT starts from {start}")
        return None

    def run_relax(self):
        return self.submit_cp2k('relax', 'CP2K PBE GEO_OPT')

    def inspect_relax(self):
        message = self.failed_child_message()
        if message:
            return self.exit_codes.ERROR_RELAX_FAILED.format(message=message)
        if 'output_structure' not in self.ctx.workchain.outputs:
            return self.exit_codes.ERROR_NO_RELAXED_STRUCTURE
        return None

    def results(self):
        outputs = self.out_relaxation(self.ctx.workchain.outputs)
        self.report(f"relaxed: E(PBE) = {outputs.output_parameters.get('energy')} Ha")
