"""The metrics as the seeds report them, and the model card's intervals and paired tests (emomon.training.metrics)."""

import math

import numpy as np
import pytest

from emomon.training.metrics import (INTERVAL_METRICS, _figures_from_confusions, bootstrap_interval,
                                   classification_metrics, confusion_matrix, mcnemar, per_group_accuracy)

CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


def _speakers(accuracies, clips=60, seed=0):
    """Labels, predictions and speaker ids: speaker i gets ``accuracies[i]`` of its clips right (exactly)."""
    rng = np.random.default_rng(seed)
    y, pred, spk = [], [], []
    for s, acc in enumerate(accuracies):
        labels = rng.integers(0, len(CLASSES), clips)
        right = np.zeros(clips, bool)
        right[: int(round(acc * clips))] = True
        wrong = (labels + 1 + rng.integers(0, len(CLASSES) - 1, clips)) % len(CLASSES)
        y.append(labels)
        pred.append(np.where(right, labels, wrong))
        spk += [f"actor{s}"] * clips
    return np.concatenate(y), np.concatenate(pred), np.array(spk)


def test_metrics_by_hand():
    y = [0, 0, 0, 1, 1, 2]
    p = [0, 0, 1, 1, 2, 2]
    m = classification_metrics(y, p, CLASSES[:3])
    assert m.accuracy == pytest.approx(4 / 6)
    # class 0: P 1, R 2/3, F1 0.8; class 1: P 1/2, R 1/2; class 2: P 1/2, R 1 -> F1 2/3
    assert m.weighted_f1 == pytest.approx((3 * 0.8 + 2 * 0.5 + 1 * (2 / 3)) / 6)
    assert m.uar == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert m.confusion == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_stacked_figures_equal_the_single_metrics():
    rng = np.random.default_rng(3)
    cms = []
    for _ in range(5):
        y = rng.integers(0, 5, 200)  # classes 5 and 6 absent: they must weigh nothing
        p = np.where(rng.random(200) < 0.5, y, rng.integers(0, 7, 200))
        cms.append(confusion_matrix(y, p, 7))
        m = classification_metrics(y, p, CLASSES)
        for metric in INTERVAL_METRICS:
            assert _figures_from_confusions(cms[-1])[metric] == pytest.approx(getattr(m, metric))
    stacked = _figures_from_confusions(np.stack(cms))["weighted_f1"]
    assert stacked.shape == (5,)


def test_interval_brackets_the_estimate_and_is_reproducible():
    y, pred, spk = _speakers([0.6, 0.7, 0.75, 0.8, 0.85, 0.9])
    for metric in INTERVAL_METRICS:
        iv = bootstrap_interval(y, pred, CLASSES, spk, metric=metric)
        assert iv.estimate == pytest.approx(getattr(classification_metrics(y, pred, CLASSES), metric))
        assert iv.low < iv.estimate < iv.high
        assert iv.groups == 6 and iv.level == 0.95
        assert bootstrap_interval(y, pred, CLASSES, spk, metric=metric) == iv
    assert bootstrap_interval(y, pred, CLASSES, spk, seed=1) != bootstrap_interval(y, pred, CLASSES, spk, seed=0)
    narrower = bootstrap_interval(y, pred, CLASSES, spk, level=0.5)
    wider = bootstrap_interval(y, pred, CLASSES, spk)
    assert wider.low < narrower.low and narrower.high < wider.high


def test_resampling_speakers_is_wider_than_resampling_clips_when_speakers_differ():
    """The reason for grouping: six actors of very different difficulty are six draws, not 360."""
    y, pred, spk = _speakers([0.45, 0.55, 0.75, 0.85, 0.95, 1.0])
    by_speaker = bootstrap_interval(y, pred, CLASSES, spk)
    by_clip = bootstrap_interval(y, pred, CLASSES)
    assert by_clip.groups == len(y) and by_speaker.groups == 6
    assert by_speaker.estimate == pytest.approx(by_clip.estimate)
    assert (by_speaker.high - by_speaker.low) > 1.5 * (by_clip.high - by_clip.low)
    # speakers alike: the first stage adds little, and the second (clips within speakers) keeps the clips' uncertainty
    y, pred, spk = _speakers([0.75] * 6)
    alike, clips = bootstrap_interval(y, pred, CLASSES, spk), bootstrap_interval(y, pred, CLASSES)
    assert alike.low < 0.75 < alike.high
    assert 0.8 < (alike.high - alike.low) / (clips.high - clips.low) < 1.6


def test_perfect_and_identical_outputs():
    y, _, spk = _speakers([0.5] * 4)
    perfect = bootstrap_interval(y, y, CLASSES, spk, metric="weighted_f1")
    assert (perfect.estimate, perfect.low, perfect.high) == (1.0, 1.0, 1.0)
    _, pred, _ = _speakers([0.5] * 4, seed=4)
    same = bootstrap_interval(y, pred, CLASSES, spk, baseline=pred)
    assert (same.estimate, same.low, same.high) == (0.0, 0.0, 0.0)


def test_paired_difference_is_computed_on_the_same_resamples():
    """Two outputs that disagree on a few clips: the paired difference is far better known than either figure."""
    y, worse, spk = _speakers([0.5, 0.6, 0.7, 0.8, 0.9, 0.95], seed=5)
    better = worse.copy()
    fixed = np.flatnonzero(worse != y)[::10]  # a tenth of the errors put right
    better[fixed] = y[fixed]
    diff = bootstrap_interval(y, better, CLASSES, spk, baseline=worse)
    assert diff.estimate == pytest.approx(len(fixed) / len(y))
    assert 0 < diff.low < diff.estimate < diff.high
    one = bootstrap_interval(y, better, CLASSES, spk)
    assert (diff.high - diff.low) < 0.5 * (one.high - one.low)
    flipped = bootstrap_interval(y, worse, CLASSES, spk, baseline=better)
    assert flipped.estimate == pytest.approx(-diff.estimate)
    assert flipped.high < 0


def test_a_difference_of_a_few_clips_is_not_called_certain_with_few_speakers():
    """Six speakers, each losing at most one clip of 60 to the other output: every speaker points the same way, so
    resampling speakers alone would give an interval of almost no width; clips resampled within speakers do not."""
    y, a, spk = _speakers([0.75] * 6, seed=6)
    b = a.copy()
    for s in range(0, 6, 2):  # three speakers: one clip right in b that a got wrong
        i = np.flatnonzero((spk == f"actor{s}") & (a != y))[0]
        b[i] = y[i]
    diff = bootstrap_interval(y, b, CLASSES, spk, baseline=a)
    assert diff.estimate == pytest.approx(3 / 360)
    assert diff.low <= 0 < diff.high


def test_mcnemar_exact_values():
    y = np.zeros(12, int)
    a = np.array([0] * 4 + [1] * 8)  # right on the first 4
    b = np.array([1] * 4 + [0] * 8)  # right on the other 8
    t = mcnemar(y, a, b)
    assert (t.only_a, t.only_b) == (4, 8)
    assert t.p_value == pytest.approx(2 * sum(math.comb(12, i) for i in range(5)) / 2**12)  # 0.3877
    assert mcnemar(y, b, a).p_value == pytest.approx(t.p_value)
    assert mcnemar(np.zeros(10, int), np.zeros(10, int), np.ones(10, int)).p_value == pytest.approx(2 / 2**10)
    same = mcnemar(y, a, a)
    assert (same.only_a, same.only_b, same.p_value) == (0, 0, 1.0)
    balanced = mcnemar(np.zeros(2, int), [0, 1], [1, 0])
    assert balanced.p_value == 1.0


def test_per_group_accuracy():
    y, pred, spk = _speakers([0.5, 0.75, 1.0], clips=20)
    assert per_group_accuracy(y, pred, spk) == {"actor0": 0.5, "actor1": 0.75, "actor2": 1.0}


@pytest.mark.parametrize("kwargs, message", [
    ({"metric": "macro_f1"}, "metric must be one of"),
    ({"level": 1.0}, "level must lie"),
    ({"groups": ["a"]}, "one entry per example"),
    ({"baseline": [0]}, "one entry per example"),
])
def test_bad_interval_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        bootstrap_interval([0, 1, 2], [0, 1, 1], CLASSES, **kwargs)


def test_empty_set_is_refused():
    with pytest.raises(ValueError, match="no examples"):
        bootstrap_interval([], [], CLASSES)


# ------------------------------------------------------------------------------------------ the scorings' intervals
def _scored(y, pred, items, units):
    from emomon.training.evaluation import Scored
    from emomon.training.loop import Evaluation

    y, pred = np.asarray(y), np.asarray(pred)
    return Scored(Evaluation(classification_metrics(y, pred, CLASSES)), y, {"fused": pred}, list(items), np.asarray(units))


def test_evaluation_units():
    from emomon.training.data import Item
    from emomon.training.evaluation import evaluation_unit

    assert evaluation_unit(Item("ravdess:03-01-05-01-01-01-19", "ravdess", "angry", "19")) == "speaker:ravdess:19"
    # MELD's speakers are characters heard all through the test set: its sentences are grouped by dialogue
    a = evaluation_unit(Item("meld:test:12_3", "meld", "joy", "Joey", text="Hi"))
    assert a == evaluation_unit(Item("meld:test:12_7", "meld", "anger", "Ross", text="No")) == "dialogue:meld:test:12"
    assert a != evaluation_unit(Item("meld:test:121_3", "meld", "joy", "Joey", text="Hi"))


def test_scored_interval_pairs_by_item_and_falls_back_to_examples_for_one_speaker():
    y, good, spk = _speakers([0.9, 0.8, 0.7, 0.95], clips=40, seed=7)
    _, bad, _ = _speakers([0.6, 0.5, 0.4, 0.65], clips=40, seed=7)
    items = [f"clip{i}" for i in range(len(y))]
    full = _scored(y, good, items, spk)
    assert full.interval() == bootstrap_interval(y, good, CLASSES, spk)
    # the baseline covers every other clip, in reverse order: the difference is taken on the shared clips, matched by item
    keep = np.arange(0, len(y), 2)[::-1]
    half = _scored(y[keep], bad[keep], [items[i] for i in keep], spk[keep])
    diff = full.interval(baseline=half)
    shared = np.arange(0, len(y), 2)
    assert diff == bootstrap_interval(y[shared], good[shared], CLASSES, spk[shared], baseline=bad[shared])
    assert diff.estimate > 0.2
    one = _scored(y[:40], good[:40], items[:40], spk[:40])
    iv = one.interval()
    assert iv.groups == 40 and iv.low < iv.estimate < iv.high  # one speaker: its clips resampled, not a zero-width interval


def test_scored_mcnemar_matches_items_and_refuses_other_labels():
    y, a, spk = _speakers([0.6, 0.7], clips=30, seed=8)
    _, b, _ = _speakers([0.8, 0.9], clips=30, seed=8)
    items = [f"clip{i}" for i in range(len(y))]
    order = np.random.default_rng(0).permutation(len(y))  # the other scoring lists the same clips in another order
    sa = _scored(y, a, items, spk)
    sb = _scored(y[order], b[order], [items[i] for i in order], spk[order])
    assert sa.mcnemar(sb) == mcnemar(y, a, b)
    relabelled = _scored((y[order] + 1) % len(CLASSES), b[order], [items[i] for i in order], spk[order])
    with pytest.raises(ValueError, match="different labels"):
        sa.mcnemar(relabelled)


def test_average_scorings_is_the_mean_of_probabilities_on_shared_items():
    from emomon.training.evaluation import average_scorings

    y = np.array([0, 1, 2])
    pa = np.array([[0.6, 0.4, 0.0, 0, 0, 0, 0], [0.5, 0.4, 0.1, 0, 0, 0, 0], [0.0, 0.0, 1.0, 0, 0, 0, 0]])
    pb = np.array([[0.0, 0.0, 1.0, 0, 0, 0, 0], [0.0, 0.9, 0.1, 0, 0, 0, 0], [0.3, 0.7, 0.0, 0, 0, 0, 0]])
    a = _scored(y, pa.argmax(1), ["x", "y", "z"], ["s1", "s1", "s2"])
    a.probs = pa
    # b lists its items in another order and has one that a lacks
    b = _scored(np.array([1, 0, 3]), pb[[1, 0, 2]].argmax(1), ["y", "x", "w"], ["s1", "s1", "s3"])
    b.probs = np.stack([pb[1], pb[0], pb[2]])
    both = average_scorings(a, b)
    assert both.items == ["x", "y"]
    np.testing.assert_allclose(both.probs, (pa[:2] + pb[:2]) / 2)
    # x: A says 0 (0.6), B says 2 (1.0): the mean (0.3, 0.2, 0.5) says 2; y: the mean (0.25, 0.65, 0.1) says 1
    assert both.pred["fused"].tolist() == [2, 1]
    assert both.fused.accuracy == 0.5 and both.units.tolist() == ["s1", "s1"]
    b.probs = None
    with pytest.raises(ValueError, match="probabilities"):
        average_scorings(a, b)
