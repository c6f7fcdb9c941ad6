"""What the gallery and the sample detail share: the comparison's data (fetched once per
(comparison, B)), the open sample's store, and the tags and predictions both draw."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from dash import html

from frontend.client import (
    FLIP_CATEGORIES,
    ApiClient,
    Split,
)
from frontend.figures.formatting import model_label
from frontend.forms import query_int
from frontend.views import FetchCache, view_context
from frontend.views.parts import FLIP_WORDS, Kept, class_label, table_columns

NAME = "samples"
CTX = view_context(NAME)
ID_SECTION = "compare-samples"
ID_OPEN = "compare-samples-open"  # the open sample's index (None: none), in the URL as smp
TILE = "compare-samples-tile"  # pattern-matching id type of a gallery tile (or table row)
CACHE_SIZE = 8

CATEGORY_LABELS = FLIP_WORDS
TABLE_COLUMNS = tuple(
    "index label pred_a pred_b category pie d_margin d_angle d_length_z fragile_a fragile_b "
    "made_fragile nbr_jaccard".split()
)
NBR_COLUMN = "nbr_jaccard"  # neighbourhood kept (SCIENCE.md sect. 7); older comparisons lack it
NBR_LABEL = "Neighbourhood kept (Jaccard)"
NBR_HELP = (
    "Jaccard similarity of the sample's k nearest test samples in A's and in B's penultimate "
    "features (cosine): 1 = pruning kept its neighbourhood, 0 = tore it apart"
)


# data ---------------------------------------------------------------------------------------


@dataclass
class SamplesData(Kept):
    """What the gallery needs of one (comparison, B); the table is fetched on first use."""

    comparison_id: int
    b: int
    dataset_id: int
    split: str
    class_names: list[str]
    images: bool
    label_a: str
    label_b: str
    flip_counts: dict[str, int]
    a: int | None = None  # model A's id (for its download link)

    def class_name(self, value: Any) -> str:
        return class_label(self.class_names, value)

    def image_url(self, index: int) -> str | None:
        if not self.images:
            return None
        split: Split = "train" if self.split == "train" else "test"
        return ApiClient.dataset_image_path(self.dataset_id, split, int(index))

    @property
    def table(self) -> dict[str, np.ndarray] | None:
        """The table's columns, once :func:`fetch_table` has fetched them."""
        return self.kept.get("table")

    @property
    def has_neighbours(self) -> bool:
        """Whether the table has the neighbourhood change (comparisons computed before it
        do not)."""
        return self.table is not None and NBR_COLUMN in self.table

    @property
    def has_fragility(self) -> bool:
        return self.table is not None and "made_fragile" in self.table


def fetch_samples_data(client: ApiClient, comparison_id: int, b: int | None) -> SamplesData:
    """Class names, model labels, flip counts and whether the dataset has images.

    Raises:
        ApiError: the comparison view cannot be read.
    """
    view = client.get_comparison_view(comparison_id, b=b)
    dataset = view["dataset"]
    shape = dataset.get("input_shape") or []
    return SamplesData(
        comparison_id=int(comparison_id),
        b=int(view["model_b"]["id"]),
        dataset_id=int(dataset["id"]),
        split=str((view.get("analysis_a") or {}).get("split") or "test"),
        class_names=[str(c) for c in dataset["class_names"]],
        images=len(shape) in (2, 3),
        label_a=f"A: {view['model_a']['name']}",
        label_b=f"B: {model_label(view['model_b'])}",
        flip_counts={c: int((view.get("flip_counts") or {}).get(c, 0)) for c in FLIP_CATEGORIES},
        a=query_int(view["model_a"].get("id")),
    )


def fetch_table(client: ApiClient, data: SamplesData) -> dict[str, np.ndarray]:
    """The comparison table's gallery columns (those it has) as arrays, fetched once.

    Raises:
        ApiError: the table cannot be read (409 until the compare job has finished); not kept.
    """
    return data.once(
        "table", lambda: table_columns(client, data.comparison_id, data.b, TABLE_COLUMNS)
    )


_cache = FetchCache(fetch_samples_data, CACHE_SIZE)
load_data, clear_cache = _cache.load, _cache.clear  # fetched on first use


# components ---------------------------------------------------------------------------------


def category_tag(category: str) -> html.Span | None:
    """The flip category as a coloured pill (None when the prediction did not flip)."""
    if not category:
        return None
    label = CATEGORY_LABELS.get(category, category)
    return html.Span(label, className=f"flip-tag flip-{category}")


def sample_tags(row: Mapping[str, Any]) -> list[html.Span]:
    """Small tags of one table row: flip category, PIE, made fragile, Δmargin."""
    tags: list[html.Span] = []
    cat = category_tag(str(row.get("category") or ""))
    if cat is not None:
        tags.append(cat)
    if row.get("pie"):
        tags.append(
            html.Span(
                "PIE", className="flip-tag sample-tag-pie", title="pruning-identified exemplar"
            )
        )
    if row.get("made_fragile"):
        tags.append(
            html.Span(
                "fragile",
                className="flip-tag sample-tag-fragile",
                title="pruning made it fragile: B fails under a corruption A withstands",
            )
        )
    d = row.get("d_margin")
    if d is not None and math.isfinite(float(d)):
        kind = "neg" if float(d) < 0 else "pos"
        tags.append(
            html.Span(
                f"Δm {float(d):+.2f}",
                className=f"flip-tag sample-tag-dm sample-tag-dm-{kind}",
                title="change of the signed margin from A to B (B − A)",
            )
        )
    return tags


def prediction(side: str, name: str, correct: bool) -> html.Span:
    """One model's prediction: its tag ("A" or "B"), the class and ✓ or ✗."""
    return html.Span(
        [
            html.Span(side.upper(), className=f"tag tag-{side}"),
            name,
            html.Span(" ✓" if correct else " ✗", className="ok" if correct else "bad"),
        ],
        className="sample-pred",
    )
