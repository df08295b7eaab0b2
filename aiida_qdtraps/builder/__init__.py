"""QD model builders: pure functions, ``ase.Atoms`` in and out, no AiiDA imports."""
