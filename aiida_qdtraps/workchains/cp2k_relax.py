"""``QdCp2kRelaxWorkChain``: the CP2K engine of ``QdRelaxWorkChain`` -- PBE GEO_OPT of a non-periodic QD.

Boxes the QD (``center_in_box``), checks the CP2K kinds and the spin state, optionally pre-relaxes it with a frozen
DeePMD model (``mlff_prerelax``) and runs the GEO_OPT through ``QdCp2kBaseWorkChain`` (restarts on SCF, wall-time
and geometry failures). Protocols: ``relax.yaml``.
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import if_

from ..protocols import functional_name
from .stage import QdCp2kStageWorkChain, define_relax_outputs


class QdCp2kRelaxWorkChain(QdCp2kStageWorkChain):
    """Relax a QD with CP2K PBE (GEO_OPT) in a non-periodic box, with restarts on failure."""

    protocol_file = 'relax.yaml'

    @classmethod
    def define(cls, spec):
        super().define(spec)
        cls.expose_cp2k(spec, help='Inputs of QdCp2kBaseWorkChain (CP2K GEO_OPT).')
        spec.input('mlff_model', valid_type=orm.SinglefileData, required=False,
                   help='A frozen DeePMD model (.pth, e.g. from MlffActiveLearningWorkChain) that pre-relaxes the QD '
                        '(ASE BFGS, `mlff_prerelax` calcfunction) before the GEO_OPT.')
        spec.input_namespace('mlff_ensemble', valid_type=orm.SinglefileData, dynamic=True, required=False,
                             help='Further frozen models (e.g. the `models` output of MlffActiveLearningWorkChain): '
                                  'the pre-relaxed geometry is used only where they agree with `mlff_model` '
                                  '(force deviation at most `max_deviation`).')
        spec.input('mlff_prerelax', valid_type=orm.Dict, required=False,
                   help='Settings of the MLFF pre-relaxation: `fmax` (eV/Å), `steps`, `maxstep` (Å), `max_move` (Å), '
                        '`max_deviation` (eV/Å, with `mlff_ensemble`).')
        spec.outline(
            cls.setup,
            if_(cls.should_box)(cls.put_in_box),
            cls.validate_inputs,
            if_(cls.should_prerelax)(cls.prerelax),
            cls.run_relax,
            cls.inspect_relax,
            cls.results,
        )
        define_relax_outputs(spec)
        spec.exit_code(401, 'ERROR_RELAX_FAILED', message='The CP2K relaxation failed: {message}')
        spec.exit_code(402, 'ERROR_NO_RELAXED_STRUCTURE', message='The CP2K run finished without a structure.')

    @classmethod
    def get_builder_from_protocol(cls, code: orm.AbstractCode, structure: orm.StructureData,
                                  protocol: str | None = None, overrides: dict | None = None, charge: int = 0,
                                  multiplicity: int = 1, options: dict | None = None):
        """Builder for ``structure`` with the ``fast``/``moderate``/``precise`` protocol of ``relax.yaml``.

        :param overrides: nested dict with the input layout of ``relax.yaml`` (``base.cp2k.parameters...``,
            ``box_vacuum``, ``basis_set``, ...), merged last.
        :param options: CalcJob options merged into ``base.cp2k.metadata.options`` (e.g. resources).
        """
        builder, _ = cls._builder_from_protocol(code, structure, protocol, overrides, charge, multiplicity, options)
        return builder

    def should_prerelax(self):
        return 'mlff_model' in self.inputs or bool(self.inputs.get('mlff_ensemble'))

    def prerelax(self):
        """Pre-relax ``ctx.structure`` with the DeePMD model; the GEO_OPT starts from the result."""
        from .mlff_prerelax import mlff_prerelax, prerelax_settings

        parameters = self.inputs.mlff_prerelax if 'mlff_prerelax' in self.inputs else orm.Dict({})
        try:
            prerelax_settings(parameters.get_dict())
            if 'mlff_model' not in self.inputs:
                raise ValueError(f"mlff_ensemble ({', '.join(self.inputs.mlff_ensemble)}) needs mlff_model, the "
                                 'model that drives the pre-relaxation')
        except ValueError as exception:
            return self.exit_codes.ERROR_RELAX_FAILED.format(message=str(exception))
        result = mlff_prerelax(self.ctx.structure, self.inputs.mlff_model, parameters,
                               **dict(self.inputs.get('mlff_ensemble', {})))
        summary = result['output_parameters']
        self.ctx.structure = result['structure']  # the input geometry if the model relaxation was not accepted
        start = 'the model-relaxed geometry' if summary['accepted'] else 'the input geometry'
        self.report(f"MLFF pre-relaxation: {summary['reason']}; the GEO_OPT starts from {start}")
        return None

    def run_relax(self):
        level = functional_name(self.inputs[self._namespace].cp2k.parameters.get_dict())
        return self.submit_cp2k('relax', f'CP2K {level} GEO_OPT')

    def inspect_relax(self):
        message = self.failed_child_message()
        if message:
            return self.exit_codes.ERROR_RELAX_FAILED.format(message=message)
        if 'output_structure' not in self.ctx.workchain.outputs:
            return self.exit_codes.ERROR_NO_RELAXED_STRUCTURE
        return None

    def results(self):
        outputs = self.out_relaxation(self.ctx.workchain.outputs)
        level = functional_name(self.inputs[self._namespace].cp2k.parameters.get_dict())
        self.report(f"relaxed: E({level}) = {outputs.output_parameters.get('energy')} Ha")
