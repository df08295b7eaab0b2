"""AiiDA overhead of the demo pipeline: wall time of the pipeline vs. the same CP2K inputs run bare.

Runs the demo pipeline (fast protocol, caching off) in the project profile, then re-runs each of its CP2K
calculations with ``cp2k.psmp`` directly, from the very input files AiiDA wrote (the PBE0 run restarting from
the bare relax's wavefunction, as in the pipeline). Prints both times and their ratio (goal ≤ 1.10).

    make bench            # or: .venv/bin/python benchmarks/overhead.py [--protocol fast]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import subprocess
import tempfile
import time


def run_bare(calcs, workdir: pathlib.Path) -> float:
    """Run each calculation's submitted input with cp2k.psmp in ``workdir``; returns total wall seconds."""
    executable = shutil.which('cp2k.psmp') or shutil.which('cp2k')
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', '1'))
    previous = None
    total = 0.0
    for index, calc in enumerate(calcs):
        source = pathlib.Path(calc.outputs.remote_folder.get_remote_path())
        target = workdir / f'{index:02d}_{calc.pk}'
        target.mkdir()
        for name in ('aiida.inp', 'aiida.coords.xyz'):
            shutil.copy(source / name, target / name)
        if 'parent_calc_folder' in calc.inputs:
            if previous is None:
                raise RuntimeError(f'CalcJob<{calc.pk}> restarts from a calculation that was not re-run')
            (target / 'parent_calc').symlink_to(previous)
        start = time.perf_counter()
        with open(target / 'aiida.out', 'w') as out:
            subprocess.run([executable, '-i', 'aiida.inp'], cwd=target, stdout=out, stderr=subprocess.STDOUT,
                           env=env, check=True)
        elapsed = time.perf_counter() - start
        total += elapsed
        print(f'  bare CP2K for CalcJob<{calc.pk}> ({calc.inputs.parameters["GLOBAL"]["RUN_TYPE"]}): {elapsed:.1f} s')
        previous = target
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--protocol', default='fast')
    args = parser.parse_args()

    from aiida_qdtraps.profile import load_project_profile

    load_project_profile()
    from aiida import orm
    from aiida.engine import run_get_node
    from aiida.manage.caching import disable_caching

    from aiida_qdtraps.demo import DEMO_RECIPE
    from aiida_qdtraps.workchains.build import build_qd_structure
    from aiida_qdtraps.workchains.pipeline import QdTrapsPipelineWorkChain

    code = orm.load_code('cp2k@localhost')
    with disable_caching():
        structure = build_qd_structure(orm.Dict(DEMO_RECIPE))
        builder = QdTrapsPipelineWorkChain.get_builder_from_protocol(code, structure, protocol=args.protocol)
        start = time.perf_counter()
        _, node = run_get_node(builder)
        aiida_time = time.perf_counter() - start
    if not node.is_finished_ok:
        raise SystemExit(f'pipeline <{node.pk}> failed: {node.exit_message}')
    calcs = sorted((n for n in node.called_descendants if isinstance(n, orm.CalcJobNode)), key=lambda n: n.ctime)
    print(f'AiiDA pipeline <{node.pk}>: {aiida_time:.1f} s for {len(calcs)} CP2K calculations')
    with tempfile.TemporaryDirectory(prefix='qdtraps-bench-') as tmp:
        bare_time = run_bare(calcs, pathlib.Path(tmp))
    print(f'bare CP2K, same inputs: {bare_time:.1f} s')
    print(f'overhead ratio (pipeline / bare): {aiida_time / bare_time:.3f}   (goal <= 1.10)')


if __name__ == '__main__':
    main()
