"""Scheduler resources that grow with the size of the QD: nodes, MPI ranks, OpenMP threads, wall time.

A pure function of the system size and the cluster's node shape; it returns the ``metadata.options`` of a CalcJob, to
be passed where the builders already take them::

    from aiida_qdtraps.resources import scale_resources, pipeline_overrides
    options = scale_resources(structure, stage='hybrid_scf', protocol='moderate', cores_per_node=128)
    builder = HybridScfWorkChain.get_builder_from_protocol(code, structure, 'moderate', options=options)

    # the pipeline: one set of options per stage (relax and hybrid SCF differ), given as overrides
    builder = QdTrapsPipelineWorkChain.get_builder_from_protocol(
        code, structure, 'moderate', overrides=pipeline_overrides(structure, 'moderate', cores_per_node=128))

Rules (all in :func:`scale_resources`; the constants are module attributes so a site can change them):

1. **Size = number of basis functions** ``N_bf`` of the protocol's basis set (DZVP-MOLOPT-SR-GTH in every shipped
   protocol; SZV-MOLOPT-SR-GTH, the earlier ``fast``, is still counted for a protocol that names it), counted from
   CP2K's ``BASIS_MOLOPT`` when it can be found, else from
   :data:`FALLBACK_FUNCTIONS`. In4PF9 has 76 (SZV) or 230 (DZVP) functions.
2. **MPI ranks** ``= ceil(N_bf / BASIS_FUNCTIONS_PER_RANK[stage])`` (at least 1): CP2K's dense linear algebra and the
   HFX integrals are distributed over ranks; fewer than ~40 (hybrid) / ~60 (PBE) functions per rank communicates more
   than it computes.
3. **OpenMP threads per rank**: :data:`THREADS_PER_RANK` (2 for the hybrid step, whose HFX integral store is
   replicated per rank and shared between the threads of a rank; 1 otherwise). Without MPI (``withmpi=False``, e.g. the
   Debian ``cp2k.psmp`` run serially) there is one rank and the threads take the cores it would have had.
4. **Nodes** ``= ceil(ranks × threads / cores_per_node)``, capped at ``max_nodes``. A job on more than one node fills
   its nodes (the scheduler charges whole nodes); a one-node job keeps its rank count so that small QDs can share a
   node on a shared partition.
5. **Wall time** ``= SAFETY × T_REF[stage] × (N_bf / N_REF)^EXPONENT[stage] / (cores × EFFICIENCY)``, clamped to
   ``[min_walltime, max_walltime]``. ``T_REF`` is measured here: the earlier GPW ``fast`` demo on In4PF9 (SZV, 76
   functions) took 569 s for the PBE geometry optimisation and 74 s for the PBE0 single point on one core. Scaled to
   DZVP (230 functions) that predicts 5,200 s for the relax; the GAPW ``fast`` relax of the same QD ran at ~93 s per
   LBFGS step and had not converged after 20 steps (1,860 s), so the estimate stays on the safe side. The exponent is
   2 for the PBE relaxation (OT and sparse matrices; grids and integrals grow ~N², the cubic terms are small below a
   few thousand atoms) and 2.5 for the PBE0 step (screened exchange ~N² at these sizes, but the virtual states need
   dense N³ diagonalisation). ``EFFICIENCY`` = 0.7 accounts for imperfect parallel scaling (1.0 on one core);
   ``SAFETY`` = 3. A clamped estimate warns, naming the estimate. The Bader job is linear in the grid (~N) and
   runs as one process with threads.

These are estimates calibrated on one small system: check the first jobs of a new size on a new cluster
(``verdi process show``, the CP2K timings at the end of ``aiida.out``) and adjust the constants or ``max_walltime``.
"""

from __future__ import annotations

import functools
import math
import pathlib
import re
import typing as t
import warnings

from .shell_safety import check_options

__all__ = ('STAGES', 'count_basis_functions', 'pipeline_overrides', 'protocol_basis_set', 'scale_resources')

#: The stages with a resource rule. ``bader`` is the aiida-shell Bader job (one process, threads only).
STAGES = ('relax', 'hybrid_scf', 'bader')

BASIS_FUNCTIONS_PER_RANK = {'relax': 60, 'hybrid_scf': 40}
THREADS_PER_RANK = {'relax': 1, 'hybrid_scf': 2, 'bader': 4}
#: Measured single-core wall time (s) of the stage for In4PF9 with ``N_REF`` basis functions (``fast`` demo, README).
T_REF = {'relax': 569.0, 'hybrid_scf': 74.0, 'bader': 60.0}
N_REF = 76
EXPONENT = {'relax': 2.0, 'hybrid_scf': 2.5, 'bader': 1.0}
EFFICIENCY = 0.7
SAFETY = 3.0

#: Spherical basis functions per atom when ``BASIS_MOLOPT`` cannot be read: (SZV, DZVP) for H, for p-block elements
#: with s/p valence, and for elements with d electrons in the valence (Zn, Ga, Cd, In: q12/q13 potentials).
FALLBACK_FUNCTIONS = {'H': (1, 5), 'sp': (4, 13), 'spd': (9, 25)}
BASIS_FILE_CANDIDATES = ('/usr/share/cp2k/BASIS_MOLOPT', '/usr/share/cp2k/data/BASIS_MOLOPT')


def protocol_basis_set(protocol: str) -> str:
    """The orbital basis set of a protocol (the ``basis_set`` key of ``relax.yaml``)."""
    import yaml

    from .protocols import PROTOCOL_DIR

    protocols = yaml.safe_load((PROTOCOL_DIR / 'relax.yaml').read_text())['protocols']
    if protocol not in protocols:
        raise ValueError(f'unknown protocol {protocol!r}; choose from {sorted(protocols)}')
    if 'basis_set' not in protocols[protocol]:
        dft = sorted(name for name, value in protocols.items() if 'basis_set' in value)
        raise ValueError(f'protocol {protocol!r} has no Gaussian basis set (GFN1-xTB brings its own): the resource '
                         f'rules size DFT jobs; choose from {dft}')
    return protocols[protocol]['basis_set']


@functools.cache
def _basis_table(path: str) -> dict[tuple[str, str], int]:
    """``(element, basis name) -> number of spherical functions`` for every basis set in a CP2K basis file."""
    lines = [line.split('#')[0].strip() for line in pathlib.Path(path).read_text().splitlines()]
    lines = [line for line in lines if line]
    table, i = {}, 0
    element_line = re.compile(r'^[A-Z][a-z]?\s+\S')
    while i < len(lines):
        words = lines[i].split()
        i += 1
        if not element_line.match(lines[i - 1]):
            continue
        element, names = words[0], words[1:]
        try:  # a block: number of sets, then per set `n lmin lmax nexp nshell(lmin..lmax)` and nexp rows
            nsets, j, count = int(lines[i]), i + 1, 0
            for _ in range(nsets):
                header = [int(x) for x in lines[j].split()]
                lmin, lmax, nexp, shells = header[1], header[2], header[3], header[4:]
                if len(shells) != lmax - lmin + 1:
                    raise ValueError(lines[j])
                count += sum(n * (2 * (lmin + k) + 1) for k, n in enumerate(shells))
                j += 1 + nexp
        except (ValueError, IndexError):
            continue  # not a basis block (a comment-like line): look at the next line
        for name in names:
            table[(element, name)] = count
        i = j
    return table


def _fallback(symbol: str, basis_set: str) -> int:
    from .protocols import element_settings

    column = 0 if basis_set.upper().startswith('SZV') else 1
    if symbol == 'H':
        return FALLBACK_FUNCTIONS['H'][column]
    valence = element_settings().get(symbol, {}).get('valence', 0)
    return FALLBACK_FUNCTIONS['spd' if valence >= 10 else 'sp'][column]


def count_basis_functions(symbols: t.Iterable[str], basis_set: str, basis_file: str | None = None) -> int:
    """Number of spherical basis functions of the atoms ``symbols`` in ``basis_set``.

    Reads ``basis_file`` (default: Debian's ``/usr/share/cp2k/BASIS_MOLOPT``) when it exists and holds the basis for
    an element; otherwise uses :data:`FALLBACK_FUNCTIONS`.
    """
    path = basis_file or next((p for p in BASIS_FILE_CANDIDATES if pathlib.Path(p).is_file()), None)
    if basis_file is not None and not pathlib.Path(basis_file).is_file():
        raise FileNotFoundError(f'basis file {basis_file!r} does not exist')
    table = _basis_table(str(path)) if path else {}
    return sum(table.get((symbol, basis_set)) or _fallback(symbol, basis_set) for symbol in symbols)


def _symbols(system) -> list[str]:
    if hasattr(system, 'get_ase'):  # StructureData
        return list(system.get_ase().get_chemical_symbols())
    if hasattr(system, 'get_chemical_symbols'):  # ase.Atoms
        return list(system.get_chemical_symbols())
    symbols = list(system)
    if not symbols or not all(isinstance(s, str) for s in symbols):
        raise TypeError(f'expected a StructureData, ase.Atoms or a list of element symbols, got {system!r}')
    return symbols


def scale_resources(system, stage: str = 'hybrid_scf', protocol: str = 'moderate', *, cores_per_node: int,
                    max_nodes: int = 16, withmpi: bool = True, min_walltime: int = 1800,
                    max_walltime: int = 86400, threads: int | None = None, n_basis: int | None = None,
                    **extra_options) -> dict:
    """``metadata.options`` for one CalcJob of ``stage`` on ``system`` (rules in the module docstring).

    :param system: StructureData, ``ase.Atoms`` or list of element symbols.
    :param stage: ``relax``, ``hybrid_scf`` or ``bader``.
    :param protocol: ``fast`` / ``moderate`` / ``precise``: picks the basis set that sets the size.
    :param cores_per_node: physical cores of one node of the partition.
    :param withmpi: ``True`` for codes launched through ``mpirun``/``srun``; ``False`` runs one rank with threads.
    :param threads: OpenMP threads per rank (default: :data:`THREADS_PER_RANK`).
    :param n_basis: number of basis functions if known (skips counting).
    :param extra_options: further options passed through unchanged (``queue_name``, ``account``, ``qos``, ...).
    :returns: ``{'resources': {...}, 'max_wallclock_seconds': ..., 'withmpi': ..., 'environment_variables':
        {'OMP_NUM_THREADS': ...}, **extra_options}``.
    """
    if stage not in STAGES:
        raise ValueError(f'unknown stage {stage!r}; choose from {list(STAGES)}')
    for name, value in (('cores_per_node', cores_per_node), ('max_nodes', max_nodes), ('min_walltime', min_walltime),
                        ('max_walltime', max_walltime)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f'{name} must be a positive integer, got {value!r}')
    if threads is not None and (not isinstance(threads, int) or not 1 <= threads <= cores_per_node):
        raise ValueError(f'threads must be an integer in [1, cores_per_node={cores_per_node}], got {threads!r}')
    if min_walltime > max_walltime:
        raise ValueError(f'min_walltime {min_walltime} s is larger than max_walltime {max_walltime} s')

    symbols = _symbols(system)
    if n_basis is None:
        n_basis = count_basis_functions(symbols, protocol_basis_set(protocol))
    if n_basis < 1:
        raise ValueError(f'n_basis must be positive, got {n_basis}')

    if stage == 'bader' or not withmpi:
        ranks = 1
        threads = threads or (THREADS_PER_RANK['bader'] if stage == 'bader' else cores_per_node)
        threads = min(threads, cores_per_node)
        nodes = 1
    else:
        threads = threads or THREADS_PER_RANK[stage]
        ranks = max(1, math.ceil(n_basis / BASIS_FUNCTIONS_PER_RANK[stage]))
        ranks_per_node = max(1, cores_per_node // threads)
        nodes = min(max_nodes, math.ceil(ranks / ranks_per_node))
        ranks = nodes * ranks_per_node if nodes > 1 else min(ranks, ranks_per_node)
    per_node = ranks // nodes
    cores = ranks * threads

    speed = cores * (EFFICIENCY if cores > 1 else 1.0)
    estimate = SAFETY * T_REF[stage] * (n_basis / N_REF) ** EXPONENT[stage] / speed
    walltime = int(min(max_walltime, max(min_walltime, math.ceil(estimate))))
    if estimate > max_walltime:
        warnings.warn(f'{stage} of {len(symbols)} atoms ({n_basis} basis functions) on {nodes} node(s) is estimated '
                      f'at {estimate / 3600:.1f} h, more than max_walltime={max_walltime} s; the job may time out '
                      '(raise max_nodes or max_walltime, or restart from the CP2K restart file)', stacklevel=2)

    options = {
        'resources': {'num_machines': nodes, 'num_mpiprocs_per_machine': per_node, 'num_cores_per_mpiproc': threads},
        'max_wallclock_seconds': walltime,
        'withmpi': bool(withmpi and stage != 'bader'),
        'environment_variables': {'OMP_NUM_THREADS': str(threads)},
    }
    options.update(extra_options)
    check_options(options, 'scale_resources options')  # queue/account names go verbatim into #SBATCH lines
    return options


def pipeline_overrides(system, protocol: str = 'moderate', *, cores_per_node: int,
                       memory_per_node_mb: int | None = None, **kwargs) -> dict:
    """``overrides`` for ``QdTrapsPipelineWorkChain.get_builder_from_protocol``: per-stage scaled options.

    With ``memory_per_node_mb``, the PBE0 step's ``HF/MEMORY/MAX_MEMORY`` (MiB per MPI rank, CP2K's in-core integral
    store) is set to 80 % of the node memory divided by the ranks on a node.
    :param kwargs: passed to :func:`scale_resources` for both CP2K stages.
    """
    relax = scale_resources(system, 'relax', protocol, cores_per_node=cores_per_node, **kwargs)
    hybrid = scale_resources(system, 'hybrid_scf', protocol, cores_per_node=cores_per_node, **kwargs)
    overrides = {'relax': {'base': {'cp2k': {'metadata': {'options': relax}}}},
                 'hybrid_scf': {'scf': {'cp2k': {'metadata': {'options': hybrid}}}}}
    if memory_per_node_mb is not None:
        if not isinstance(memory_per_node_mb, int) or memory_per_node_mb < 1:
            raise ValueError(f'memory_per_node_mb must be a positive integer, got {memory_per_node_mb!r}')
        per_rank = int(0.8 * memory_per_node_mb / hybrid['resources']['num_mpiprocs_per_machine'])
        overrides['hybrid_scf']['scf']['cp2k']['parameters'] = {
            'FORCE_EVAL': {'DFT': {'XC': {'HF': {'MEMORY': {'MAX_MEMORY': per_rank}}}}}}
    return overrides
