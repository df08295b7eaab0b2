"""xgboost trap classifier, JSON models and t-SNE + HDBSCAN clustering on data with a known structure."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_qdtraps.analysis import classifier as clf

NAMES = tuple(f'x{k}' for k in range(12))


@pytest.fixture(scope='module')
def separable():
    """600 rows × 12 features, 6 % positives shifted by 3 σ along the first 3 features."""
    return clf.synthetic_dataset(n_samples=600, n_features=12, positive_fraction=0.06, seed=3, n_informative=3,
                                 shift=3.0)


@pytest.fixture(scope='module')
def trained(separable):
    X, y = separable
    return clf.train(X, y, NAMES, seed=0, cv_folds=3, permutation_repeats=3, n_estimators=60)


def test_metrics_of_a_separable_problem(separable, trained):
    _X, y = separable
    m = trained.metrics
    assert m['n_samples'] == 600 and m['n_positive'] == int(y.sum())
    assert np.sum(m['confusion_matrix']) == m['n_test'] == len(trained.test_index) == 120
    assert np.sum(m['confusion_matrix'][1]) == m['per_class']['trapping']['support'] == int(y[trained.test_index].sum())
    assert set(trained.train_index).isdisjoint(trained.test_index)
    assert m['scale_pos_weight'] == pytest.approx((y[trained.train_index] == 0).sum() / y[trained.train_index].sum())
    assert m['macro_f1'] > 0.8 and m['roc_auc'] > 0.95
    assert m['cross_validation']['folds'] == 3 and m['cross_validation']['mean_macro_f1'] > 0.7


def test_importances_rank_the_informative_features(trained):
    gain = trained.importances['gain']
    assert sum(gain.values()) == pytest.approx(1.0)
    top3 = sorted(gain, key=gain.get, reverse=True)[:3]
    assert set(top3) == {'x0', 'x1', 'x2'}
    permutation = trained.importances['permutation_mean']
    assert max(permutation, key=permutation.get) in {'x0', 'x1', 'x2'}
    assert clf.importance_plot(trained.importances)[:4] == b'\x89PNG'


def test_same_seed_same_model(separable, trained):
    X, y = separable
    again = clf.train(X, y, NAMES, seed=0, cv_folds=3, permutation_repeats=3, n_estimators=60)
    assert again.metrics['confusion_matrix'] == trained.metrics['confusion_matrix']
    assert clf.model_to_json(again.model) == clf.model_to_json(trained.model)


def test_json_model_round_trip(separable, trained):
    X, _ = separable
    content = clf.model_to_json(trained.model, {'feature_set': 'all'})
    assert content.lstrip().startswith(b'{')
    booster, meta = clf.model_from_json(content)
    assert meta == {'feature_set': 'all'}
    probability, predicted = clf.predict(booster, X[:50], NAMES)
    assert probability == pytest.approx(trained.model.predict_proba(X[:50])[:, 1], abs=1e-6)
    assert (predicted == trained.model.predict(X[:50])).all()
    with pytest.raises(ValueError, match='trained on features'):
        clf.predict(booster, X[:5], tuple(reversed(NAMES)))


def test_geometry_vs_all_comparison(separable):
    X, y = separable
    results = clf.compare_feature_sets(X, y, NAMES, {'all': NAMES, 'noise_only': NAMES[3:]}, cv_folds=0,
                                       permutation_repeats=1, n_estimators=40)
    assert results['all'].metrics['macro_f1'] > results['noise_only'].metrics['macro_f1'] + 0.2
    assert (results['all'].test_index == results['noise_only'].test_index).all()
    with pytest.raises(ValueError, match='not in the dataset'):
        clf.compare_feature_sets(X, y, NAMES, {'bad': ('nope',)})


@pytest.mark.parametrize('change, match', [
    (lambda X, y: (X, np.zeros_like(y)), 'single class'),
    (lambda X, y: (np.where(np.arange(X.shape[1]) == 4, np.nan, X), y), r"\['x4'\]"),
    (lambda X, y: (X[:, :5], y), 'shape'),
    (lambda X, y: (X, np.where(np.arange(len(y)) == 0, 1, 0)), 'has 1 samples'),
])
def test_useless_datasets_are_refused(separable, change, match):
    X, y = change(*separable)
    with pytest.raises(ValueError, match=match):
        clf.train(X, y, NAMES)


def test_clustering_finds_separated_groups():
    rng = np.random.default_rng(0)
    centres = np.array([[0] * 6, [8] * 6, [0, 8, 0, 8, 0, 8]], float)
    truth = np.repeat([0, 1, 2], 25)
    X = centres[truth] + rng.normal(scale=0.5, size=(75, 6))
    X = np.column_stack([X, np.ones(75)])  # a constant column is left out
    result = clf.cluster(X, [f'f{k}' for k in range(7)], perplexity=15, min_cluster_size=8)
    assert result.used_features == tuple(f'f{k}' for k in range(6))
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(truth, result.labels) > 0.9
    assert clf.embedding_plot(result)[:4] == b'\x89PNG'
    with pytest.raises(ValueError, match='at least 4 samples'):
        clf.cluster(X[:3], [f'f{k}' for k in range(7)])


def test_split_by_qd_keeps_every_qd_on_one_side(separable):
    """With groups (the QD of every atom) the test set and the CV folds hold whole QDs, and still both classes."""
    X, y = separable
    groups = np.repeat([f'qd{k}' for k in range(30)], 20)  # 30 QDs of 20 atoms
    result = clf.train(X, y, NAMES, seed=0, cv_folds=3, permutation_repeats=2, n_estimators=40, groups=groups)
    train_qds, test_qds = set(groups[result.train_index]), set(groups[result.test_index])
    assert train_qds.isdisjoint(test_qds) and len(train_qds | test_qds) == 30
    assert set(y[result.test_index]) == {0, 1} and set(y[result.train_index]) == {0, 1}
    m = result.metrics
    assert m['split'] == 'qd' and m['n_test_qds'] == len(test_qds)
    assert m['cross_validation']['by_group'] and m['cross_validation']['folds'] == 3
    assert clf.train(X, y, NAMES, seed=0, cv_folds=2, permutation_repeats=1, n_estimators=5).metrics['split'] == 'atom'


def test_split_by_qd_refuses_what_it_cannot_split(separable):
    X, y = separable
    one_qd_positives = np.where(y == 1, 'qd-with-traps', np.repeat([f'qd{k}' for k in range(30)], 20))
    with pytest.raises(ValueError, match=r'the positive samples come from 1 QD\(s\)'):
        clf.train(X, y, NAMES, groups=one_qd_positives)
    with pytest.raises(ValueError, match='needs at least 2 QDs, got 1'):
        clf.train(X, y, NAMES, groups=np.full(len(y), 'qd'))
    with pytest.raises(ValueError, match=r'groups must have one entry per sample \(600\)'):
        clf.train(X, y, NAMES, groups=['qd'])


def test_interpolation_subset_keeps_negatives_and_agreeing_positives():
    y = np.array([0, 1, 1, 1, 0, 1])
    source = np.array(['a', 'a', 'a', 'b', 'b', 'b'])
    atom = np.array([0, 1, 2, 1, 5, 7])
    cosines = {('a', 1): 0.95, ('a', 2): 0.5, ('b', 1): 0.7071, ('b', 7): None, ('c', 3): 0.99}
    keep, counts = clf.interpolation_subset(y, source, atom, cosines)
    assert keep.tolist() == [True, True, False, True, True, False]
    assert counts == {'n_positive': 4, 'kept': 2, 'disagree': 1, 'undefined': 1, 'no_cutout': 0, 'unmatched': 1}
    keep, counts = clf.interpolation_subset(y, source, atom, cosines, min_cosine=0.0)  # every defined orientation
    assert keep.tolist() == [True, True, True, True, True, False] and counts['kept'] == 3
    keep, counts = clf.interpolation_subset(y, source, atom, {('a', 1): 0.9})
    assert keep.tolist() == [True, True, False, False, True, False] and counts['no_cutout'] == 3


def test_interpolation_subset_refuses_bad_input():
    with pytest.raises(ValueError, match='min_cosine must be in'):
        clf.interpolation_subset([0, 1], ['a', 'a'], [0, 1], {}, min_cosine=1.5)
    with pytest.raises(ValueError, match='2 targets, 1 sources'):
        clf.interpolation_subset([0, 1], ['a'], [0, 1], {})
