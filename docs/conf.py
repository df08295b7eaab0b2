"""Sphinx configuration of the aiida-qdtraps documentation (MyST Markdown pages, built by ``make docs``).

The build needs no AiiDA profile and no network: the process directives of ``aiida.sphinxext`` load a temporary
in-memory profile (``core.sqlite_temp``), intersphinx is off and MathJax is only loaded by the browser.
"""

import atexit
import os
import pathlib
import re
import shutil
import sys
import tempfile
import tomllib

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)
DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # document this checkout's package, not another installed copy

# aiida reads AIIDA_PATH when its configuration is first needed: point it at an empty folder so that the build never
# reads or writes a user's or the project's profile.
_AIIDA_PATH = tempfile.mkdtemp(prefix='qdtraps-docs-aiida-')
os.makedirs(os.path.join(_AIIDA_PATH, '.aiida'))
os.environ['AIIDA_PATH'] = _AIIDA_PATH
atexit.register(shutil.rmtree, _AIIDA_PATH, ignore_errors=True)

from aiida.manage.configuration import load_profile  # noqa: E402
from aiida.storage.sqlite_temp import SqliteTempBackend  # noqa: E402

# autodoc touches class attributes that aiida-core deprecates (``Node.objects``): no deprecation warnings here
load_profile(
    SqliteTempBackend.create_profile('qdtraps-docs', options={'warnings.showdeprecations': False}), allow_switch=True
)

project = 'aiida-qdtraps'
author = 'The aiida-qdtraps authors'
copyright = '2026, the aiida-qdtraps authors'  # noqa: A001
release = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']['version']

extensions = [
    'myst_parser',
    'sphinx.ext.autodoc',
    'sphinx.ext.autosummary',
    'sphinx.ext.mathjax',
    'sphinx_click',
    'aiida.sphinxext',
]

source_suffix = {'.md': 'markdown', '.rst': 'restructuredtext'}  # autosummary writes .rst stubs
exclude_patterns = ['_build', 'Thumbs.db', '.DS_Store']
root_doc = 'index'

# MyST: GitHub-style anchors for `page.md#some-heading` links (the pages are also read on GitHub), $…$ math.
myst_enable_extensions = ['dollarmath', 'colon_fence', 'deflist']
myst_heading_anchors = 4
myst_dmath_double_inline = True

# Autodoc / autosummary: the Python API pages are generated from the docstrings at build time, into a folder that
# is emptied first: stubs of modules that were renamed or removed would otherwise stay and fail the build.
shutil.rmtree(pathlib.Path(__file__).parent / 'reference' / 'api', ignore_errors=True)
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {'members': True, 'show-inheritance': True}
autodoc_member_order = 'bysource'
autodoc_typehints = 'description'
templates_path = ['_templates']  # autosummary/module.rst: one automodule page per module, no summary tables
# Docstrings refer to modules by relative names (``:mod:`.traps```) that match in two sub-packages; Sphinx picks one
# and warns. Unresolved Python references are not warned about anyway (not nitpicky: the type hints name numpy and
# ase types that have no local inventory).
suppress_warnings = ['ref.python']

html_theme = 'furo'
html_title = f'aiida-qdtraps {release}'
html_static_path = []
html_show_sourcelink = False


# -- Markdown written for GitHub as well as for this site --------------------------------------------------------------

_HTML_ANCHOR = re.compile(r'^<a id="([A-Za-z0-9_-]+)"></a>[ \t]*$', re.MULTILINE)
_LINK = re.compile(r'\[([^\]]+)\]\((\.\./[^)\s#]+)\)')


def markdown_for_sphinx(app, docname, source):
    """Keep the GitHub-friendly Markdown of the pages and give Sphinx what it understands.

    * ``<a id="key"></a>`` (an anchor GitHub honours, used by ``references.md#key`` links) becomes the MyST target
      ``(key)=``, which Sphinx resolves;
    * a link out of ``docs/`` to a folder or a Markdown file of the repository (``[examples/hpc/](../examples/hpc)``)
      becomes its text: it is not part of the site. Links to other files (scripts) stay: Sphinx offers them as
      downloads.
    """
    text = _HTML_ANCHOR.sub(r'(\1)=', source[0])
    folder = (DOCS / docname).parent

    def outside(match):
        target = (folder / match.group(2)).resolve()
        if DOCS in target.parents or not (target.is_dir() or target.suffix == '.md'):
            return match.group(0)
        return match.group(1)

    source[0] = _LINK.sub(outside, text)


_LITERAL_OR_ROLE = re.compile(r'(``.*?``|`[^`]*`)')


def escape_bar_line(line):
    """Escape the bars of ``|F|`` (a norm), which reStructuredText would read as a substitution reference.

    Bars inside literals and roles (``:math:`|F|```) are left alone.
    """
    if '|' not in line:
        return line
    parts = _LITERAL_OR_ROLE.split(line)
    return ''.join(part if i % 2 else part.replace('|', r'\|') for i, part in enumerate(parts))


def escape_bars(app, what, name, obj, options, lines):
    """Docstrings write norms as ``|F|``: escape their bars (:func:`escape_bar_line`)."""
    lines[:] = [escape_bar_line(line) for line in lines]


def port_help_publisher(publish_doctree):
    """Wrap the docutils ``publish_doctree`` with which ``aiida.sphinxext`` renders each port's help.

    The help is escaped like the docstrings, and a docutils message (which docutils would only print to stderr)
    becomes a Sphinx warning that names the help text, so that ``-W`` catches it.
    """
    from docutils.utils import SystemMessage

    def publish(text, *args, **kwargs):
        text = '\n'.join(escape_bar_line(line) for line in text.split('\n'))
        try:
            return publish_doctree(text, settings_overrides={'halt_level': 2, 'warning_stream': False})
        except SystemMessage as exception:
            logger.warning('port help %r: %s', text, exception)
            return publish_doctree(text, settings_overrides={'report_level': 5})

    return publish


# -- Work chains and calculations of pyproject.toml's entry points ----------------------------------------------------


def entry_points(group):
    """``{name: 'module:attribute'}`` of one entry-point group, read from this checkout's ``pyproject.toml``."""
    return tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']['entry-points'].get(group, {})


class QdtrapsProcesses(SphinxDirective):
    """``{qdtraps-processes} GROUP``: the spec of every process of an entry-point group of ``pyproject.toml``.

    Work chains through ``aiida.sphinxext``'s ``aiida-workchain``, CalcJobs through its ``aiida-calcjob``;
    calcfunctions (``aiida.calculations`` entry points that are functions) as a list linking to their API pages.
    Used in Markdown pages only: the text it generates is MyST.
    """

    required_arguments = 1

    def run(self):
        from aiida.common.utils import get_object_from_string
        from aiida.engine import CalcJob, WorkChain

        group = self.arguments[0]
        text, functions = [], []
        for name, value in sorted(entry_points(group).items()):
            module, attribute = value.split(':')
            obj = get_object_from_string(f'{module}.{attribute}')
            if isinstance(obj, type) and issubclass(obj, WorkChain):
                text += [f'```{{aiida-workchain}} {attribute}', f':module: {module}', '```', '']
            elif isinstance(obj, type) and issubclass(obj, CalcJob):
                text += [f'```{{aiida-calcjob}} {attribute}', f':module: {module}', '```', '']
            else:
                functions.append(f'* `{name}`: {{py:func}}`{module}.{attribute}`')
        if functions:
            text += ['Calcfunctions (their inputs are the arguments of the function):', ''] + functions + ['']
        if not text:
            raise self.error(f'no entry points in group {group!r} of pyproject.toml')
        container = nodes.container()
        # the pages are MyST Markdown, so is the generated text
        self.state.nested_parse(StringList(text, source=f'pyproject.toml [{group}]'), self.content_offset, container)
        return container.children


def setup(app):
    import aiida.sphinxext.process

    aiida.sphinxext.process.publish_doctree = port_help_publisher(aiida.sphinxext.process.publish_doctree)
    app.connect('source-read', markdown_for_sphinx)
    app.connect('autodoc-process-docstring', escape_bars)
    app.add_directive('qdtraps-processes', QdtrapsProcesses)
    return {'parallel_read_safe': True}
