"""HTML reports of QDs: one self-contained file per QD (``qdtraps report PK``) and an index per Group.

:mod:`.collect` reads what a report shows from the provenance graph, :mod:`.page` writes the HTML from plain data.
The text summaries that ``qdtraps demo`` prints are in :mod:`aiida_qdtraps.report`.
"""

from __future__ import annotations

import os
import pathlib
import re

from aiida import orm

from .collect import ReportError, collect, find_labeling, index_row
from .page import index_page, report_page

__all__ = ('ReportError', 'default_filename', 'render_report', 'write_demo_report', 'write_group_reports',
           'write_report')


def render_report(node: orm.Node) -> str:
    """The HTML of the report on ``node`` (a pipeline run, a labelling or a labelled structure)."""
    return report_page(collect(node))


def default_filename(node: orm.Node) -> str:
    """``<formula>_<first 8 characters of the labelling's uuid>.html``: the same in every profile."""
    labeling = find_labeling(node)
    formula = labeling.inputs.structure.get_formula(mode='hill')
    return f'{re.sub(r"[^A-Za-z0-9]+", "", formula)}_{labeling.uuid[:8]}.html'


def _writable(path: pathlib.Path) -> pathlib.Path:
    path = pathlib.Path(path)
    folder = path.parent if str(path.parent) else pathlib.Path('.')
    if path.is_dir():
        raise ReportError(f'the output path {path} is a directory; give a file name such as {path / "report.html"}')
    if not folder.is_dir():
        raise ReportError(f'cannot write {path}: the folder {folder} does not exist')
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ReportError(f'cannot write {path}: permission denied')
    return path


def write_report(node: orm.Node, path: str | os.PathLike | None = None) -> pathlib.Path:
    """Write the report on ``node`` to ``path`` (default: :func:`default_filename` in the working directory).

    :raises ReportError: for a node without results or a path that cannot be written (checked before any work).
    """
    path = _writable(pathlib.Path(path) if path is not None else pathlib.Path(default_filename(node)))
    text = render_report(node)
    try:
        path.write_text(text, encoding='utf-8')
    except OSError as exc:
        raise ReportError(f'cannot write {path}: {exc.strerror or exc}') from exc
    return path


def write_group_reports(group: str | orm.Group, directory: str | os.PathLike) -> tuple[pathlib.Path, list[dict]]:
    """A report per member of ``group`` with a trap labelling, and ``index.html`` linking to them, in ``directory``
    (created if missing). Members without a labelling are listed in the returned rows with their ``error``.

    :returns: the index path and one row per member (``href`` or ``error``).
    """
    from aiida.common.exceptions import NotExistent

    if not isinstance(group, orm.Group):
        try:
            group = orm.load_group(label=group)
        except NotExistent as exc:
            raise ReportError(f'no Group with label {group!r}; `verdi group list -a` lists them') from exc
    directory = pathlib.Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(f'cannot create the folder {directory}: {exc.strerror or exc}') from exc
    _writable(directory / 'index.html')
    rows, skipped = [], []
    for node in sorted(group.nodes, key=lambda n: n.uuid):
        try:
            data = collect(node)
            labeling = find_labeling(node)
        except ReportError as exc:
            skipped.append({'pk': node.pk, 'error': str(exc)})
            continue
        name = default_filename(node)
        (directory / name).write_text(report_page(data), encoding='utf-8')
        rows.append(index_row(data, labeling, name))
    rows.sort(key=lambda row: (row['formula'], row['href']))
    index = directory / 'index.html'
    index.write_text(index_page(f'Group {group.label}: QD reports', rows), encoding='utf-8')
    return index, rows + skipped


def write_demo_report(node: orm.WorkflowNode, directory: str | os.PathLike = 'demo_output') -> pathlib.Path:
    """Write the report of a finished demo labelling or pipeline into ``directory`` (created if missing), print its
    path and size, and return the path."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = write_report(node, directory / default_filename(node))
    print(f'HTML report: {path.resolve()} ({path.stat().st_size / 1e6:.2f} MB, self-contained; open it in a browser)')
    return path
