"""The HTML assembly alone (no AiiDA, no browser): escaping, self-containment, the index page."""

from __future__ import annotations

import json
import re

from aiida_qdtraps.html_report.page import CONTENT_SECURITY_POLICY, asset, index_page, report_page, xyz_text

REPORT = {
    'title': 'In<4> & "P"', 'formula': 'F9In4P', 'facts': [('recipe', 'ligand <F>')],
    'provenance': [{'step': 'SCF', 'node': 'Cp2kCalculation', 'pk': 7, 'uuid': 'abc'}],
    'structure': {'symbols': ['In', 'P'], 'positions': [[0.0, 0.0, 0.0], [2.5, 0.0, 0.0]]},
    'highlights': [{'index': 1, 'label': 'P1 </script><b>', 'carrier': 'hole'}],
    'arrows': [{'start': [0, 0, 0], 'end': [1, 0, 0]}],
    'figures': [{'title': 'PR', 'caption': 'c', 'png': b'\x89PNG\r\n'}],
    'traps': [{'carrier': 'hole', 'depth': 0.1234, 'energy': -5.0, 'center_element': 'P', 'center': 1,
               'center_coordination': 3, 'kind': 'under-coordinated', 'participation_ratio': 0.5, 'spin': 0}],
    'bader': [{'element': 'In', 'n_atoms': 1, 'dq_mean': 0.75}], 'notes': ['no MLFF'],
}


def test_page_is_self_contained_and_escaped():
    page = report_page(REPORT)
    assert f'content="{CONTENT_SECURITY_POLICY}"' in page and "default-src 'none'" in CONTENT_SECURITY_POLICY
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing loaded from elsewhere
    assert asset('3Dmol-min.js') in page and 'Copyright (c) 2014, University of Pittsburgh' in page
    assert page.count('</script>') == page.count('<script')  # the label's </script> cannot close a script
    assert '<title>In&lt;4&gt; &amp; &quot;P&quot;</title>' in page and 'ligand &lt;F&gt;' in page
    data = json.loads(re.search(r'id="qdtraps-structure">(.*?)</script>', page).group(1))
    assert data['xyz'] == '2\n\nIn 0.000000 0.000000 0.000000\nP 2.500000 0.000000 0.000000\n'
    assert data['highlights'] == [{'index': 1, 'label': 'P1 </script><b>', 'position': [2.5, 0.0, 0.0],
                                   'colour': '#d62728'}]
    assert '<td class="num">0.123</td>' in page and '<td class="num">+0.750</td>' in page
    assert 'src="data:image/png;base64,iVBORw0K"' in page
    assert page.count('class="trap-row"') == 1 and 'id="show-arrows"' in page


def test_page_without_traps_arrows_or_bader():
    page = report_page({**REPORT, 'traps': [], 'arrows': [], 'bader': None, 'figures': []})
    assert 'id="no-traps"' in page and 'id="show-arrows"' not in page and 'id="bader"' not in page


def test_xyz_text():
    assert xyz_text(['H'], [[1, 2, 3]]) == '1\n\nH 1.000000 2.000000 3.000000\n'


def test_index_links_every_row():
    rows = [{'formula': 'F9In4P', 'material': 'InP', 'n_atoms': 14, 'protocol': 'fast', 'band_gap': 3.21,
             'n_hole_traps': 2, 'n_electron_traps': 0, 'href': 'F9In4P_1234abcd.html', 'pk': 5,
             'recipe': 'diameter 5.2, vacancy ligand'},
            {'formula': 'F9Ga4P', 'material': 'GaP', 'n_atoms': 14, 'protocol': None, 'band_gap': None,
             'n_hole_traps': 0, 'n_electron_traps': 1, 'href': 'F9Ga4P_9876abcd.html', 'pk': 9}]
    page = index_page('Group lib', rows)
    assert page.count('class="qd-row"') == 2 and '<a href="F9In4P_1234abcd.html">' in page
    assert '<td class="num">3.210</td>' in page and '2 QD report(s)' in page
    assert '(label_traps <span class="pk">5</span>)' in page and 'diameter 5.2, vacancy ligand' in page
    assert '3Dmol' not in page  # the index needs no viewer


def test_page_and_browser_modules_import_no_aiida():
    """The HTML assembly and the browser driver are plain Python: the AiiDA querying is in collect.py alone."""
    import ast
    import pathlib

    import aiida_qdtraps.html_report as package

    for name in ('page.py', 'browser.py'):
        tree = ast.parse((pathlib.Path(package.__file__).parent / name).read_text())
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module or '' for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not {m for m in imported if m.split('.')[0] in ('aiida', 'aiida_qdtraps') or m.startswith('.')}, name
