"""Science kernels on numpy arrays / ``ase.Atoms`` (trap labeling, charge flow, features). No AiiDA imports.

Filled by the trap-labeling, Bader charge-flow and classifier issues; the foundation's pure readers of CP2K
files live in :mod:`aiida_qdtraps.parsers.cp2k_files`.
"""
