"""``QdRelaxWorkChain``: PBE geometry optimisation of a non-periodic QD (CP2K through aiida-cp2k)."""

from __future__ import annotations

import pathlib

from aiida import orm
from aiida.engine import if_

from ..protocols import PROTOCOL_DIR
from .common import QdCp2kStageWorkChain
from .cp2k_base import QdCp2kBaseWorkChain

ENGINES = ('cp2k',)


def validate_engine(value, _):
    if value is not None and value.value not in ENGINES:
        return f'engine {value.value!r} is not available; choose one of {ENGINES} (Quantum ESPRESSO: issue #9)'
    return None


class QdRelaxWorkChain(QdCp2kStageWorkChain):
    """Relax a QD with CP2K PBE (GEO_OPT) in a non-periodic box, with restarts on failure."""

    _namespace = 'base'

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('engine', valid_type=orm.Str, default=lambda: orm.Str('cp2k'), validator=validate_engine,
                   help='Electronic-structure engine; only `cp2k` for now.')
        spec.expose_inputs(QdCp2kBaseWorkChain, namespace='base', exclude=('cp2k.structure',))
        spec.outline(
            cls.setup,
            if_(cls.should_box)(cls.put_in_box),
            cls.validate_inputs,
            cls.run_relax,
            cls.inspect_relax,
            cls.results,
        )
        spec.output('relaxed_structure', valid_type=orm.StructureData, help='The relaxed QD.')
        spec.output('output_parameters', valid_type=orm.Dict, help='Parsed CP2K output of the last calculation.')
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
                                  options: dict | None = None):
        """Builder for ``structure`` with the ``fast``/``moderate``/``precise`` protocol.

        :param overrides: nested dict with the input layout of this work chain, merged last.
        :param options: CalcJob options merged into ``base.cp2k.metadata.options`` (e.g. resources).
        """
        builder, _, _ = cls._builder_from_protocol(code, structure, protocol, overrides, charge, multiplicity,
                                                   options)
        return builder

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
        outputs = self.ctx.workchain.outputs
        self.out('relaxed_structure', outputs.output_structure)
        self.out('output_parameters', outputs.output_parameters)
        self.out('remote_folder', outputs.remote_folder)
        if 'output_trajectory' in outputs:
            self.out('output_trajectory', outputs.output_trajectory)
        self.report(f"relaxed: E(PBE) = {outputs.output_parameters.get('energy')} Ha")
