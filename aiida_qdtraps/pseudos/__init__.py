"""Pseudopotentials for the plane-wave engine: CP2K's GTH potentials as norm-conserving UPF files (no aiida import)."""

from .gth import (
    GthPotential,
    find_gth_potentials_file,
    gth_to_abinit_hgh,
    local_potential,
    parse_gth_potential,
    projector,
    radial_grid,
)
from .upf import gth_to_upf, upf_filename, write_upf_family

__all__ = (
    'GthPotential',
    'find_gth_potentials_file',
    'gth_to_abinit_hgh',
    'gth_to_upf',
    'local_potential',
    'parse_gth_potential',
    'projector',
    'radial_grid',
    'upf_filename',
    'write_upf_family',
)
