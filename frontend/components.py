"""Small Dash component builders shared by the pages (notices, tables, cards)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dash import dcc, html

from frontend.client import ApiError, ApiUnreachableError


def notice(
    title: str,
    body: Sequence[Any] | str | None = None,
    *,
    kind: str = "info",
    link_home: bool = False,
    notice_id: str | None = None,
) -> html.Div:
    """A boxed message: an empty state, a not-found or an error.

    Args:
        title: the headline.
        body: text or components under the headline.
        kind: "info", "warning" or "error"; selects the CSS class ``notice-<kind>``.
        link_home: add a link back to the home page.
        notice_id: optional component id.
    """
    children: list[Any] = [html.Strong(title)]
    if body:
        children.append(html.P(body if isinstance(body, str) else list(body)))
    if link_home:
        children.append(html.P(dcc.Link("← Back to home", href="/")))
    kwargs: dict[str, Any] = {"className": f"notice notice-{kind}"}
    if notice_id is not None:
        kwargs["id"] = notice_id
    return html.Div(children, **kwargs)


def api_error_notice(
    exc: ApiError, what: str, *, link_home: bool = False, notice_id: str | None = None
) -> html.Div:
    """Explain a failed API call without a traceback.

    Args:
        exc: the error raised by the client.
        what: what was being loaded, e.g. "the comparison".
        link_home: add a link back to the home page.
        notice_id: optional component id.
    """
    if isinstance(exc, ApiUnreachableError):
        return notice(
            "Cannot reach the PruneScope API",
            [
                f"Could not load {what}: {exc.detail}. Is ",
                html.Code("prunescope serve"),
                " running? Reload the page once it is.",
            ],
            kind="error",
            link_home=link_home,
            notice_id=notice_id,
        )
    return notice(
        f"Could not load {what}",
        f"The API answered {exc.status}: {exc.detail}",
        kind="error",
        link_home=link_home,
        notice_id=notice_id,
    )


def empty_state(*parts: Any) -> html.P:
    """A muted paragraph saying a list is empty and what to do about it."""
    return html.P(list(parts), className="empty")


def data_table(
    header: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    table_id: str | None = None,
    row_class_names: Sequence[str | None] | None = None,
) -> html.Table:
    """A plain HTML table: one ``Th`` per header, one ``Tr`` in the body per row.

    Args:
        header: column titles.
        rows: cell contents, one sequence per row, each as long as ``header``.
        table_id: optional component id of the table.
        row_class_names: optional CSS class per row.

    Raises:
        ValueError: when a row's length differs from the header's.
    """
    body = []
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(f"row {i} has {len(row)} cells but the header has {len(header)}")
        tr_kwargs: dict[str, Any] = {}
        if row_class_names is not None and row_class_names[i]:
            tr_kwargs["className"] = row_class_names[i]
        body.append(html.Tr([html.Td(cell) for cell in row], **tr_kwargs))
    kwargs: dict[str, Any] = {"className": "data-table"}
    if table_id is not None:
        kwargs["id"] = table_id
    return html.Table(
        [html.Thead(html.Tr([html.Th(h) for h in header])), html.Tbody(body)], **kwargs
    )


def stat_card(
    title: str, value_a: str, value_b: str, delta: str | None = None, *, card_id: str | None = None
) -> html.Div:
    """A headline card: one metric of A and of B, and optionally the change.

    Args:
        title: the metric, e.g. "Accuracy".
        value_a: formatted value of the original model.
        value_b: formatted value of the pruned model.
        delta: formatted change from A to B, or None.
        card_id: optional component id.
    """
    children: list[Any] = [
        html.Div(title, className="card-title"),
        html.Div(
            [
                html.Div([html.Span("A", className="tag tag-a"), html.Span(value_a)]),
                html.Div([html.Span("B", className="tag tag-b"), html.Span(value_b)]),
            ],
            className="card-values",
        ),
    ]
    if delta is not None:
        children.append(html.Div(delta, className="card-delta"))
    kwargs: dict[str, Any] = {"className": "card stat-card"}
    if card_id is not None:
        kwargs["id"] = card_id
    return html.Div(children, **kwargs)
