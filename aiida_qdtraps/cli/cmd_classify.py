"""``qdtraps classify``: train the trap-centre classifier on a Group, predict on a QD, report a model."""

import pathlib

import click

from .root import cli


def _load():
    from aiida_qdtraps.profile import load_project_profile, profile_exists

    if not profile_exists():
        raise click.ClickException('the project profile does not exist yet: run `qdtraps setup` (or `make demo`).')
    load_project_profile()


def metrics_table(metrics: dict) -> str:
    """Plain-text table of a ``train_classifier`` metrics Dict (and its geometry-only comparison)."""
    rows = [('model', 'macro-F1', 'trap P', 'trap R', 'bulk P', 'bulk R', 'ROC-AUC', 'CV macro-F1')]
    models = [(metrics.get('feature_set', 'all'), metrics)]
    if 'geometry_only' in metrics:
        models.append(('geometry', metrics['geometry_only']))
    for name, m in models:
        cv = m.get('cross_validation', {}).get('mean_macro_f1')
        auc = m.get('roc_auc')
        rows.append((f"{name} ({m.get('n_features', '?')})", f"{m['macro_f1']:.3f}",
                     f"{m['per_class']['trapping']['precision']:.3f}", f"{m['per_class']['trapping']['recall']:.3f}",
                     f"{m['per_class']['bulk']['precision']:.3f}", f"{m['per_class']['bulk']['recall']:.3f}",
                     '-' if auc is None else f'{auc:.3f}', '-' if cv is None else f'{cv:.3f}'))
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    lines = ['  '.join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.append(f"samples {metrics['n_samples']} ({metrics['n_positive']} trapping), train {metrics['n_train']}, "
                 f"test {metrics['n_test']}; confusion matrix (rows true bulk/trapping): {metrics['confusion_matrix']}")
    return '\n'.join(lines)


@cli.group()
def classify():
    """Trap-centre classifier (xgboost) and clustering of trap centres (t-SNE + HDBSCAN)."""


@classify.command()
@click.argument('group')
@click.option('--geometry-only', is_flag=True, help='Train on the 21 geometry-only features.')
@click.option('--element', 'elements', multiple=True, default=('P',), show_default=True,
              help='Element(s) of the sample atoms (repeat the option for several).')
@click.option('--coordination', 'coordinations', multiple=True, type=int, default=(4,), show_default=True,
              help='Coordination number(s) of the sample atoms.')
@click.option('--any-coordination', is_flag=True, help='Sample atoms of every coordination.')
@click.option('--seed', type=int, default=0, show_default=True)
@click.option('--split', type=click.Choice(['qd', 'atom']), default='qd', show_default=True,
              help='qd: the test set and every CV fold hold whole QDs (metrics on unseen QDs); atom: atoms are split '
              'independently, so atoms of one QD can be on both sides.')
@click.option('--allow-mixed-protocols', is_flag=True,
              help='Accept QDs labelled with different protocols, SCF settings (grid, functional, basis) or geometry '
                   'sources (built / relaxed with other settings).')
@click.option('--cutouts', default=None, metavar='GROUP',
              help='Group of CutoutInterpolationWorkChain runs on these labelings: train a second model on the '
                   'positives whose cutout HOMO agrees with the QD trap orbital (Alexander et al.).')
@click.option('--min-cosine', type=float, default=None,
              help='Agreement cut-off of --cutouts (|cos| of the orientation angle) [default: 0.7071, 45°].')
def train(group, geometry_only, elements, coordinations, any_coordination, seed, split, allow_mixed_protocols,
          cutouts, min_cosine):
    """Train the classifier on the trap labelings in GROUP (a Group label) and cluster the trapping atoms."""
    _load()
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_qdtraps.workchains.classifier import TrapClassifierWorkChain

    inputs = {'group': orm.Str(group),
              'featurize': orm.Dict({'elements': list(elements),
                                     'coordinations': None if any_coordination else list(coordinations)}),
              'train': orm.Dict({'feature_set': 'geometry' if geometry_only else 'all', 'seed': seed, 'split': split}),
              'cluster': orm.Dict({'seed': seed}),
              'dataset': orm.Dict({'allow_mixed_protocols': allow_mixed_protocols})}
    if min_cosine is not None and cutouts is None:
        raise click.UsageError('--min-cosine needs --cutouts')
    if cutouts is not None:
        inputs['cutouts'] = orm.Str(cutouts)
        if min_cosine is not None:
            inputs['interpolation'] = orm.Dict({'min_cosine': min_cosine})
    results, node = run_get_node(TrapClassifierWorkChain, **inputs)
    if not node.is_finished_ok:
        raise click.ClickException(f'TrapClassifierWorkChain<{node.pk}> failed: {node.exit_message}')
    click.echo(metrics_table(results['metrics'].get_dict()))
    click.echo(f"model: SinglefileData<{results['model'].pk}> (xgboost JSON); "
               f"dataset ArrayData<{results['dataset'].pk}>; work chain <{node.pk}>")
    if 'clusters' in results:
        click.echo(f"clusters: {results['clusters'].base.attributes.get('cluster_sizes')} (label -1 = noise)")
    if 'interpolation_subset' in results:
        subset = results['interpolation_subset']
        counts = subset['dataset'].base.attributes.get('interpolation')
        click.echo(f"interpolation subset: {counts['kept']} of {counts['n_positive']} trapping rows kept (cosine >= "
                   f"{counts['min_cosine']:.4f}); model SinglefileData<{subset['model'].pk}>")
        click.echo(metrics_table(subset['metrics'].get_dict()))
    click.echo(f"report: qdtraps classify report {results['model'].pk}")


@classify.command()
@click.argument('model', type=int)
@click.argument('pk', type=int)
@click.option('--allow-mixed-protocols', is_flag=True,
              help="Predict even if the QD's SCF settings or geometry source differ from the training data's.")
def predict(model, pk, allow_mixed_protocols):
    """Apply the stored MODEL (pk of its JSON) to the QD labelled by PK (labeling work chain, pipeline or
    label_traps node)."""
    _load()
    from aiida import orm

    from aiida_qdtraps.workchains.classifier import (
        featurize,
        labeling_inputs,
        predict_traps,
    )

    model_node = orm.load_node(model)
    if not isinstance(model_node, orm.SinglefileData) or model_node.base.attributes.get('format', '') != 'xgboost-json':
        raise click.BadParameter(f'node {model} is not a trap-classifier model (xgboost JSON SinglefileData)')
    try:
        inputs = labeling_inputs(orm.load_node(pk))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    attrs = model_node.base.attributes
    inputs['parameters'] = orm.Dict({'elements': attrs.get('elements'), 'coordinations': attrs.get('coordinations')})
    features, node = featurize.run_get_node(**inputs)
    if not node.is_finished_ok:
        raise click.ClickException(node.exit_message)
    result, node = predict_traps.run_get_node(model_node, features['features'],
                                              orm.Dict({'allow_mixed_protocols': allow_mixed_protocols}))
    if not node.is_finished_ok:
        raise click.ClickException(node.exit_message.replace('pass allow_mixed_protocols=True',
                                                             'pass --allow-mixed-protocols'))
    predictions = result['predictions']
    symbols = inputs['atom_labels'].base.attributes.get('symbols')
    click.echo('atom  element  P(trapping)  predicted  labelled')
    for atom, prob, pred, lab in zip(*(predictions.get_array(n) for n in ('atom_index', 'probability', 'predicted',
                                                                          'labelled'))):
        click.echo(f'{atom:<5d} {symbols[atom]:<8s} {prob:11.3f}  {"trapping" if pred else "bulk":9s}  '
                   f'{"trapping" if lab else "bulk"}')
    click.echo(f'predictions: ArrayData<{predictions.pk}>')


@classify.command()
@click.argument('model', type=int)
@click.option('--output-dir', type=click.Path(file_okay=False, path_type=pathlib.Path), default=None,
              help='Where to write the figures (default: ./classifier_<MODEL>).')
def report(model, output_dir):
    """Metrics table of the stored MODEL and the paths of its figures (importances, clusters)."""
    _load()
    from aiida import orm

    node = orm.load_node(model)
    creator = node.creator
    if creator is None or creator.process_label != 'train_classifier':
        raise click.BadParameter(f'node {model} was not made by train_classifier')
    outputs = creator.outputs
    click.echo(metrics_table(outputs.metrics.get_dict()))
    gain = outputs.importances['gain']
    top = sorted(gain, key=gain.get, reverse=True)[:5]
    click.echo('top features by gain: ' + ', '.join(f'{name} {gain[name]:.3f}' for name in top))
    output_dir = output_dir or pathlib.Path(f'classifier_{model}')
    output_dir.mkdir(parents=True, exist_ok=True)
    figures = {'importance_plot': outputs.importance_plot}
    qb = orm.QueryBuilder()
    qb.append(orm.ArrayData, filters={'id': creator.inputs.dataset.pk}, tag='dataset')
    qb.append(orm.CalcFunctionNode, with_incoming='dataset', filters={'attributes.process_label': 'cluster_traps'},
              tag='cluster')
    qb.append(orm.SinglefileData, with_incoming='cluster', project='*')
    qb.order_by({orm.SinglefileData: {'id': 'desc'}})
    cluster_plot = qb.first(flat=True)
    if cluster_plot is not None:
        figures['cluster_plot'] = cluster_plot
    for name, figure in figures.items():
        path = output_dir / f'{name}.png'
        path.write_bytes(figure.get_content('rb'))
        click.echo(f'{name}: {path}')
