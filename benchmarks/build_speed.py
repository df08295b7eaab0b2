"""Builder speed: a 5 nm QD carved, passivated to an exact charge and boxed, against the plain carve alone.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/build_speed.py``. Prints the best of ``--repeat`` wall times
(s) of each step and the ratio to the baseline measured in the same run: the bare carve of the same core (KD-tree
pruning included). The goal: a 5 nm QD (several thousand atoms) builds and passivates in < 5 s.
"""

from __future__ import annotations

import argparse
import time

from aiida_qdtraps.builder import qd, shapes, vacancies


def best_of(repeat: int, function, *args, **kwargs):
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function(*args, **kwargs)
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--diameter', type=float, default=51.0, help='core diameter (Å); 51 Å: In1395P1390')
    parser.add_argument('--repeat', type=int, default=3)
    args = parser.parse_args()
    d = args.diameter
    cases = [
        ('carve InP sphere (baseline)', shapes.carve_core, ('InP', d), {'shape': 'sphere', 'center': 'cation'}),
        ('build InP sphere + Cl', qd.build_qd, ('InP', d), {'ligand': 'Cl', 'center': 'cation'}),
        ('build InP sphere + acetate', qd.build_qd, ('InP', d), {'ligand': 'OAc', 'center': 'cation'}),
        ('build CdSe cuboctahedron + Cl', qd.build_qd, ('CdSe', d + 1), {'ligand': 'Cl', 'center': 'cation',
                                                                          'shape': 'cuboctahedron'}),
        ('build InAs@CdSe 3 ML alloyed', qd.build_qd, ('InAs', 30.0),
         {'ligand': 'Cl', 'center': 'cation', 'shell': 'CdSe', 'monolayers': 3, 'interlayer': 'alloyed'}),
        ('build CsPbBr3 cube (CsBr)', qd.build_qd, ('CsPbBr3', 50.0), {'shape': 'cube'}),
    ]
    baseline = None
    print(f'{"step":<34} {"atoms":>6} {"time/s":>8} {"ratio":>7}')
    for name, function, positional, keywords in cases:
        seconds, atoms = best_of(args.repeat, function, *positional, **keywords)
        baseline = baseline or seconds
        print(f'{name:<34} {len(atoms):>6} {seconds:>8.3f} {seconds / baseline:>7.1f}')
    built = qd.build_qd('InP', d, ligand='Cl', center='cation')
    seconds, sites = best_of(args.repeat, vacancies.distinct_vacancies, built, 'cation')
    print(f'{"distinct cation vacancies (" + str(len(sites)) + ")":<34} {len(built):>6} {seconds:>8.3f} '
          f'{seconds / baseline:>7.1f}')


if __name__ == '__main__':
    main()
