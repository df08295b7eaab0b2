"""The documentation: every relative link of README.md and docs/ reaches its file (and heading), and the Sphinx site
builds without a warning.

Sphinx's ``linkcheck`` builder needs the network; the relative links are checked here instead, the way GitHub resolves
them (file paths relative to the page, ``#anchor`` as GitHub's heading slug or an explicit ``<a id>`` / MyST target).
"""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / 'docs'
GENERATED = (DOCS / '_build', DOCS / 'reference' / 'api')

FENCE = re.compile(r'^(```|~~~).*?^\1[ \t]*$', re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r'(`+).+?\1', re.DOTALL)
LINK = re.compile(r'!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)')
HEADING = re.compile(r'^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$', re.MULTILINE)
EXPLICIT_ANCHOR = re.compile(r'<a\s+(?:id|name)="([^"]+)"|^\(([^)\s]+)\)=[ \t]*$', re.MULTILINE)


def markdown_pages() -> list[pathlib.Path]:
    """README.md and every Markdown page of docs/ (not the build output)."""
    pages = [ROOT / 'README.md']
    pages += [path for path in sorted(DOCS.rglob('*.md')) if not any(folder in path.parents for folder in GENERATED)]
    return pages


def prose(text: str) -> str:
    """The text without fenced code blocks and inline code, where ``[x](y)`` is no link."""
    return INLINE_CODE.sub('', FENCE.sub('', text))


def github_slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped (not ``-`` and ``_``), spaces to hyphens."""
    text = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', heading)  # a link in a heading keeps its text
    text = re.sub(r'<[^>]+>', '', text).lower()
    return re.sub(r'[^\w\- ]', '', text).replace(' ', '-')


def anchors(page: pathlib.Path) -> set[str]:
    """The anchors of a Markdown page: its headings' slugs (``-1``, ``-2`` for repeats) and its explicit targets."""
    text = FENCE.sub('', page.read_text(encoding='utf-8'))
    found, seen = set(), {}
    for heading in HEADING.findall(text):
        slug = github_slug(heading)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f'{slug}-{count}')
    found.update(a or b for a, b in EXPLICIT_ANCHOR.findall(text))
    return found


def broken_links(page: pathlib.Path, root: pathlib.Path = ROOT) -> list[str]:
    """``'page: target: why'`` for each relative link of ``page`` whose file or anchor does not exist.

    Paths in the messages are relative to ``root`` (the repository).
    """
    broken = []
    for target in LINK.findall(prose(page.read_text(encoding='utf-8'))):
        if re.match(r'^[a-z][a-z0-9+.-]*:', target):  # https:, mailto:, ...: not checked (no network)
            continue
        path, _, anchor = target.partition('#')
        destination = (page.parent / path).resolve() if path else page
        where = f'{page.relative_to(root)}: {target}'
        if not destination.exists():
            broken.append(f'{where}: no file {path}')
        elif anchor and destination.suffix == '.md' and anchor not in anchors(destination):
            broken.append(f'{where}: no heading or anchor #{anchor} in {destination.relative_to(root)}')
    return broken


def test_github_slug_and_link_checker(tmp_path):
    """The link checker itself: GitHub's slugs, and a broken file, anchor and good link told apart."""
    assert github_slug('Measured here (2-core machine, CP2K 2023.1, `fast` protocol)') == \
        'measured-here-2-core-machine-cp2k-20231-fast-protocol'
    assert github_slug('Error handling (QdCp2kBaseWorkChain)') == 'error-handling-qdcp2kbaseworkchain'
    assert github_slug('5. Strings that reach the job script') == '5-strings-that-reach-the-job-script'
    (tmp_path / 'a.md').write_text(
        '# Title\n\n## Same\n\n## Same\n\n<a id="key"></a>\n(label)=\n\n```\n# not a heading\n```\n'
    )
    (tmp_path / 'b.md').write_text(
        '[ok](a.md#title) [ok](a.md#same-1) [ok](a.md#key) [ok](a.md#label) ![img](a.md) `[no](link.md)`\n'
        '[bad file](c.md) [bad anchor](a.md#not-a-heading) [web](https://example.org/x.md)\n'
        '```\n[in code](d.md)\n```\n'
    )
    assert anchors(tmp_path / 'a.md') == {'title', 'same', 'same-1', 'key', 'label'}
    assert broken_links(tmp_path / 'b.md', root=tmp_path) == [
        'b.md: c.md: no file c.md',
        'b.md: a.md#not-a-heading: no heading or anchor #not-a-heading in a.md',
    ]


@pytest.mark.slow
def test_docs_links_and_site(tmp_path):
    """Every relative link of README.md and docs/*.md resolves, and ``sphinx-build -W`` builds the site.

    The build needs no AiiDA profile and no network (docs/conf.py); it imports the whole package (autodoc) and renders
    the CLI (sphinx-click) and every registered process's spec (aiida.sphinxext).
    """
    pages = markdown_pages()
    assert ROOT / 'docs' / 'index.md' in pages
    broken = [problem for page in pages for problem in broken_links(page)]
    assert not broken, 'broken relative links:\n' + '\n'.join(broken)

    html = tmp_path / 'html'
    result = subprocess.run(
        [sys.executable, '-m', 'sphinx', '-W', '--keep-going', '-q', '-b', 'html', '-d', str(tmp_path / 'doctrees'),
         str(DOCS), str(html)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, f'sphinx-build failed:\n{result.stdout}\n{result.stderr}'
    for page in ('index', 'get_started', 'reference/cli', 'reference/processes', 'reference/api'):
        assert (html / f'{page}.html').is_file(), page
    cli = (html / 'reference' / 'cli.html').read_text(encoding='utf-8')
    assert 'qdtraps setup' in cli and 'qdtraps archive create' in cli
    processes = (html / 'reference' / 'processes.html').read_text(encoding='utf-8')
    assert 'QdTrapsPipelineWorkChain' in processes and 'MlffMdCalculation' in processes
    assert (html / 'reference' / 'api' / 'aiida_qdtraps.analysis.traps.html').is_file()
