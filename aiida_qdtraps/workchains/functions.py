"""Compatibility alias: the calcfunctions that lived here, under their old module path.

Nodes stored while a process had no entry point installed record ``<module>.<function>`` as their process type (with
one, ``aiida.calculations:qdtraps.<name>``), and scripts import from here: both keep working. The calcfunctions live in
:mod:`.build` (``build_qd_structure``, ``center_in_box``), :mod:`.mo_window` (``extract_mo_window``) and
:mod:`.cp2k_parameters` (``update_cp2k_parameters``). New code imports them from there.
"""

from aiida_quantumespresso.workflows.protocols.utils import recursive_merge

from .build import build_qd_structure, center_in_box
from .cp2k_parameters import update_cp2k_parameters
from .mo_window import extract_mo_window

__all__ = ['build_qd_structure', 'center_in_box', 'extract_mo_window', 'recursive_merge', 'update_cp2k_parameters']
