"""``DeepmdTrainCalculation`` (``qdtraps.deepmd.train``): train, freeze and validate one DeePMD model.

The code is a Python interpreter with deepmd-kit (``dp-python@localhost``: the project venv). One job runs
:mod:`aiida_qdtraps.calculations.deepmd_train_script` in its folder, which does in one process (one torch import)::

    dp --pt train input.json            # training on dataset/training/*, checkpoint + lcurve.out
    #   with ``init_model``: dp --pt train input.json --init-frz-model init.pth [--use-pretrain-script]
    dp --pt freeze -o model.pth         # frozen TorchScript model (never a pickle)
    dp --pt test -m model.pth -s dataset/validation -n 100000 -d validation   # held-out parity (if any)

``kind='dipole'`` trains a DeePMD dipole model instead (DIPOLE_PARAMETERS: dipole fitting network, tensor loss on the
global dipole ``dipole.npy``); ``dp test`` then writes ``validation.out`` (label and prediction, e·Å).

Warm start (``init_model``): DeePMD-kit 3.2.0's PyTorch backend has three ways to start from a previous model, and
only one takes the frozen ``.pth`` this CalcJob outputs. ``--init-model`` and ``--finetune`` load a training
*checkpoint* (``model.ckpt.pt``; ``torch.load(..., weights_only=True)`` refuses a TorchScript archive), while
``--init-frz-model`` loads the frozen model's ``state_dict`` into the new model (``deepmd/pt/train/training.py``),
keeping its descriptor statistics and energy bias (no data statistics are recomputed). ``--use-pretrain-script``
takes the model section (including ``sel``) from the frozen model: without it, ``sel: auto`` recomputed on a grown
dataset can change the descriptor's shape and the load fails with a size mismatch (seen here with ``sel`` [4, 12] vs
[8, 16]). The training section (steps, learning rate, loss prefactors, seed) still comes from ``parameters``. With
an explicit ``sel`` (integers) the flag is left out (:func:`uses_pretrain_script`): the input's model section is then
the frozen one, and DeePMD-kit 3.2.0 cannot re-read the pretrain script of ``se_atten_v2``.

DP/ZBL (``parameters['model']['zbl'] = {'sw_rmin': Å, 'sw_rmax': Å}``): the job writes the ZBL pair table of the type
map up to ``rcut`` (:func:`aiida_qdtraps.analysis.zbl.zbl_table`) and trains DeePMD-kit's DP/ZBL model on it: ZBL
repulsion where an atom's nearest neighbour is closer than ``sw_rmin``, the network above ``sw_rmax``, switched in
between. DeePMD-kit 3.2.0 combines them only with a type-embedding descriptor (``se_atten_v2``; ``attn_layer: 0``
costs about what ``se_e2_a`` does).

Thread counts are the code's business (``prepend_text``): on one core use ``OMP_NUM_THREADS=1
DP_INTRA_OP_PARALLELISM_THREADS=1 DP_INTER_OP_PARALLELISM_THREADS=1 NUM_WORKERS=0``; on HPC raise them.
"""

from __future__ import annotations

import copy
import pathlib

import numpy as np
from aiida import orm
from aiida.common import CalcInfo
from aiida.common.folders import Folder
from aiida.engine import CalcJob
from aiida_quantumespresso.workflows.protocols.utils import recursive_merge

from ..analysis.zbl import zbl_table
from .script_job import INPUT_FILE, define_script_job, script_calcinfo, write_script_job

#: DeePMD-kit input for a small QD model (Sowa et al. used se_e2_a-type descriptors with a ~6-8 Å cut-off). Units: Å,
#: eV; ``sel`` = maximum neighbours per type within ``rcut`` (``auto`` lets dp count them on the training data).
DEFAULT_PARAMETERS = {
    'model': {
        'type_map': [],  # filled from the dataset
        'descriptor': {'type': 'se_e2_a', 'sel': 'auto', 'rcut_smth': 0.5, 'rcut': 6.0, 'neuron': [16, 32, 64],
                       'resnet_dt': False, 'axis_neuron': 8},
        'fitting_net': {'neuron': [64, 64, 64], 'resnet_dt': True},
    },
    'learning_rate': {'type': 'exp', 'decay_steps': 500, 'start_lr': 1.0e-3, 'stop_lr': 1.0e-5},
    'loss': {'type': 'ener', 'start_pref_e': 0.02, 'limit_pref_e': 1.0, 'start_pref_f': 1000.0, 'limit_pref_f': 1.0,
             'start_pref_v': 0.0, 'limit_pref_v': 0.0},
    'training': {'numb_steps': 1000, 'disp_freq': 100, 'save_freq': 1000, 'training_data': {'batch_size': 'auto'}},
}

#: DeePMD-kit input for a dipole model (``kind='dipole'``): the same descriptor, a dipole fitting network whose atomic
#: vectors (on every type) sum to the global dipole, trained on the global dipole alone (``dipole.npy``, e·Å, shape
#: (frames, 3)). The sum of local vectors is translation-invariant: a model for neutral QDs, as Sowa et al.'s.
DIPOLE_PARAMETERS = {
    'model': {
        'type_map': [],
        'descriptor': copy.deepcopy(DEFAULT_PARAMETERS['model']['descriptor']),
        'fitting_net': {'type': 'dipole', 'neuron': [64, 64, 64], 'resnet_dt': True},
    },
    'learning_rate': {'type': 'exp', 'decay_steps': 100, 'start_lr': 1.0e-2, 'stop_lr': 1.0e-4},
    'loss': {'type': 'tensor', 'pref': 1.0, 'pref_atomic': 0.0},
    'training': copy.deepcopy(DEFAULT_PARAMETERS['training']),
}
#: What the ``validation_parity`` output holds, for each kind of model.
PARITY_HELP = ('Held-out frames: `energy_per_atom_dft`/`_mlff` (eV/atom), `forces_dft`/`_mlff` (eV/Å); a dipole '
               'model: `dipole_dft`/`_mlff` (e·Å).')
#: The base input of each kind of model.
KINDS = {'energy': DEFAULT_PARAMETERS, 'dipole': DIPOLE_PARAMETERS}

SCRIPT = pathlib.Path(__file__).with_name('deepmd_train_script.py')
DATASET_DIR = 'dataset'
TRAINING_DIR = 'training'
VALIDATION_DIR = 'validation'
MODEL_FILE = 'model.pth'
INIT_MODEL_FILE = 'init.pth'
LCURVE_FILE = 'lcurve.out'
DETAIL_PREFIX = 'validation'
LOG = 'train.log'
#: the ZBL pair table a DP/ZBL model is trained with (``model.zbl``), written into the job folder
ZBL_TABLE_FILE = 'zbl_table.txt'
#: descriptors with type embedding ("mixed types"), the only ones DeePMD-kit 3.2.0 combines with ZBL
ZBL_DESCRIPTORS = ('se_atten', 'se_atten_v2', 'dpa1', 'dpa2', 'dpa3')


def dataset_systems(dataset: orm.FolderData, subset: str) -> list[str]:
    """Relative paths (inside the dataset folder) of the deepmd/npy systems of ``subset`` (``training``/``validation``).

    A system is a folder holding ``type.raw``; the dataset layout is ``<subset>/<system>/type.raw``.
    """
    names = dataset.base.repository.list_object_names(subset) if subset in dataset.base.repository.list_object_names() \
        else []
    return [f'{subset}/{name}' for name in sorted(names)
            if 'type.raw' in dataset.base.repository.list_object_names(f'{subset}/{name}')]


def validate_dataset(value, _):
    if value is not None and not dataset_systems(value, TRAINING_DIR):
        return 'the dataset has no deepmd/npy system under `training/` (folders with type.raw)'
    return None


def validate_parameters(value, _):
    if value is None:
        return None
    unknown = set(value.get_dict()) - set(DEFAULT_PARAMETERS)
    if unknown:
        return f'unknown top-level DeePMD input section(s) {sorted(unknown)}; allowed: {sorted(DEFAULT_PARAMETERS)}'
    steps = value.get_dict().get('training', {}).get('numb_steps', 1)
    if not isinstance(steps, int) or steps < 1:
        return f'training.numb_steps must be a positive integer, got {steps!r}'
    return zbl_problem(value.get_dict().get('model', {}))


def uses_pretrain_script(model: dict) -> bool:
    """Whether a warm start takes the model section from the frozen model (``--use-pretrain-script``): needed when
    ``sel`` is counted on the data (``auto``), which can change with the data. With explicit ``sel`` the input's own
    model section equals the frozen one, and DeePMD-kit 3.2.0 cannot re-read the pretrain script of ``se_atten_v2``
    (``undefined key `ntypes```), the descriptor of DP/ZBL models."""
    sel = model.get('descriptor', {}).get('sel', 'auto')
    return isinstance(sel, str)


def zbl_problem(model: dict) -> str | None:
    """What is wrong with ``model['zbl']`` (``{'sw_rmin': Å, 'sw_rmax': Å}``: a DP/ZBL model), or None."""
    if 'zbl' not in model:
        return None
    zbl = model['zbl']
    if not isinstance(zbl, dict) or set(zbl) != {'sw_rmin', 'sw_rmax'}:
        return f"model.zbl must be {{'sw_rmin': Å, 'sw_rmax': Å}}, got {zbl!r}"
    descriptor = model.get('descriptor', {}).get('type', DEFAULT_PARAMETERS['model']['descriptor']['type'])
    if descriptor not in ZBL_DESCRIPTORS:
        return (f'model.zbl needs a type-embedding descriptor {ZBL_DESCRIPTORS} (DeePMD-kit 3.2.0 builds DP/ZBL only '
                f"with those), got descriptor type {descriptor!r}")
    rmin, rmax = zbl['sw_rmin'], zbl['sw_rmax']
    rcut = model.get('descriptor', {}).get('rcut', DEFAULT_PARAMETERS['model']['descriptor']['rcut'])
    if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in (rmin, rmax)) \
            or not 0 < rmin < rmax < rcut:
        return f'model.zbl needs 0 < sw_rmin < sw_rmax < rcut ({rcut} Å), got sw_rmin={rmin!r}, sw_rmax={rmax!r}'
    return None


def dp_zbl_model(model: dict) -> np.ndarray | None:
    """Turn ``model['zbl']`` (``{'sw_rmin': Å, 'sw_rmax': Å}``), if there, into DeePMD-kit's DP/ZBL keys, in place: the
    network plus ZBL repulsion below ``sw_rmax`` (:mod:`aiida_qdtraps.analysis.zbl`), read from :data:`ZBL_TABLE_FILE`.
    Returns the pair table to write to that file (``model['type_map']`` up to the descriptor's ``rcut``), or None
    when the model has no ``zbl``."""
    zbl = model.pop('zbl', None)
    if zbl is None:
        return None
    model.update({'use_srtab': ZBL_TABLE_FILE, 'sw_rmin': float(zbl['sw_rmin']), 'sw_rmax': float(zbl['sw_rmax'])})
    return zbl_table(model['type_map'], r_max=float(model['descriptor']['rcut']))


def validate_kind(value, _):
    if value is not None and value.value not in KINDS:
        return f'kind must be one of {sorted(KINDS)}, got {value.value!r}'
    return None


def validate_init_model(value, _):
    if value is not None and not value.filename.endswith('.pth'):
        return f'init_model must be a frozen PyTorch model (.pth, `dp --pt freeze`), got file {value.filename!r}'
    return None


def validate_inputs(inputs, _):
    """The init_model's type map (recorded by the parser on models trained here) must equal ``type_map``."""
    model = inputs.get('init_model')
    if model is None or 'type_map' not in inputs:
        return None
    recorded = model.base.attributes.get('type_map', None)
    if recorded is not None and list(recorded) != list(inputs['type_map'].get_list()):
        return (f"init_model<{model.pk}> was trained with type_map {list(recorded)}, but type_map is "
                f"{inputs['type_map'].get_list()}")
    return None


class DeepmdTrainCalculation(CalcJob):
    """Train one DeePMD-kit model (PyTorch backend) on a deepmd/npy dataset, freeze it, test it on held-out frames."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('dataset', valid_type=orm.FolderData, validator=validate_dataset,
                   help='deepmd/npy systems in `training/<system>/` and (optional) `validation/<system>/`; '
                        'eV, eV/Å, Å.')
        spec.input('parameters', valid_type=orm.Dict, required=False, validator=validate_parameters,
                   help='DeePMD-kit input merged over DEFAULT_PARAMETERS; systems, seeds and file names are set here.')
        spec.input('type_map', valid_type=orm.List, help='Element order of the model (and of the dataset type maps).')
        spec.input('seed', valid_type=orm.Int, default=lambda: orm.Int(1),
                   help='Seed of the network initialisation and batch order (ensembles differ by seed).')
        spec.input('kind', valid_type=orm.Str, default=lambda: orm.Str('energy'), validator=validate_kind,
                   help='`energy` (energies and forces: the MLFF; DEFAULT_PARAMETERS) or `dipole` (the global dipole '
                        '`dipole.npy` in e·Å: a DeePMD dipole model for IR spectra; DIPOLE_PARAMETERS).')
        spec.input('init_model', valid_type=orm.SinglefileData, required=False, validator=validate_init_model,
                   help='Frozen model (.pth) of an earlier training to start from (`dp --pt train --init-frz-model`, '
                        'model section from that model); same type map.')
        spec.inputs.validator = validate_inputs
        define_script_job(spec, 'qdtraps.deepmd.train')
        spec.output('model', valid_type=orm.SinglefileData, help='Frozen model (`dp --pt freeze`, TorchScript .pth).')
        spec.output('learning_curve', valid_type=orm.ArrayData,
                    help='lcurve.out: `step`, `rmse_e_trn` (eV/atom), `rmse_f_trn` (eV/Å), `lr`, ...')
        spec.output('validation_parity', valid_type=orm.ArrayData, required=False, help=PARITY_HELP)
        spec.output('output_parameters', valid_type=orm.Dict,
                    help='Final training RMSEs and validation MAE/RMSE (eV/atom, eV/Å; dipole: e·Å), step count.')
        spec.exit_code(300, 'ERROR_MISSING_OUTPUT', message='The job did not produce {filename}: see train.log.')
        spec.exit_code(310, 'ERROR_TRAINING_DIVERGED', message='The learning curve holds NaN values.')
        spec.exit_code(320, 'ERROR_INIT_MODEL_NOT_LOADED',
                       message='dp loaded the init_model only partly (train.log: {message}): not a warm start.')

    def prepare_for_submission(self, folder: Folder) -> CalcInfo:
        dataset = self.inputs.dataset
        training = dataset_systems(dataset, TRAINING_DIR)
        validation = dataset_systems(dataset, VALIDATION_DIR)
        changes = self.inputs.parameters.get_dict() if 'parameters' in self.inputs else {}
        params = recursive_merge(copy.deepcopy(KINDS[self.inputs.kind.value]), copy.deepcopy(changes))
        params['model']['type_map'] = list(self.inputs.type_map.get_list())
        params['model']['descriptor']['seed'] = self.inputs.seed.value
        params['model']['fitting_net']['seed'] = self.inputs.seed.value
        params['training']['seed'] = self.inputs.seed.value
        params['training']['disp_file'] = LCURVE_FILE
        params['training']['training_data']['systems'] = [f'{DATASET_DIR}/{s}' for s in training]
        params['training'].pop('validation_data', None)
        table = dp_zbl_model(params['model'])
        if table is not None:
            with folder.open(ZBL_TABLE_FILE, 'w') as handle:
                np.savetxt(handle, table, fmt='%.10e')
        write_script_job(folder, SCRIPT, params)

        for name in dataset.base.repository.list_object_names():
            if name in (TRAINING_DIR, VALIDATION_DIR):
                folder.get_subfolder(f'{DATASET_DIR}/{name}', create=True)
        local_copy_list = [(dataset.uuid, name, f'{DATASET_DIR}/{name}') for name in (TRAINING_DIR, VALIDATION_DIR)
                           if name in dataset.base.repository.list_object_names()]
        if 'init_model' in self.inputs:
            model = self.inputs.init_model
            local_copy_list.append((model.uuid, model.filename, INIT_MODEL_FILE))
        arguments = [f'{DATASET_DIR}/{VALIDATION_DIR}' if validation else '-',
                     INIT_MODEL_FILE if 'init_model' in self.inputs else '-']
        if 'init_model' in self.inputs and not uses_pretrain_script(params['model']):
            arguments.append('own-model-section')
        return script_calcinfo(self.inputs.code, SCRIPT, arguments, LOG,
                               [MODEL_FILE, LCURVE_FILE, INPUT_FILE, 'out.json', LOG,
                                f'{DETAIL_PREFIX}.e_peratom.out', f'{DETAIL_PREFIX}.f.out', f'{DETAIL_PREFIX}.out'],
                               local_copy_list=local_copy_list)
