"""AiiDA archives of QD results: leave the large density files out, and say so when an archive is from another version.

**Leaving cubes out** (``qdtraps archive create --no-cubes``). Every node stays in the archive: AiiDA's export rules
(``input_calc_backward``, ``create_forward``, ``return_forward``, ``input_work_backward`` are not switchable) would
pull a dropped cube node back in, because the PBE0 ``CalcJob`` creates it, ``HybridScfWorkChain`` and the pipeline
return it and the Bader work chain consumes it, and leaving any of those out would cut the provenance graph. Instead,
the archive is written in full by :func:`aiida.tools.archive.create_archive` and then the *file contents* whose names
match :data:`CUBE_PATTERNS` are removed from it:

* the ``density_cube`` ``SinglefileData`` (``density.cube`` from CP2K, ``valence_density.cube`` from pp.x);
* ``aiida-ELECTRON_DENSITY-1_0.cube`` inside the CP2K ``retrieved`` ``FolderData`` and pp.x's ``aiida.fileout``;
* the ``chgcar`` ``SinglefileData`` of the Bader work chain (``CHGCAR``, the same density on the same grid).

Each node that lost files keeps its attributes and links and gets the extra ``qdtraps_stripped_files`` (name, size,
sha256 of every removed file). Its creator (the CalcJob or calcfunction) is marked as not a valid cache source
(``_aiida_valid_cache = False``, ``_aiida_hash`` removed), and so is the node itself, so that AiiDA caching in the
importing profile never clones a calculation whose outputs lack their files. AiiDA's importer drops all ``_aiida_*``
extras (imported nodes have no hash until ``verdi node rehash``), so ``qdtraps archive import`` re-applies the marks
from ``qdtraps_stripped_files`` after importing (:func:`mark_stripped_invalid_cache`); after a plain
``verdi archive import``, call that function before ``verdi node rehash``. Trap records, MO windows, Bader charges,
charge flows, plots and everything ``find_traps`` / ``trap_provenance`` walk are untouched.

**Leaving other large files out** (:func:`strip_files` with other ``patterns`` and ``keep``). The same mechanism, by
file name and with nodes exempted by UUID: the archive of an active-learning run ships the weights of the model it
is about and strips ``model.pth`` from the other iterations' and members' models (each of those nodes keeps its
attributes, links and the sha256 of its weights), so that every training frame still traces to its labelling
calculation in an archive a fraction of the size.

**Versions** (``qdtraps archive check`` / ``import``). AiiDA writes ``version.plugin`` (this package's
``__version__``) into the attributes of every process node run from it. :func:`archive_report` collects them from the
archive without importing it, together with the attributes its ``TrapRecord`` nodes lack compared with what this
version's ``qdtraps traps`` table reads (:data:`aiida_qdtraps.query.TABLE_COLUMNS`).
"""

from __future__ import annotations

import collections
import dataclasses
import fnmatch
import json
import pathlib
import shutil
import sqlite3
import tempfile
import typing as t
import zipfile

#: File names whose contents ``--no-cubes`` removes (basename globs).
CUBE_PATTERNS = ('*.cube', '*.cube.gz', 'CHGCAR', 'aiida.fileout')
STRIPPED_EXTRA = 'qdtraps_stripped_files'
PLUGIN_PREFIXES = ('aiida.workflows:qdtraps.', 'aiida.calculations:qdtraps.', 'aiida_qdtraps.')
TRAP_NODE_TYPE = 'data.qdtraps.trap.TrapRecord.'

__all__ = (
    'CUBE_PATTERNS',
    'ArchiveReport',
    'StrippedFile',
    'archive_report',
    'compare_versions',
    'create_archive',
    'import_archive',
    'mark_stripped_invalid_cache',
    'strip_files',
)


@dataclasses.dataclass(frozen=True)
class StrippedFile:
    uuid: str
    node_type: str
    path: str
    size: int
    sha256: str


@dataclasses.dataclass
class ArchiveReport:
    """What an archive holds, read from its ``db.sqlite3`` without importing it."""

    path: pathlib.Path
    size: int
    n_nodes: int
    plugin_versions: dict[str, int]  # aiida-qdtraps version -> number of its process nodes
    core_versions: dict[str, int]
    n_traps: int
    trap_missing: dict[str, int]  # TrapRecord attribute this version reads -> records without it
    stripped: list[dict]


def _tree_files(tree: dict, prefix: str = '') -> t.Iterator[tuple[str, str]]:
    for name, entry in tree.get('o', {}).items():
        path = f'{prefix}{name}'
        if 'k' in entry:
            yield path, entry['k']
        else:
            yield from _tree_files(entry, f'{path}/')


def _remove(tree: dict, patterns: t.Sequence[str], prefix: str = '') -> list[tuple[str, str]]:
    removed = []
    for name in list(tree.get('o', {})):
        entry = tree['o'][name]
        path = f'{prefix}{name}'
        if 'k' in entry:
            if any(fnmatch.fnmatch(name, pattern) for pattern in patterns):
                removed.append((path, entry['k']))
                del tree['o'][name]
        else:
            removed.extend(_remove(entry, patterns, f'{path}/'))
    return removed


def _validate_patterns(patterns: t.Sequence[str]) -> tuple[str, ...]:
    patterns = tuple(patterns)
    if not patterns:
        raise ValueError('no file name patterns given')
    for pattern in patterns:
        if not pattern or '/' in pattern or pattern.strip() != pattern:
            raise ValueError(f'file name pattern {pattern!r} must be a non-empty basename glob without "/"')
    return patterns


def strip_files(path: str | pathlib.Path, patterns: t.Sequence[str] = CUBE_PATTERNS, *,
                keep: t.Iterable[str] = ()) -> list[StrippedFile]:
    """Remove the files whose basename matches ``patterns`` from every node of the archive ``path`` (in place), except
    from the nodes whose UUID is in ``keep`` (a content those nodes share with stripped ones stays in the archive).

    :returns: one :class:`StrippedFile` per removed file (a content shared by two nodes is listed twice, stored once).
    """
    patterns = _validate_patterns(patterns)
    path = pathlib.Path(path)
    stripped: list[StrippedFile] = []
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(path) as source:
        db_path = pathlib.Path(tmp) / 'db.sqlite3'
        db_path.write_bytes(source.read('db.sqlite3'))
        sizes = {info.filename[len('repo/'):]: info.file_size for info in source.infolist()
                 if info.filename.startswith('repo/')}
        connection = sqlite3.connect(db_path)
        with connection:
            rows = connection.execute(
                'SELECT id, uuid, node_type, repository_metadata, extras FROM db_dbnode').fetchall()
            touched = []
            keep = set(keep)
            missing = keep - {row[1] for row in rows}
            if missing:
                raise ValueError(f'keep names node(s) that are not in the archive {str(path)!r}: {sorted(missing)}')
            for pk, uuid, node_type, repository, extras in rows:
                if uuid in keep:
                    continue
                tree = json.loads(repository or '{}')
                removed = _remove(tree, patterns)
                if not removed:
                    continue
                files = [StrippedFile(uuid, node_type, name, sizes.get(key, 0), key) for name, key in removed]
                stripped.extend(files)
                extras = json.loads(extras or '{}')
                extras.pop('_aiida_hash', None)
                extras['_aiida_valid_cache'] = False
                extras[STRIPPED_EXTRA] = [{'path': f.path, 'size': f.size, 'sha256': f.sha256} for f in files]
                connection.execute('UPDATE db_dbnode SET repository_metadata = ?, extras = ? WHERE id = ?',
                                   (json.dumps(tree), json.dumps(extras), pk))
                touched.append(pk)
            for pk in touched:  # the creators: never a cache source for a run whose outputs lack their files
                for creator, extras in connection.execute(
                        "SELECT n.id, n.extras FROM db_dblink l JOIN db_dbnode n ON n.id = l.input_id "
                        "WHERE l.output_id = ? AND l.type = 'create'", (pk,)).fetchall():
                    extras = json.loads(extras or '{}')
                    extras.pop('_aiida_hash', None)
                    extras['_aiida_valid_cache'] = False
                    connection.execute('UPDATE db_dbnode SET extras = ? WHERE id = ?', (json.dumps(extras), creator))
            referenced = {key for (repository,) in connection.execute('SELECT repository_metadata FROM db_dbnode')
                          for _, key in _tree_files(json.loads(repository or '{}'))}
        connection.execute('VACUUM')
        connection.close()
        if not stripped:
            return stripped
        dropped = {f.sha256 for f in stripped} - referenced
        target = pathlib.Path(tmp) / 'archive.aiida'
        with zipfile.ZipFile(target, 'w') as out:
            for info in source.infolist():
                if info.filename.startswith('repo/') and info.filename[len('repo/'):] in dropped:
                    continue
                if info.filename == 'db.sqlite3':
                    out.write(db_path, info.filename, compress_type=info.compress_type)
                elif info.filename == 'metadata.json':
                    metadata = json.loads(source.read(info))
                    metadata['qdtraps_stripped'] = {'patterns': list(patterns), 'files': len(stripped),
                                                    'bytes': sum(sizes.get(key, 0) for key in dropped)}
                    out.writestr(info, json.dumps(metadata))
                else:
                    with source.open(info) as handle, out.open(info, 'w') as copy:
                        shutil.copyfileobj(handle, copy, 1 << 20)
        shutil.move(target, path)
    return stripped


def create_archive(filename: str | pathlib.Path, entities=None, *, no_cubes: bool = False,
                   patterns: t.Sequence[str] = CUBE_PATTERNS, overwrite: bool = False) -> list[StrippedFile]:
    """Export ``entities`` (nodes and groups; ``None``: the whole profile) with AiiDA's exporter, then optionally
    remove the density files (:func:`strip_files`). The profile must be loaded. Returns the removed files."""
    from aiida.tools.archive import create_archive as aiida_create_archive

    if no_cubes:
        patterns = _validate_patterns(patterns)
    aiida_create_archive(entities, filename=filename, overwrite=overwrite)
    return strip_files(filename, patterns) if no_cubes else []


def _version_key(version: str) -> tuple:
    parts = []
    for part in version.replace('-', '.').split('.'):
        parts.append((0, int(part), '') if part.isdigit() else (1, 0, part))
    return tuple(parts)


def archive_report(path: str | pathlib.Path) -> ArchiveReport:
    """Read versions, trap-record attributes and stripped files from the archive ``path`` (nothing is imported)."""
    from .query import TABLE_COLUMNS

    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'archive {str(path)!r} does not exist')
    try:
        source = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise ValueError(f'{str(path)!r} is not an AiiDA archive (not a zip file: {exc})') from exc
    with tempfile.TemporaryDirectory() as tmp, source:
        if 'db.sqlite3' not in source.namelist():
            raise ValueError(f'{str(path)!r} is not an AiiDA 2.x archive (no db.sqlite3 inside)')
        db_path = pathlib.Path(tmp) / 'db.sqlite3'
        db_path.write_bytes(source.read('db.sqlite3'))
        connection = sqlite3.connect(db_path)
        plugin, core = collections.Counter(), collections.Counter()
        n_nodes = connection.execute('SELECT count(*) FROM db_dbnode').fetchone()[0]
        for process_type, version in connection.execute(
                "SELECT process_type, json_extract(attributes, '$.version') FROM db_dbnode "
                'WHERE process_type IS NOT NULL'):
            version = json.loads(version) if version else {}
            if any(process_type.startswith(prefix) for prefix in PLUGIN_PREFIXES):
                plugin[str(version.get('plugin', 'unknown'))] += 1
            if version.get('core'):
                core[version['core']] += 1
        missing, n_traps = collections.Counter(), 0
        for (attributes,) in connection.execute('SELECT attributes FROM db_dbnode WHERE node_type = ?',
                                                (TRAP_NODE_TYPE,)):
            n_traps += 1
            keys = set(json.loads(attributes or '{}'))
            missing.update(column for column in TABLE_COLUMNS if column not in keys)
        stripped = []
        for uuid, extras in connection.execute('SELECT uuid, extras FROM db_dbnode'):
            for entry in json.loads(extras or '{}').get(STRIPPED_EXTRA, []):
                stripped.append({'uuid': uuid, **entry})
        connection.close()
    return ArchiveReport(path, path.stat().st_size, n_nodes, dict(plugin), dict(core), n_traps, dict(missing),
                         stripped)


def compare_versions(report: ArchiveReport, installed: str | None = None) -> tuple[str, str]:
    """``(status, message)``; status is ``same``, ``none`` (no aiida-qdtraps processes), ``older`` or ``newer``."""
    import aiida_qdtraps

    installed = installed or aiida_qdtraps.__version__
    lines = []
    if report.trap_missing:
        lines.append(f'TrapRecord attributes that `qdtraps traps` of {installed} reads are missing: '
                     + ', '.join(f'{key} (in {count} of {report.n_traps} records)'
                                 for key, count in sorted(report.trap_missing.items()))
                     + '; those columns will be empty and filters on them will not match.')
    if not report.plugin_versions:
        return 'none', ' '.join([f'{report.path} holds no aiida-qdtraps processes.', *lines])
    versions = sorted(report.plugin_versions, key=_version_key)
    counts = ', '.join(f'{v} ({report.plugin_versions[v]} processes)' for v in versions)
    if versions == [installed]:
        return 'same', ' '.join([f'{report.path} was written by aiida-qdtraps {installed}, the installed version.',
                                 *lines])
    newer = [v for v in versions if _version_key(v) > _version_key(installed)]
    status = 'newer' if newer else 'older'
    head = (f'{report.path} was written by aiida-qdtraps {counts}, but the installed version is {installed}. ')
    if status == 'older':
        head += ('Nodes are imported unchanged; what may differ: TrapRecord attributes (the trap table columns and '
                 'filters), protocol names recorded on the records, work-chain output namespaces and exit codes, '
                 'which `qdtraps traps`, `qdtraps trace`, `find_traps` and `trap_provenance` of this version expect.')
    else:
        head += (f'This version cannot know the schema of {", ".join(newer)}: upgrade aiida-qdtraps '
                 '(or import with --force and check the results).')
    return status, ' '.join([head, *lines])


def import_archive(path: str | pathlib.Path, *, force: bool = False) -> tuple[str, str]:
    """Check the versions (:func:`compare_versions`), then import with AiiDA's importer into the loaded profile.

    :raises ValueError: for an archive from a newer aiida-qdtraps unless ``force``.
    :returns: the ``(status, message)`` of the version check.
    """
    from aiida.tools.archive import import_archive as aiida_import_archive

    status, message = compare_versions(archive_report(path))
    if status == 'newer' and not force:
        raise ValueError(message)
    aiida_import_archive(path)
    mark_stripped_invalid_cache()
    return status, message


def mark_stripped_invalid_cache() -> int:
    """Mark nodes that lost files to ``--no-cubes`` and their creators as invalid cache sources; return how many.

    AiiDA's importer drops every ``_aiida_*`` extra, so the marks written into the archive do not survive an import; the
    ``qdtraps_stripped_files`` extra does, and this re-applies the marks from it (``qdtraps archive import`` calls it).
    """
    from aiida import orm

    query = orm.QueryBuilder().append(orm.Node, filters={'extras': {'has_key': STRIPPED_EXTRA}}, project='*')
    marked = 0
    for node in query.all(flat=True):
        for target in (node, node.creator):
            if target is not None and target.base.caching.is_valid_cache:
                target.base.caching.is_valid_cache = False
                marked += 1
    return marked
