"""The HTML of a QD report and of a report index, from plain data (no AiiDA): one self-contained file each.

A report page inlines everything it needs: the styles, the 3Dmol.js viewer (BSD-3-Clause, vendored in
``aiida_qdtraps/report_assets``, licence text included in the page), the figures as base64 PNG and the structure as
JSON. Its Content-Security-Policy allows no network access at all, so a page that renders offline is a page that
needs nothing else. An inline script records script errors, ``console.error`` calls and blocked requests into the
``#qdtraps-errors`` element (shown as a red banner when not empty), which the browser test reads.

The input of :func:`report_page` is a dict:

``title``, ``formula``
    strings;
``facts``
    ``[(label, value), ...]`` rows of the QD table (charge, multiplicity, protocol, engine, recipe, ...);
``provenance``
    ``[{'step', 'node', 'pk', 'uuid'}, ...]``, the calculations in order (build, relax, SCF, labelling, ...);
``structure``
    ``{'symbols': [...], 'positions': [[x, y, z], ...]}`` in Å;
``highlights``
    ``[{'index', 'label', 'carrier'}, ...]``: trap-centre atoms, drawn larger, coloured and labelled;
``arrows``
    ``[{'start': [x, y, z], 'end': [x, y, z]}, ...]``: charge-flow arrows (may be empty);
``figures``
    ``[{'title', 'caption', 'png': bytes}, ...]``;
``traps``
    rows with ``carrier``, ``depth``, ``energy``, ``center_element``, ``center``, ``center_coordination``, ``kind``,
    ``participation_ratio``, ``spin``;
``bader``
    ``[{'element', 'n_atoms', 'dq_mean'}, ...]`` or None;
``notes``
    strings: what the report leaves out and why.
"""

from __future__ import annotations

import base64
import html
import json
from importlib import resources

#: The vendored viewer: 3Dmol.js from the npm registry (``npm pack 3dmol@2.5.5``), minified build and its licences.
VIEWER_VERSION = '2.5.5'
VIEWER_FILES = ('3Dmol-min.js', '3Dmol-LICENSE.txt', '3Dmol-min.js.LICENSE.txt')
#: No network: scripts, styles and images must be inline (data: URLs for images).
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                           "img-src data:")
CARRIER_COLOURS = {'hole': '#d62728', 'electron': '#9467bd'}
ARROW_COLOUR = '#1f77b4'

STYLE = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 1.5em auto; max-width: 1100px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.15em; margin-top: 1.6em;
     border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
table { border-collapse: collapse; font-size: 0.9em; } td, th { padding: 0.25em 0.7em; text-align: left;
     border-bottom: 1px solid #eee; vertical-align: top; } th { background: #f5f5f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, .uuid { font-family: ui-monospace, 'SFMono-Regular', Menlo, monospace; font-size: 0.85em; }
#viewer { width: 100%; height: 480px; position: relative; border: 1px solid #ccc; box-sizing: border-box;
          overflow: hidden; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; }
.legend span { display: inline-block; margin-right: 1.2em; font-size: 0.85em; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; border-radius: 50%; vertical-align: middle;
          margin-right: 0.3em; }
#qdtraps-errors { background: #fdd; color: #900; padding: 0.5em; white-space: pre-wrap; position: fixed; bottom: 0;
                  right: 0; max-width: 50%; max-height: 40%; overflow: auto; margin: 0; z-index: 10; }
.notes { font-size: 0.85em; color: #555; } footer { margin-top: 2em; font-size: 0.8em; color: #777; }
"""

#: First script of every page: records errors before anything else runs.
ERROR_RECORDER = """
window.qdtrapsErrors = [];
function qdtrapsShow() {
  var box = document.getElementById('qdtraps-errors');
  if (box && window.qdtrapsErrors.length) { box.textContent = window.qdtrapsErrors.join('\\n'); box.hidden = false; }
}
function qdtrapsRecord(message) { window.qdtrapsErrors.push(String(message)); qdtrapsShow(); }
window.addEventListener('error', function (event) {
  var target = event.target || {};
  qdtrapsRecord('error: ' + (event.message || target.src || target.href || 'resource failed to load'));
}, true);
window.addEventListener('unhandledrejection', function (event) {
  qdtrapsRecord('unhandled rejection: ' + event.reason);
});
document.addEventListener('securitypolicyviolation', function (event) {
  qdtrapsRecord('blocked: ' + event.blockedURI + ' (' + event.violatedDirective + ')');
});
(function () {
  var original = console.error;
  console.error = function () {
    qdtrapsRecord('console.error: ' + Array.prototype.join.call(arguments, ' '));
    return original.apply(console, arguments);
  };
})();
document.addEventListener('DOMContentLoaded', qdtrapsShow);
"""

VIEWER_SCRIPT = """
(function () {
  var element = document.getElementById('viewer');
  var data = JSON.parse(document.getElementById('qdtraps-structure').textContent);
  function vector(p) { return {x: p[0], y: p[1], z: p[2]}; }
  try {
    var viewer = $3Dmol.createViewer(element, {backgroundColor: 'white', antialias: true});
    viewer.addModel(data.xyz, 'xyz');
    viewer.setStyle({}, {stick: {radius: 0.14, colorscheme: 'Jmol'}, sphere: {scale: 0.28, colorscheme: 'Jmol'}});
    data.highlights.forEach(function (h) {
      viewer.setStyle({index: h.index}, {stick: {radius: 0.14, colorscheme: 'Jmol'},
                                         sphere: {scale: 0.6, color: h.colour}});
      viewer.addLabel(h.label, {position: vector(h.position), backgroundColor: h.colour, backgroundOpacity: 0.8,
                                fontColor: 'white', fontSize: 12, inFront: true});
    });
    var arrows = [];
    function drawArrows(show) {
      arrows.forEach(function (shape) { viewer.removeShape(shape); });
      arrows = [];
      if (show) {
        data.arrows.forEach(function (a) {
          arrows.push(viewer.addArrow({start: vector(a.start), end: vector(a.end), radius: 0.09, radiusRatio: 2.0,
                                      mid: 0.75, color: data.arrow_colour}));
        });
      }
      viewer.render();
    }
    var toggle = document.getElementById('show-arrows');
    if (toggle) { toggle.addEventListener('change', function () { drawArrows(toggle.checked); }); }
    viewer.zoomTo();
    drawArrows(data.arrows.length > 0);
    document.getElementById('reset-view').addEventListener('click', function () { viewer.zoomTo(); viewer.render(); });
    var box = element.getBoundingClientRect();
    element.setAttribute('data-rect', [box.left, box.top, box.width, box.height].map(Math.round).join(','));
    element.setAttribute('data-status', 'rendered');
    element.setAttribute('data-atoms', String(viewer.getModel().selectedAtoms({}).length));
  } catch (error) {
    element.setAttribute('data-status', 'failed');
    qdtrapsRecord('3D view: ' + error);
  }
})();
"""


def asset(name: str) -> str:
    """Text of a vendored file of ``aiida_qdtraps/report_assets``."""
    return resources.files('aiida_qdtraps').joinpath('report_assets', name).read_text(encoding='utf-8')


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def _json_for_script(value) -> str:
    """JSON safe inside a ``<script>`` element (no ``</script>`` or ``<!--`` can appear)."""
    return json.dumps(value, separators=(',', ':')).replace('<', '\\u003c').replace('>', '\\u003e')


def xyz_text(symbols, positions) -> str:
    """XYZ file text of a structure (Å)."""
    lines = [str(len(symbols)), '']
    lines += [f'{s} {x:.6f} {y:.6f} {z:.6f}' for s, (x, y, z) in zip(symbols, positions)]
    return '\n'.join(lines) + '\n'


def _head(title: str, extra_script: str = '') -> str:
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{esc(title)}</title>\n'
            f'<script>{ERROR_RECORDER}</script>\n{extra_script}<style>{STYLE}</style>\n</head>\n<body>\n'
            f'<pre id="qdtraps-errors" hidden></pre>\n')


def _pk(pk) -> str:
    return f'<span class="pk">{esc(pk)}</span>'


def _fact_rows(facts) -> str:
    return ''.join(f'<tr><th>{esc(label)}</th><td>{esc(value)}</td></tr>\n' for label, value in facts)


def _provenance(rows) -> str:
    items = ''.join(f'<tr><td>{esc(row["step"])}</td><td>{esc(row["node"])}</td><td class="num">{_pk(row["pk"])}'
                    f'</td><td class="uuid">{esc(row["uuid"])}</td></tr>\n' for row in rows)
    return (f'<table id="provenance"><tr><th>step</th><th>node</th><th>pk</th><th>uuid</th></tr>\n{items}</table>\n'
            if rows else '<p>No calculations recorded.</p>\n')


def _viewer(report: dict) -> str:
    structure = report['structure']
    positions = structure['positions']
    highlights = [{'index': h['index'], 'label': h['label'], 'position': list(positions[h['index']]),
                   'colour': CARRIER_COLOURS.get(h.get('carrier'), '#ff7f0e')} for h in report.get('highlights', [])]
    data = {'xyz': xyz_text(structure['symbols'], positions), 'highlights': highlights,
            'arrows': report.get('arrows', []), 'arrow_colour': ARROW_COLOUR}
    legend = ''.join(f'<span><span class="swatch" style="background:{colour}"></span>{carrier} trap centre</span>'
                     for carrier, colour in CARRIER_COLOURS.items())
    toggle = ''
    if data['arrows']:
        legend += (f'<span><span class="swatch" style="background:{ARROW_COLOUR}"></span>charge-flow vector '
                   f'{esc(report.get("arrow_caption", ""))}</span>')
        toggle = '<label><input type="checkbox" id="show-arrows" checked> charge-flow arrows</label> '
    return (f'<div id="viewer" data-status="pending" role="img" aria-label="3D structure of '
            f'{esc(report["formula"])}"></div>\n'
            f'<p class="legend">{toggle}<button type="button" id="reset-view">reset view</button> {legend}</p>\n'
            f'<p class="notes">Drag to rotate, scroll to zoom, right-drag to move. Atoms in Jmol colours.</p>\n'
            f'<script type="application/json" id="qdtraps-structure">{_json_for_script(data)}</script>\n')


def _figures(figures) -> str:
    out = []
    for figure in figures:
        data = base64.b64encode(figure['png']).decode('ascii')
        out.append(f'<figure><h3>{esc(figure["title"])}</h3><img alt="{esc(figure["title"])}" '
                   f'src="data:image/png;base64,{data}"><figcaption>{esc(figure.get("caption", ""))}</figcaption>'
                   f'</figure>\n')
    return ''.join(out)


TRAP_COLUMNS = ('carrier', 'depth / eV', 'energy / eV', 'centre', 'CN', 'kind', 'PR', 'spin')


def _trap_table(traps) -> str:
    if not traps:
        return '<p id="no-traps">No trap states: every state in the MO window is band-like or quantum-confined.</p>\n'
    head = ''.join(f'<th>{esc(c)}</th>' for c in TRAP_COLUMNS)
    rows = []
    for t in traps:
        rows.append(f'<tr class="trap-row"><td>{esc(t["carrier"])}</td><td class="num">{t["depth"]:.3f}</td>'
                    f'<td class="num">{t["energy"]:.3f}</td><td>{esc(t["center_element"])}{esc(t["center"])}</td>'
                    f'<td class="num">{esc(t["center_coordination"])}</td><td>{esc(t["kind"])}</td>'
                    f'<td class="num">{t["participation_ratio"]:.3f}</td><td class="num">{esc(t.get("spin", 0))}</td>'
                    f'</tr>\n')
    return f'<table id="traps"><tr>{head}</tr>\n{"".join(rows)}</table>\n'


def _bader_table(bader) -> str:
    rows = ''.join(f'<tr><td>{esc(row["element"])}</td><td class="num">{esc(row["n_atoms"])}</td>'
                   f'<td class="num">{row["dq_mean"]:+.3f}</td></tr>\n' for row in bader)
    return (f'<table id="bader"><tr><th>element</th><th>atoms</th><th>mean Δq / e</th></tr>\n{rows}</table>\n'
            '<p class="notes">Δq = Z<sub>val</sub> − N<sub>Bader</sub>: positive for atoms that gave electrons.</p>\n')


def report_page(report: dict) -> str:
    """The self-contained HTML page of one QD report (see the module docstring for ``report``)."""
    viewer_js = asset('3Dmol-min.js')
    licence = asset('3Dmol-LICENSE.txt')
    parts = [_head(report['title']),
             f'<h1>{esc(report["title"])}</h1>\n',
             f'<table id="facts">\n{_fact_rows(report.get("facts", []))}</table>\n',
             '<h2>Provenance</h2>\n', _provenance(report.get('provenance', [])),
             '<h2>Structure and trap centres</h2>\n', _viewer(report),
             '<h2>Trap states</h2>\n', _trap_table(report.get('traps', []))]
    if report.get('bader'):
        parts += ['<h2>Bader charges per element</h2>\n', _bader_table(report['bader'])]
    if report.get('figures'):
        parts += ['<h2>Figures</h2>\n', _figures(report['figures'])]
    if report.get('notes'):
        parts.append('<h2>Not in this report</h2>\n<ul class="notes">'
                     + ''.join(f'<li>{esc(note)}</li>' for note in report['notes']) + '</ul>\n')
    parts += [f'<footer>Written by aiida-qdtraps. 3D view: 3Dmol.js {VIEWER_VERSION} (BSD-3-Clause), inlined.'
              f'<details><summary>3Dmol.js licence</summary><pre>{esc(licence)}</pre></details></footer>\n',
              f'<script>{viewer_js}</script>\n<script>{VIEWER_SCRIPT}</script>\n</body>\n</html>\n']
    return ''.join(parts)


INDEX_COLUMNS = ('QD', 'material', 'atoms', 'protocol', 'band gap / eV', 'hole traps', 'electron traps', 'report',
                 'recipe')


def index_page(title: str, rows: list[dict]) -> str:
    """A report index: one row per QD (``formula``, ``material``, ``n_atoms``, ``protocol``, ``band_gap``,
    ``n_hole_traps``, ``n_electron_traps``, ``href``, ``pk`` of its ``label_traps``, ``recipe`` text), linking to its
    report."""
    head = ''.join(f'<th>{esc(c)}</th>' for c in INDEX_COLUMNS)
    body = []
    for row in rows:
        gap = '' if row.get('band_gap') is None else f'{row["band_gap"]:.3f}'
        body.append(f'<tr class="qd-row"><td>{esc(row["formula"])}</td><td>{esc(row.get("material") or "")}</td>'
                    f'<td class="num">{esc(row["n_atoms"])}</td><td>{esc(row.get("protocol") or "")}</td>'
                    f'<td class="num">{gap}</td><td class="num">{esc(row["n_hole_traps"])}</td>'
                    f'<td class="num">{esc(row["n_electron_traps"])}</td>'
                    f'<td><a href="{esc(row["href"])}">{esc(row["href"])}</a> (label_traps {_pk(row["pk"])})</td>'
                    f'<td class="notes">{esc(row.get("recipe") or "")}</td></tr>\n')
    return (_head(title) + f'<h1>{esc(title)}</h1>\n<p>{len(rows)} QD report(s).</p>\n'
            f'<table id="index"><tr>{head}</tr>\n{"".join(body)}</table>\n'
            '<footer>Written by aiida-qdtraps.</footer>\n</body>\n</html>\n')
