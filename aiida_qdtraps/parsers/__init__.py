"""Parsers of engine outputs: pure readers in ``cp2k_files`` and the AiiDA parsers ``qdtraps.cp2k*``."""
