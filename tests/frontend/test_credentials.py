"""The dashboard forwards its user's credential to the API, and never serves one user's cached
data to another (frontend.client, frontend/views FetchCache)."""

from __future__ import annotations

import threading
from typing import Any

import httpx

from frontend import client as client_module
from frontend.views import FetchCache


def _recording() -> tuple[client_module.ApiClient, list[str | None]]:
    seen: list[str | None] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, json={"data": [], "count": 0})

    return client_module.ApiClient("http://t", transport=httpx.MockTransport(handle)), seen


def test_the_current_users_credential_goes_as_bearer() -> None:
    api, seen = _recording()
    api.list_models()
    with client_module.acting_as("psk_alice"):
        api.list_models()
        with client_module.acting_as("pss_link"):
            api.list_models()
        api.list_models()
    assert seen == [None, "Bearer psk_alice", "Bearer pss_link", "Bearer psk_alice"]


def test_the_request_cookie_source_wins_and_none_falls_back() -> None:
    api, seen = _recording()
    answer: list[str | None] = ["psk_cookie"]
    client_module.set_credential_source(lambda: answer[0])
    try:
        with client_module.acting_as("psk_thread"):
            api.list_models()
            answer[0] = None  # outside a request: the thread's own credential
            api.list_models()
    finally:
        client_module.set_credential_source(None)
    assert seen == ["Bearer psk_cookie", "Bearer psk_thread"]


def test_threads_start_without_a_credential_unless_given_one() -> None:
    api, seen = _recording()

    def work(credential: str | None) -> None:
        if credential is None:
            api.list_models()
        else:
            with client_module.acting_as(credential):
                api.list_models()

    with client_module.acting_as("psk_parent"):
        for credential in (None, "psk_parent"):
            t = threading.Thread(target=work, args=(credential,))
            t.start()
            t.join()
    assert seen == [None, "Bearer psk_parent"]


def test_fetch_cache_is_per_user() -> None:
    api, _seen = _recording()
    calls: list[str] = []

    def fetch(client: Any, comparison_id: int, b: int | None) -> str:
        calls.append(client_module.current_credential())
        return f"data for {client_module.current_credential() or 'nobody'}"

    cache: FetchCache[str] = FetchCache(fetch, 8)
    with client_module.acting_as("psk_alice"):
        assert cache.get(api, 1, None) == "data for psk_alice"
        assert cache.get(api, 1, None) == "data for psk_alice"  # cached
    with client_module.acting_as("pss_other"):
        assert cache.get(api, 1, None) == "data for pss_other"  # fetched again, as them
    assert calls == ["psk_alice", "pss_other"]
