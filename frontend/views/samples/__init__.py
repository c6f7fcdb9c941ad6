"""Compare-page view "Flagged samples" (SCIENCE.md sections 1 and 3).

A gallery of the test samples that pruning flagged: prediction flips (correct → wrong,
wrong → correct, wrong → other wrong), pruning-identified exemplars (PIE) and samples that
pruning made corruption-fragile, filterable and sortable by the largest geometric shifts
(margin, angle, length). It follows the page's class filter and the linked SELECTION (a
selection shows just the selected samples). Clicking a sample opens its detail under the
gallery, with its geometric attribution on demand.

- :mod:`~frontend.views.samples.gallery`: the counts, filters, pager and tiles.
- :mod:`~frontend.views.samples.detail`: the open sample and its attribution job.
- :mod:`~frontend.views.samples.common`: the comparison's data both read (the per-sample
  comparison table, ``GET /api/comparisons/{id}/table``, the columns the gallery needs, fetched
  once per (comparison, B)), and the tags and predictions both draw.
"""

from __future__ import annotations

import dash
from dash import dcc, html

from frontend.views.parts import view_section
from frontend.views.samples import detail, gallery
from frontend.views.samples.common import CTX, ID_OPEN, ID_SECTION, NAME, clear_cache, load_data

__all__ = ["CTX", "ID_SECTION", "NAME", "TITLE", "clear_cache", "load_data", "register", "section"]

TITLE = "Flagged samples"
EXPLANATION = (
    "The test samples pruning changed: prediction flips, pruning-identified exemplars (PIE: "
    "the pruned models' most common prediction differs from the originals'), samples that "
    "pruning made fragile to corruptions, and the largest shifts of the penultimate features. "
    "Click a sample for its details."
)


def section() -> html.Section:
    """The view's skeleton: counts, filters, the gallery with its pager and the detail panel."""
    return view_section(
        ID_SECTION, TITLE, EXPLANATION, *gallery.layout(), *detail.layout(), dcc.Store(id=ID_OPEN)
    )


def register(app: dash.Dash) -> None:
    """Attach the view's callbacks to ``app``."""
    gallery.register(app)
    detail.register(app)
