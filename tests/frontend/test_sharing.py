"""The compare page's Share panel (frontend/views/sharing.py): what each user is offered, and
the callbacks' requests and answers against a fake API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import dash
import httpx
import pytest

from frontend import client as client_module
from frontend.session import LOCAL_USER
from frontend.views import MAX_URL_SELECTION, sharing


def _user(**kw: Any) -> dict[str, Any]:
    return {**LOCAL_USER, **kw}


def _ids(node: Any) -> list[Any]:
    found = []
    if getattr(node, "id", None) is not None:
        found.append(node.id)
    children = getattr(node, "children", None)
    for child in children if isinstance(children, list) else [children]:
        if child is not None and not isinstance(child, str | int | float):
            found += _ids(child)
    return found


def _text(node: Any) -> str:
    if isinstance(node, str | int | float):
        return str(node)
    children = getattr(node, "children", None)
    items = children if isinstance(children, list) else [children]
    return " ".join(_text(c) for c in items if c is not None)


SHARE = {
    "id": 5,
    "comparison_id": 3,
    "label": "<b>colleague</b>",
    "prefix": "pss_AbCdEf",
    "created_by": "token 1 (alice)",
    "created_at": "2026-11-21T10:00:00Z",
    "expires_at": None,
    "revoked_at": None,
    "last_used_at": None,
    "live": True,
}


class Api:
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.fail: tuple[int, str] | None = None

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.fail:
            return httpx.Response(self.fail[0], json={"detail": self.fail[1]})
        path = request.url.path
        if request.method == "GET" and path == "/api/comparisons/3/shares":
            return httpx.Response(200, json={"data": [SHARE], "count": 1})
        if request.method == "POST" and path == "/api/comparisons/3/shares":
            body = json.loads(request.content)
            return httpx.Response(
                201,
                json={**SHARE, "id": 6, "label": body["label"], "token": "pss_secret",
                      "url": "http://srv/s/pss_secret", "expires_at": "2026-11-28T10:00:00Z"},
            )  # fmt: skip
        if request.method == "DELETE" and path == "/api/comparisons/3/shares/5":
            return httpx.Response(200, json={**SHARE, "live": False})
        return httpx.Response(404, json={"detail": "Not Found"})


@pytest.fixture
def api() -> Iterator[Api]:
    fake = Api()
    client_module.configure("http://testserver", transport=httpx.MockTransport(fake.handle))
    try:
        yield fake
    finally:
        client_module.reset()


def test_share_viewers_get_no_panel_read_tokens_no_buttons() -> None:
    assert sharing.panel(3, _user(kind="share", scope="read", comparison_id=3)) is None
    writer = _ids(sharing.panel(3, _user(kind="token", scope="write", auth=True)))
    assert sharing.ID_CREATE in writer and sharing.ID_LABEL in writer
    reader = sharing.panel(3, _user(kind="token", scope="read", auth=True))
    assert sharing.ID_CREATE not in _ids(reader)
    assert "needs a write token" in _text(reader)


@pytest.mark.parametrize(
    ("value", "hours"), [("24", 24.0), ("168", 168.0), ("never", None), (None, None)]
)
def test_expiry_choices(value: Any, hours: float | None) -> None:
    assert sharing.expiry_hours(value) == hours


def test_list_shows_links_as_text_with_revoke_buttons(api: Api) -> None:
    table = sharing.list_links(0, 3)
    assert {"type": sharing.REVOKE, "index": 5} in _ids(table)
    text = _text(table)
    assert "<b>colleague</b>" in text  # a plain string child: Dash renders it as text
    assert "/s/pss_AbCdEf…" in text and "never" in text and "not yet" in text


def test_create_sends_label_and_expiry_and_shows_the_link_once(api: Api) -> None:
    body, refresh = sharing.create_link(1, "  bob ", "168", 3, 2)
    sent = json.loads(api.requests[-1].content)
    assert sent == {"label": "bob", "expires_in_hours": 168.0, "view": {}}
    assert refresh == 3
    assert "http://srv/s/pss_secret" in [getattr(n, "value", None) for n in _walk(body)]
    assert "shown only this once" in _text(body)


def test_a_link_keeps_the_view_it_was_made_from(api: Api) -> None:
    """The page's QUERY (b, cls, view settings) and SELECTION (as ``sel``) go with the link;
    ``id`` does not (issue 18, bug 2)."""
    query = {"id": "3", "b": "5", "cls": "2", "emb_color": "flip", "sel": "1-2"}
    chosen = {"ids": [4, 5, 6, 9], "source": "compare-embedding-a"}
    sharing.create_link(1, "", "168", 3, 0, query, chosen)
    sent = json.loads(api.requests[-1].content)["view"]
    assert sent == {"b": "5", "cls": "2", "emb_color": "flip", "sel": "4-6,9"}
    too_many = {"ids": list(range(0, 2 * MAX_URL_SELECTION + 2, 2)), "source": "x"}
    sharing.create_link(1, "", "168", 3, 0, query, too_many)
    assert "sel" not in json.loads(api.requests[-1].content)["view"]
    assert sharing.describe_view(sent) == "B = model 5, class 2, 4 selected samples, 1 view setting"
    assert sharing.describe_view({}) == "the default view"
    assert "sample #9 open" in sharing.describe_view({"smp": "9"})


def _walk(node: Any) -> Iterator[Any]:
    yield node
    children = getattr(node, "children", None)
    for child in children if isinstance(children, list) else [children]:
        if child is not None and not isinstance(child, str | int | float):
            yield from _walk(child)


def test_revoke_deletes_that_link_and_refreshes(api: Api) -> None:
    message, refresh = sharing.revoke(5, 3, 7)
    assert (api.requests[-1].method, api.requests[-1].url.path) == (
        "DELETE",
        "/api/comparisons/3/shares/5",
    )
    assert message is None and refresh == 8


def test_errors_are_said_not_raised(api: Api) -> None:
    api.fail = (403, "Token 2 is read-only; this needs a write token.")
    body, refresh = sharing.create_link(1, "", "24", 3, 0)
    assert refresh is dash.no_update
    assert "read-only" in _text(body)
    assert "read-only" in _text(sharing.list_links(0, 3))
