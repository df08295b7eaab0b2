"""MLFF force call vs CP2K force call on the same frame, both timed in this run; prints the ratio.

Usage: ``.venv/bin/python benchmarks/mlff_force_call.py [--repeats 20]`` (after ``make setup``; project profile).

Takes the latest finished ``MlffActiveLearningWorkChain`` of the profile (runs a ``fast`` one if there is none), its
model 1 and the last training frame of its dataset. It re-runs the CP2K ENERGY_FORCE calculation that labelled that
frame (same inputs, ``get_builder_restart``) and times the DeePMD force call on the same geometry (TorchScript model,
one thread). CP2K's time is CP2K's own wall time (``walltime_s``, without the AiiDA overhead). For the MLFF, the
model load and the first call are reported apart from the median of the warm calls.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time

import numpy as np
from mlff_common import active_learning_run, load


def main(repeats: int) -> None:
    from aiida import orm
    from aiida.engine import run_get_node
    from aiida.manage.caching import disable_caching

    load()
    workchain = active_learning_run()
    dataset = workchain.outputs.dataset
    name, uuids = next((k, v) for k, v in sorted(dataset.base.attributes.get('frame_sources').items())
                       if k.startswith('training/'))
    label_calc = orm.load_node(uuids[-1])
    n_atoms = len(label_calc.inputs.structure.sites)
    print(f'frame: last of {name} ({n_atoms} atoms), labelled by Cp2kCalculation<{label_calc.pk}>')

    with disable_caching():  # a cached clone would not be timed in this run
        _, cp2k = run_get_node(label_calc.get_builder_restart())
    assert cp2k.is_finished_ok, (cp2k.exit_status, cp2k.exit_message)
    cp2k_seconds = float(cp2k.outputs.output_parameters['walltime_s'])

    from deepmd.infer import DeepPot

    model = workchain.outputs.models['model_1']
    coords = np.load(io.BytesIO(dataset.base.repository.get_object_content(f'{name}/set.000/coord.npy', mode='rb')))
    types = np.loadtxt(io.StringIO(dataset.base.repository.get_object_content(f'{name}/type.raw')), dtype=int)
    with tempfile.NamedTemporaryFile(suffix='.pth') as handle:
        handle.write(model.get_content('rb'))
        handle.flush()
        start = time.perf_counter()
        potential = DeepPot(handle.name)
        load_seconds = time.perf_counter() - start
    frame = coords[-1:].reshape(1, -1)
    start = time.perf_counter()
    potential.eval(frame, None, types)
    first_seconds = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        _, forces, _ = potential.eval(frame, None, types)
        times.append(time.perf_counter() - start)
    mlff_seconds = statistics.median(times)
    reference = np.load(io.BytesIO(dataset.base.repository.get_object_content(f'{name}/set.000/force.npy', mode='rb')))
    rmse = float(np.sqrt(np.mean((forces.reshape(-1) - reference[-1]) ** 2)))

    print(f'CP2K ENERGY_FORCE (Cp2kCalculation<{cp2k.pk}>, CP2K wall time): {cp2k_seconds:.2f} s')
    print(f'MLFF force call (median of {repeats}): {1e3 * mlff_seconds:.2f} ms '
          f'(model load {load_seconds:.2f} s, first call {1e3 * first_seconds:.1f} ms)')
    print(f'force RMSE of the MLFF vs this CP2K label: {rmse:.3f} eV/Å')
    print(f'ratio CP2K / MLFF force call: {cp2k_seconds / mlff_seconds:.0f}x')


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=20)
    main(parser.parse_args().repeats)
