"""Science kernels on numpy arrays / ``ase.Atoms`` (trap labeling, charge flow, features). No AiiDA imports.

The pure readers of CP2K files live in :mod:`aiida_qdtraps.parsers.cp2k_files`.
"""
