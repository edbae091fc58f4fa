"""Bootstrap confidence interval of the ROC AUC, vectorised over resamples.

The AUC equals the Mann-Whitney statistic: the probability that a random positive case scores
higher than a random negative one (ties count one half). A stratified bootstrap resample draws
``n_pos`` positives and ``n_neg`` negatives with replacement; with the multiplicities ``w_pos``
(B, n_pos) and ``w_neg`` (B, n_neg) of each case in B resamples,

    AUC_b = Σ_i w_pos[b, i] · (#sampled negatives below score_i + ½ #tied) / (n_pos · n_neg),

where the counts come from a cumulative sum of ``w_neg`` over the negatives sorted by score.
Memory and time are O(B · n): 2000 resamples of a few hundred cases take milliseconds. Each
resampled AUC equals ``sklearn.metrics.roc_auc_score`` on that resample (tested).
"""

from __future__ import annotations

import numpy as np


def bootstrap_roc_auc(labels, probabilities, n_resamples: int = 2000, seed: int = 0, chunk: int = 500) -> np.ndarray:
    """ROC AUC of ``n_resamples`` stratified bootstrap resamples, shape (n_resamples,).

    Positives and negatives are resampled separately (their counts stay fixed), with
    ``numpy.random.default_rng(seed)``, so the result is reproducible. ``chunk`` bounds memory.
    """
    labels = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    rng = np.random.default_rng(seed)
    out = np.empty(n_resamples)
    for start in range(0, n_resamples, chunk):
        b = min(chunk, n_resamples - start)
        w_pos = rng.multinomial(n_pos, np.full(n_pos, 1.0 / n_pos), size=b)
        w_neg = rng.multinomial(n_neg, np.full(n_neg, 1.0 / n_neg), size=b)
        out[start : start + b] = weighted_roc_auc(labels, probabilities, w_pos, w_neg)
    return out


def weighted_roc_auc(labels, probabilities, pos_weights: np.ndarray, neg_weights: np.ndarray) -> np.ndarray:
    """ROC AUC of B resamples given by case multiplicities, shape (B,).

    ``pos_weights`` (B, n_pos) and ``neg_weights`` (B, n_neg) count how often each positive and each
    negative case (in the order they appear in ``labels``) is drawn; each row must sum to > 0.
    """
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(probabilities, dtype=np.float64)
    positives, negatives = scores[labels], scores[~labels]
    order = np.argsort(negatives, kind="stable")
    negatives, neg_weights = negatives[order], np.asarray(neg_weights, dtype=np.float64)[:, order]
    pos_weights = np.asarray(pos_weights, dtype=np.float64)
    below = np.searchsorted(negatives, positives, side="left")  # sorted negatives strictly below each positive
    upto = np.searchsorted(negatives, positives, side="right")  # ... below or tied
    cum = np.zeros((len(neg_weights), len(negatives) + 1))
    np.cumsum(neg_weights, axis=1, out=cum[:, 1:])
    wins = cum[:, below] + 0.5 * (cum[:, upto] - cum[:, below])  # (B, n_pos)
    return (pos_weights * wins).sum(axis=1) / (pos_weights.sum(axis=1) * neg_weights.sum(axis=1))


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` percentile interval of bootstrap ``samples``."""
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(samples, [tail, 100.0 - tail])
    return float(low), float(high)
