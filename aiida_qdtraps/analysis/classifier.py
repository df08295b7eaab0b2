"""Trap-centre classifier and clustering (pure; no AiiDA): xgboost gradient-boosted trees, t-SNE + HDBSCAN.

Follows Alexander et al. ("Separating Trapping and Inert P-4c", "Clustering"):

* **Classifier.** ``xgboost.XGBClassifier`` (the authors' released model: 200 trees, depth 3, learning rate 0.1),
  class imbalance through ``scale_pos_weight = n_negative / n_positive``, fixed seeds; a stratified train/test split
  (80/20) and stratified k-fold cross-validation on the training part; metrics: macro-F1, per-class precision and
  recall, confusion matrix (rows = true bulk/trapping, columns = predicted), ROC-AUC; feature importances by
  xgboost *gain* and by *permutation* of the test set (mean decrease of macro-F1, scikit-learn).
  :func:`compare_feature_sets` trains the geometry-only and the all-features models side by side on the same split.
* **Clustering** of the positive class: features standardised (columns constant over the samples and the QD-level
  features dropped, as the paper does), PCA-initialised t-SNE to 2-D (perplexity 20, lowered to ``(n − 1) / 3`` for
  small sets), then HDBSCAN on the embedding (label −1 = noise).
* **Models** are saved as xgboost JSON (never pickles); the feature names and our metadata travel inside the JSON
  (booster attribute ``qdtraps``) and are checked on prediction.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field

import numpy as np

#: Default hyper-parameters (Alexander et al.'s released GBT).
DEFAULT_HYPERPARAMETERS = {'n_estimators': 200, 'max_depth': 3, 'learning_rate': 0.1}
CLASS_NAMES = ('bulk', 'trapping')


def check_dataset(X: np.ndarray, y: np.ndarray, names, min_per_class: int = 2) -> None:
    """Refuse a dataset that would give a silently useless model.

    :raises ValueError: shapes that disagree, non-finite (missing) features (naming the columns), targets other than
        0/1, a single class, or fewer than ``min_per_class`` samples of a class.
    """
    X, y = np.asarray(X, dtype=float), np.asarray(y)
    if X.ndim != 2 or X.shape[1] != len(names):
        raise ValueError(f'the feature matrix has shape {X.shape} but {len(names)} feature names were given')
    if len(y) != len(X):
        raise ValueError(f'{len(y)} targets for {len(X)} samples')
    bad = [names[j] for j in np.flatnonzero(~np.isfinite(X).all(axis=0))]
    if bad:
        raise ValueError(f'missing (non-finite) values in features {bad}')
    classes, counts = np.unique(y, return_counts=True)
    if not set(classes.tolist()) <= {0, 1}:
        raise ValueError(f'targets must be 0 (bulk) or 1 (trapping), got {sorted(classes.tolist())}')
    if len(classes) < 2:
        raise ValueError(f'the dataset has a single class ({CLASS_NAMES[int(classes[0])] if len(classes) else "none"}'
                         f', {len(y)} samples): a classifier cannot be trained')
    if counts.min() < min_per_class:
        raise ValueError(f'class {CLASS_NAMES[int(classes[np.argmin(counts)])]} has {counts.min()} samples; at least '
                         f'{min_per_class} are needed for a stratified split')


def make_classifier(y_train: np.ndarray, seed: int = 0, **hyperparameters):
    """An ``XGBClassifier`` with ``scale_pos_weight = n_negative / n_positive`` of ``y_train`` and a fixed seed."""
    from xgboost import XGBClassifier

    params = {**DEFAULT_HYPERPARAMETERS, **hyperparameters}
    n_pos = int(np.sum(y_train == 1))
    return XGBClassifier(**params, scale_pos_weight=(len(y_train) - n_pos) / max(n_pos, 1), random_state=seed,
                         n_jobs=1, tree_method='hist', eval_metric='logloss')


def classification_metrics(y_true, y_pred, y_score=None) -> dict:
    """macro-F1, per-class precision / recall / F1, confusion matrix and ROC-AUC (``None`` with one class)."""
    from sklearn.metrics import (
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=[0, 1], zero_division=0)
    auc = None
    if y_score is not None and len(np.unique(y_true)) == 2:
        auc = float(roc_auc_score(y_true, y_score))
    return {'macro_f1': float(f1_score(y_true, y_pred, average='macro', labels=[0, 1], zero_division=0)),
            'per_class': {name: {'precision': float(precision[k]), 'recall': float(recall[k]), 'f1': float(f1[k]),
                                 'support': int(support[k])} for k, name in enumerate(CLASS_NAMES)},
            'confusion_matrix': confusion_matrix(y_true, y_pred, labels=[0, 1]).tolist(), 'roc_auc': auc}


@dataclass
class TrainResult:
    """A trained model and its evaluation."""

    model: object
    feature_names: tuple[str, ...]
    metrics: dict
    importances: dict
    train_index: np.ndarray
    test_index: np.ndarray
    extra: dict = field(default_factory=dict)


def _group_split(y: np.ndarray, groups: np.ndarray, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train/test rows with every group (QD) wholly on one side, both classes on both sides (StratifiedGroupKFold)."""
    from sklearn.model_selection import StratifiedGroupKFold

    n_groups = len(np.unique(groups))
    n_splits = min(max(2, round(1 / test_size)), n_groups)
    if n_groups < 2:
        raise ValueError(f'splitting by QD needs at least 2 QDs, got {n_groups}; use split="atom"')
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for train_index, test_index in splitter.split(np.zeros(len(y)), y, groups):
        if len(np.unique(y[train_index])) == 2 and len(np.unique(y[test_index])) == 2:
            return train_index, test_index
    positive_groups = len(np.unique(groups[y == 1]))
    raise ValueError(f'cannot split {n_groups} QDs so that both sides hold both classes (the positive samples come '
                     f'from {positive_groups} QD(s)); add QDs or use split="atom"')


def train(X: np.ndarray, y: np.ndarray, names, seed: int = 0, test_size: float = 0.2, cv_folds: int = 5,
          permutation_repeats: int = 10, groups=None, **hyperparameters) -> TrainResult:
    """Stratified split, cross-validation on the training part, fit, test metrics and importances.

    :param test_size: fraction of samples in the test set (0 < test_size < 1).
    :param cv_folds: stratified folds (lowered to the minority count of the training set; skipped below 2).
    :param groups: optional group of every sample (the QD it comes from). Then no group is split: the test set and
        every cross-validation fold hold whole QDs (``StratifiedGroupKFold``), so the metrics say how the model does
        on QDs it has not seen. Without groups, atoms are split independently (atoms of one QD on both sides).
    """
    from sklearn.inspection import permutation_importance
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, train_test_split

    names = tuple(names)
    X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=int)
    if not 0 < test_size < 1:
        raise ValueError(f'test_size must be in (0, 1), got {test_size}')
    check_dataset(X, y, names)
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != y.shape:
            raise ValueError(f'groups must have one entry per sample ({len(y)}), got shape {groups.shape}')
        train_index, test_index = _group_split(y, groups, test_size, seed)
    else:
        index = np.arange(len(y))
        n_test = max(round(test_size * len(y)), 2)
        train_index, test_index = train_test_split(index, test_size=n_test, stratify=y, random_state=seed)

    cv = {'folds': 0, 'macro_f1': [], 'skipped': None, 'by_group': groups is not None}
    folds = min(cv_folds, int(np.bincount(y[train_index], minlength=2).min()))
    if groups is not None:  # every fold needs a QD with a positive sample in it
        folds = min(folds, len(np.unique(groups[train_index][y[train_index] == 1])))
    if folds >= 2:
        if groups is None:
            splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(
                X[train_index], y[train_index])
        else:
            splits = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed).split(
                X[train_index], y[train_index], groups[train_index])
        for fit_rows, val_rows in splits:
            rows, val = train_index[fit_rows], train_index[val_rows]
            if len(np.unique(y[rows])) < 2:  # a group split can leave a fold's training part with one class
                continue
            model = make_classifier(y[rows], seed, **hyperparameters).fit(X[rows], y[rows])
            cv['macro_f1'].append(classification_metrics(y[val], model.predict(X[val]))['macro_f1'])
        cv['folds'] = len(cv['macro_f1'])
    else:
        cv['skipped'] = (f'the training set has {folds} sample(s) (or QDs with samples) of its minority class; '
                         'cross-validation needs 2')
    cv['mean_macro_f1'] = float(np.mean(cv['macro_f1'])) if cv['macro_f1'] else None

    model = make_classifier(y[train_index], seed, **hyperparameters).fit(X[train_index], y[train_index])
    model.get_booster().feature_names = list(names)
    score = model.predict_proba(X[test_index])[:, 1]
    metrics = classification_metrics(y[test_index], (score >= 0.5).astype(int), score)
    metrics['train'] = classification_metrics(y[train_index], model.predict(X[train_index]))
    metrics.update(cross_validation=cv, n_samples=len(y), n_positive=int(y.sum()), n_train=len(train_index),
                   n_test=len(test_index), n_features=len(names), seed=seed,
                   split='qd' if groups is not None else 'atom',
                   n_test_qds=int(len(np.unique(groups[test_index]))) if groups is not None else None,
                   scale_pos_weight=float(model.get_params()['scale_pos_weight']),
                   hyperparameters={**DEFAULT_HYPERPARAMETERS, **hyperparameters})

    gain = model.get_booster().get_score(importance_type='gain')
    total = sum(gain.values()) or 1.0
    permutation = permutation_importance(model, X[test_index], y[test_index], scoring='f1_macro',
                                         n_repeats=permutation_repeats, random_state=seed, n_jobs=1)
    importances = {'gain': {name: float(gain.get(name, 0.0) / total) for name in names},
                   'permutation_mean': dict(zip(names, map(float, permutation.importances_mean))),
                   'permutation_std': dict(zip(names, map(float, permutation.importances_std)))}
    return TrainResult(model, names, metrics, importances, train_index, test_index)


def compare_feature_sets(X: np.ndarray, y: np.ndarray, names, subsets: dict[str, tuple[str, ...]], seed: int = 0,
                         **kwargs) -> dict[str, TrainResult]:
    """Train one model per named feature subset on the same split (same seed): e.g. geometry-only vs all."""
    names = tuple(names)
    missing = {key: sorted(set(sub) - set(names)) for key, sub in subsets.items() if set(sub) - set(names)}
    if missing:
        raise ValueError(f'feature subsets name features not in the dataset: {missing}')
    return {key: train(X[:, [names.index(n) for n in sub]], y, sub, seed=seed, **kwargs)
            for key, sub in subsets.items()}


#: Cosine of 45°: Alexander et al.'s cut-off for a cutout HOMO that agrees with the QD's trap orbital.
AGREEMENT_COSINE = 0.7071


def interpolation_subset(y: np.ndarray, source: np.ndarray, atom: np.ndarray,
                         cosines: dict[tuple[str, int], float | None],
                         min_cosine: float = AGREEMENT_COSINE) -> tuple[np.ndarray, dict]:
    """Rows of a dataset kept when the positives are restricted to the trap centres a cutout interpolation explains
    (Alexander et al. retrain on "the set of structural trap states for which the orbital orientation metric is well
    defined"): every negative row stays; a positive row stays only if its centre has a cutout whose orientation
    cosine with the QD's trap orbital is at least ``min_cosine``.

    :param source: per row, the labelling it comes from (``source_uuid``); ``atom``: per row, the atom index.
    :param cosines: ``(source, atom) → cosine`` of every interpolated centre; None where the orientation is not
        defined (a degenerate cutout HOMO or a trap state mixed from several MOs).
    :returns: a boolean mask over the rows and the counts ``n_positive``, ``kept``, ``disagree`` (cosine below the
        cut-off), ``undefined`` (no orientation to compare), ``no_cutout`` (positives that were not interpolated) and
        ``unmatched`` (cutouts of no positive row).
    :raises ValueError: a cut-off outside [0, 1] or arrays of different lengths.
    """
    y, source, atom = np.asarray(y), np.asarray(source).astype(str), np.asarray(atom, dtype=int)
    if not 0.0 <= min_cosine <= 1.0:
        raise ValueError(f'min_cosine must be in [0, 1] (|cos| of an angle), got {min_cosine}')
    if not len(y) == len(source) == len(atom):
        raise ValueError(f'{len(y)} targets, {len(source)} sources and {len(atom)} atom indices')
    keep = y == 0
    disagree = undefined = no_cutout = 0
    positives = set()
    for row in np.flatnonzero(y == 1):
        key = (source[row], int(atom[row]))
        positives.add(key)
        if key not in cosines:
            no_cutout += 1
        elif (cosine := cosines[key]) is None:
            undefined += 1
        elif cosine >= min_cosine:
            keep[row] = True
        else:
            disagree += 1
    counts = {'n_positive': int((y == 1).sum()), 'kept': int(keep[y == 1].sum()), 'disagree': disagree,
              'undefined': undefined, 'no_cutout': no_cutout, 'unmatched': len(set(cosines) - positives)}
    return keep, counts


def model_to_json(model, metadata: dict | None = None) -> bytes:
    """The model as xgboost JSON bytes, with ``metadata`` in the booster attribute ``qdtraps``."""
    import os
    import tempfile

    booster = model.get_booster() if hasattr(model, 'get_booster') else model
    booster.set_attr(qdtraps=json.dumps(metadata or {}))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'model.json')
        booster.save_model(path)
        with open(path, 'rb') as handle:
            return handle.read()


def model_from_json(content: bytes | str):
    """``(booster, metadata)`` from xgboost JSON (bytes or text)."""
    import xgboost

    raw = content.encode() if isinstance(content, str) else content
    booster = xgboost.Booster()
    booster.load_model(bytearray(raw))
    return booster, json.loads(booster.attr('qdtraps') or '{}')


def predict(booster, X: np.ndarray, names, threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """``(probability of trapping, 0/1 prediction)`` of a loaded booster; the feature names must match its own."""
    import xgboost

    names = list(names)
    if booster.feature_names is not None and list(booster.feature_names) != names:
        raise ValueError(f'the model was trained on features {booster.feature_names} but got {names}')
    X = np.asarray(X, dtype=float)
    bad = [names[j] for j in np.flatnonzero(~np.isfinite(X).all(axis=0))] if len(X) else []
    if bad:
        raise ValueError(f'missing (non-finite) values in features {bad}')
    probability = booster.predict(xgboost.DMatrix(X, feature_names=names))
    return probability, (probability >= threshold).astype(int)


@dataclass
class Clustering:
    """Result of :func:`cluster`."""

    embedding: np.ndarray        # (n, 2) t-SNE coordinates
    labels: np.ndarray           # (n,) HDBSCAN cluster, −1 = noise
    used_features: tuple[str, ...]
    perplexity: float
    min_cluster_size: int


def cluster(X: np.ndarray, names, perplexity: float = 20.0, min_cluster_size: int = 5, seed: int = 0,
            exclude: tuple[str, ...] = ()) -> Clustering:
    """PCA-initialised t-SNE of the standardised features, then HDBSCAN on the 2-D embedding.

    :param exclude: features to leave out (e.g. the QD-level ones); constant columns are always left out.
    :raises ValueError: fewer than 4 samples or no varying feature.
    """
    from sklearn.cluster import HDBSCAN
    from sklearn.manifold import TSNE
    from sklearn.preprocessing import StandardScaler

    X = np.asarray(X, dtype=float)
    names = tuple(names)
    if len(X) < 4:
        raise ValueError(f'clustering needs at least 4 samples, got {len(X)}')
    keep = [j for j, name in enumerate(names) if name not in exclude and np.ptp(X[:, j]) > 1e-12]
    if not keep:
        raise ValueError('no feature varies across the samples: nothing to cluster')
    Z = StandardScaler().fit_transform(X[:, keep])
    perplexity = float(min(perplexity, (len(X) - 1) / 3.0))
    embedding = TSNE(n_components=2, perplexity=perplexity, init='pca', random_state=seed).fit_transform(Z)
    size = int(max(2, min(min_cluster_size, len(X) // 2)))
    labels = HDBSCAN(min_cluster_size=size, copy=True).fit_predict(embedding)
    return Clustering(embedding, labels, tuple(names[j] for j in keep), perplexity, size)


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=110, bbox_inches='tight')
    plt.close(fig)
    return buffer.getvalue()


def importance_plot(importances: dict, top: int = 15, title: str = '') -> bytes:
    """PNG bar chart of the ``top`` features by gain, with permutation importances beside them."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    gain = importances['gain']
    order = sorted(gain, key=gain.get, reverse=True)[:top][::-1]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(order) + 1.2))
    y = np.arange(len(order))
    ax.barh(y + 0.2, [gain[n] for n in order], height=0.4, label='gain (fraction)')
    ax.barh(y - 0.2, [importances['permutation_mean'][n] for n in order], height=0.4,
            xerr=[importances['permutation_std'][n] for n in order], label='permutation (Δ macro-F1)')
    ax.set_yticks(y, order)
    ax.set_xlabel('importance')
    ax.legend(loc='lower right')
    ax.set_title(title)
    return _png(fig)


def embedding_plot(clustering: Clustering, title: str = '') -> bytes:
    """PNG scatter of the t-SNE embedding coloured by HDBSCAN cluster (grey = noise)."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for label in np.unique(clustering.labels):
        mask = clustering.labels == label
        ax.scatter(*clustering.embedding[mask].T, s=18, label='noise' if label < 0 else f'cluster {label}',
                   color='0.6' if label < 0 else None)
    ax.set_xlabel('t-SNE 1')
    ax.set_ylabel('t-SNE 2')
    ax.legend(fontsize=8)
    ax.set_title(title or f'PCA-initialised t-SNE (perplexity {clustering.perplexity:.1f}) + HDBSCAN')
    return _png(fig)


def synthetic_dataset(n_samples: int = 22_500, n_features: int = 42, positive_fraction: float = 0.025,
                      seed: int = 0, n_informative: int = 8, shift: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic imbalanced table as large as the paper's (22,500 × 42, 2.5 % positives) for benchmarks and tests.

    Positives are shifted by ``shift`` standard deviations along ``n_informative`` features (Gaussian noise
    otherwise).
    """
    if not 0 < positive_fraction < 1:
        raise ValueError(f'positive_fraction must be in (0, 1), got {positive_fraction}')
    rng = np.random.default_rng(seed)
    y = np.zeros(n_samples, dtype=int)
    y[rng.choice(n_samples, size=max(2, round(positive_fraction * n_samples)), replace=False)] = 1
    X = rng.normal(size=(n_samples, n_features))
    X[y == 1, :n_informative] += shift
    return X, y
