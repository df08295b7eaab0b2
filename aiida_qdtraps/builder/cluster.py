"""Compatibility layer of the foundation's minimal builder; the builder itself lives in the sibling modules.

Pure functions on :class:`ase.Atoms`; no AiiDA import. Units: lengths in Å, charges in e.

* :mod:`.crystal` — materials, lattice constants, formal charges, bond lengths;
* :mod:`.shapes` — cores carved by shape and size, pruning;
* :mod:`.passivation` — missing bonds, ligands, passivation to an exact charge, :func:`net_charge`;
* :mod:`.vacancies` — symmetry-distinct surface vacancies;
* :mod:`.shell` — core@shell growth, surface reconstruction, sublattice swap;
* :mod:`.roles` — per-atom roles and domains, reading external structures;
* :mod:`.qd` — the one-call :func:`build_qd` recipe, :func:`describe`, :func:`put_in_box`.
"""

from __future__ import annotations

from ase import Atoms

from .crystal import (  # noqa: F401  (re-exported)
    FORMAL_CHARGES,
    LIGAND_BOND_LENGTHS,
    MATERIALS,
    bulk_crystal,
    check_material,
    nearest_neighbour_distance,
)
from .passivation import farthest_point_order, missing_bonds, net_charge  # noqa: F401
from .passivation import passivate as _passivate
from .qd import QdReport, build_qd, describe, put_in_box  # noqa: F401
from .shapes import bond_counts, carve_core  # noqa: F401


def carve_sphere(material: str, diameter: float, center: str = 'anion', lattice_constant: float | None = None,
                 min_core_bonds: int = 2) -> Atoms:
    """Carve a spherical core of ``diameter`` (Å) from the bulk crystal (see :func:`.shapes.carve_core`)."""
    return carve_core(material, diameter, 'sphere', center, lattice_constant, min_core_bonds)


def missing_bond_sites(core: Atoms, material: str, lattice_constant: float | None = None):
    """Directions of the bulk bonds each core cation has lost: ``(atom_indices, unit_vectors)``."""
    check_material(material)
    return missing_bonds(core, 'cation', bond=nearest_neighbour_distance(material, lattice_constant))


def passivate(core: Atoms, material: str, ligand: str = 'F', charge: int = 0,
              lattice_constant: float | None = None) -> Atoms:
    """Add ``ligand`` on missing bonds until the QD has net ``charge`` (see :func:`.passivation.passivate`)."""
    check_material(material)
    return _passivate(core, ligand=ligand, charge=charge)
