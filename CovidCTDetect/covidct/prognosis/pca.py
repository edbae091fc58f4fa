"""Principal-component view of deep features (the COVID-19Net paper's feature visualisation)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from ..errors import DatasetError
from ..plotting import new_figure, save_png


def feature_pca(features: pd.DataFrame, components: int = 2) -> tuple[pd.DataFrame, np.ndarray]:
    """Standardise the feature columns (z-score) and project them on their first principal components.

    Returns ``(scores, explained)``: a DataFrame (same index, columns ``PC1``, ``PC2`` …) and the
    fraction of variance each component explains (scikit-learn ``PCA``).
    """
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    if len(features) < components + 1 or features.shape[1] < components:
        raise DatasetError(
            f"A PCA plot needs at least {components + 1} cases and {components} feature columns; "
            f"got {len(features)} cases and {features.shape[1]} columns."
        )
    scaled = StandardScaler().fit_transform(features.to_numpy(dtype=float))
    pca = PCA(n_components=components, random_state=0).fit(scaled)
    scores = pd.DataFrame(
        pca.transform(scaled), index=features.index, columns=[f"PC{i + 1}" for i in range(components)]
    )
    return scores, pca.explained_variance_ratio_


def plot_feature_pca(
    features: pd.DataFrame, groups: pd.Series, path: str | os.PathLike, title: str, colors: dict | None = None
) -> np.ndarray:
    """Scatter plot of the first two principal components, one colour per group (PNG).

    ``groups``: a label per case (same index as ``features``), e.g. class or risk group;
    ``colors``: optional group → matplotlib colour.
    Returns the explained-variance fractions of PC1 and PC2.
    """
    scores, explained = feature_pca(features)
    figure, axes = new_figure(5.5, 5.0)
    for i, name in enumerate(sorted(groups.astype(str).unique())):
        member = (groups.astype(str) == name).to_numpy()
        axes.scatter(
            scores["PC1"][member],
            scores["PC2"][member],
            s=18,
            alpha=0.8,
            color=(colors or {}).get(name, f"C{i}"),
            label=f"{name} (n={member.sum()})",
        )
    axes.set(
        title=title, xlabel=f"PC1 ({explained[0]:.0%} of variance)", ylabel=f"PC2 ({explained[1]:.0%} of variance)"
    )
    axes.legend(fontsize=8)
    save_png(figure, path)
    return explained
