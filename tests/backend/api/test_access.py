"""Access and sharing (issue 9): tokens, share links, the authorisation matrix of every route,
limits and the audit log.

The matrix is generated from the app's own OpenAPI schema, so a new route is checked the day
it is added. What each credential should get is decided here, independently of
backend/api/security.py, from the issue's rules: GET is a read, anything else a write; a short
list of routes is public; a share link reads its one comparison (and the models, analyses,
dataset and test images it is made of) and nothing else. An allowed request must get exactly
the status the same request gets from the same data with authentication off (the reference);
a refused one exactly 401 (no or a dead credential) or 403 (a credential without the right).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from backend.api import security
from backend.api.app import create_app
from backend.config import Settings
from backend.db.session import session_factory
from backend.db.tables import (
    AnalysisRow,
    ApiTokenRow,
    AuditEventRow,
    JobRow,
    ModelRow,
    ShareLinkRow,
)
from backend.jobs.executor import InlineExecutor
from tests.conftest import free_port

# The rules, written out here on their own --------------------------------------------
PUBLIC = {("GET", "/api/health"), ("GET", "/api/session")}
WRITE_ONLY_READS = {("GET", "/api/audit")}  # who did what: for write tokens


def share_may_read(method: str, template: str, ids: Ids) -> bool:
    """Whether a share link of comparison X may make this request (ids are X's own)."""
    if method != "GET" or "/shares" in template:
        return False
    return (
        template == "/api/comparisons/{comparison_id}"
        or template.startswith("/api/comparisons/{comparison_id}/")
        or template in ("/api/datasets/{dataset_id}", "/api/models/{model_id}")
        or template == "/api/models/{model_id}/download"  # model A's and the Bs' files
        # the compare page's pruning-limit (A) and instability (a B) views read these
        or template
        in ("/api/models/{model_id}/pruning-limit", "/api/models/{model_id}/instability")
        or template == "/api/datasets/{dataset_id}/images/{split}/{index}.png"
        or template == "/api/analyses/{analysis_id}"
        or template.startswith("/api/analyses/{analysis_id}/")
    )


@dataclass
class Ids:
    comparison_id: int
    dataset_id: int
    model_ids: list[int]
    analysis_ids: list[int]
    job_ids: list[int]


@dataclass
class World:
    on: TestClient  # authentication on
    off: TestClient  # the reference: same data, authentication off
    settings: Settings
    x: Ids
    y: Ids
    write: str
    read: str
    share_x: str
    share_x_id: int
    revoked: str
    expired: str


def _ok(resp):  # type: ignore[no-untyped-def]
    assert resp.status_code in (200, 201), resp.text
    return resp.json()


def _build(c: TestClient, name: str) -> Ids:
    """A dataset, a trained model, one pruned child and their comparison, through the API."""
    ds = _ok(c.post("/api/datasets", json={"builtin": "digits", "name": name}))
    job = _ok(
        c.post(
            "/api/jobs",
            json={
                "kind": "train",
                "spec": {"dataset_id": ds["id"], "architecture": "digits_cnn", "epochs": 1},
            },
        )
    )
    job = _ok(c.get(f"/api/jobs/{job['id']}"))
    assert job["status"] == "succeeded", job
    a = job["result"]["model_id"]
    prune = _ok(
        c.post(
            "/api/jobs",
            json={"kind": "prune", "spec": {"model_id": a, "sparsity": 0.5, "finetune": None}},
        )
    )
    prune = _ok(c.get(f"/api/jobs/{prune['id']}"))
    assert prune["status"] == "succeeded", prune
    b = prune["result"]["model_id"]
    comp = _ok(
        c.post("/api/comparisons", json={"model_a_id": a, "model_b_ids": [b], "embedding": "pca"})
    )
    view = _ok(c.get(f"/api/comparisons/{comp['id']}/view"))
    analyses = [view["analysis_a"]["id"], view["analysis_b"]["id"]]
    return Ids(comp["id"], ds["id"], [a, b], analyses, [job["id"], prune["id"]])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data = tmp_path_factory.mktemp("access") / "data"
    common = {"data_dir": data, "port": free_port(), "warm_embeddings": False}
    off_settings = Settings(**common, auth="off")
    on_settings = Settings(**common, auth="on")
    app_off = create_app(off_settings, executor=InlineExecutor(off_settings), dashboard=False)
    app_on = create_app(on_settings, executor=InlineExecutor(on_settings), dashboard=False)
    with TestClient(app_off) as off, TestClient(app_on) as on:
        x, y = _build(off, "digits-x"), _build(off, "digits-y")
        with session_factory(on_settings.database_url)() as session:
            _row, write = security.create_token(session, "writer")
            _row, read = security.create_token(session, "reader", read_only=True)
        share = _ok(off.post(f"/api/comparisons/{x.comparison_id}/shares", json={"label": "x"}))
        revoked = _ok(off.post(f"/api/comparisons/{x.comparison_id}/shares", json={}))
        _ok(off.delete(f"/api/comparisons/{x.comparison_id}/shares/{revoked['id']}"))
        expired = _ok(
            off.post(f"/api/comparisons/{x.comparison_id}/shares", json={"expires_in_hours": 1})
        )
        with session_factory(on_settings.database_url)() as session:
            row = session.get(ShareLinkRow, expired["id"])
            assert row is not None
            row.expires_at = security.utcnow() - timedelta(seconds=1)
            session.commit()
        yield World(
            on, off, on_settings, x, y, write, read, share["token"], share["id"],
            revoked["token"], expired["token"],
        )  # fmt: skip


def bearer(secret: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"} if secret else {}


def fill(template: str, ids: Ids) -> str:
    """A concrete path for a template, with the ids of one comparison's world."""
    values = {
        "comparison_id": ids.comparison_id,
        "dataset_id": ids.dataset_id,
        "model_id": ids.model_ids[1],
        "analysis_id": ids.analysis_ids[0],
        "job_id": ids.job_ids[0],
        "index": 0,
        "split": "test",
        "share_id": 987654,
    }

    def one(m: re.Match[str]) -> str:
        assert m[1] in values, f"the matrix does not know the path parameter {m[1]!r}"
        return str(values[m[1]])

    return re.sub(r"\{(\w+)\}", one, template)


def operations(client: TestClient) -> list[tuple[str, str]]:
    schema = client.get("/api/openapi.json").json()
    return sorted(
        (method.upper(), path)
        for path, ops in schema["paths"].items()
        for method in ops
        if method in ("get", "post", "put", "patch", "delete")
    )


def call(client: TestClient, method: str, path: str, secret: str | None = None) -> int:
    # Writes carry a body no route accepts, so an allowed write changes nothing (422/404).
    body = None if method == "GET" else {"__matrix__": 1}
    return client.request(method, path, json=body, headers=bearer(secret)).status_code


CREDENTIALS = ("none", "read", "write", "share", "revoked", "expired")


def expected(world: World, credential: str, method: str, template: str, reference: int) -> int:
    need = "public" if (method, template) in PUBLIC else "read" if method == "GET" else "write"
    if (method, template) in WRITE_ONLY_READS:
        need = "write"
    if need == "public" or credential == "write":
        return reference
    if credential in ("none", "revoked", "expired"):
        return 401
    if credential == "read":
        return reference if need == "read" else 403
    assert credential == "share"
    return reference if share_may_read(method, template, world.x) else 403


def secret_of(world: World, credential: str) -> str | None:
    return {
        "none": None,
        "read": world.read,
        "write": world.write,
        "share": world.share_x,
        "revoked": world.revoked,
        "expired": world.expired,
    }[credential]


def test_every_route_answers_each_credential_exactly(world: World) -> None:
    ops = operations(world.off)
    assert len(ops) >= 40  # the whole API, not an empty schema
    wrong = []
    for method, template in ops:
        path = fill(template, world.x)
        reference = call(world.off, method, path)
        assert reference not in (401, 403), f"{method} {path}: reference refused"
        for credential in CREDENTIALS:
            got = call(world.on, method, path, secret_of(world, credential))
            want = expected(world, credential, method, template, reference)
            if got != want:
                wrong.append(f"{credential:8} {method} {template}: {got}, expected {want}")
    assert not wrong, "\n".join(wrong)


def test_schema_documents_each_operations_access(world: World) -> None:
    schema = world.on.get("/api/openapi.json").json()
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            public = (method.upper(), path) in PUBLIC
            assert op["security"] == ([] if public else [{"bearer": []}]), (method, path)
            assert op["x-access"] in ("public", "read", "write")


def test_share_link_cannot_reach_anything_of_another_comparison(world: World) -> None:
    """Every id the holder could guess: Y's comparison (and its sub-resources), models,
    datasets, images, analyses, and every job; plus ids that exist nowhere. All 403, the same
    answer whether the thing exists or not."""
    on, y, x = world.on, world.y, world.x
    share = bearer(world.share_x)
    templates = [t for m, t in operations(world.off) if m == "GET" and "{" in t]
    for template in templates:
        assert on.get(fill(template, y), headers=share).status_code == 403, template
    guesses = [
        *(f"/api/comparisons/{i}" for i in range(1, 30) if i != x.comparison_id),
        *(f"/api/models/{i}" for i in range(1, 30) if i not in x.model_ids),
        *(f"/api/datasets/{i}" for i in range(1, 30) if i != x.dataset_id),
        *(f"/api/datasets/{i}/images/test/0.png" for i in range(1, 30) if i != x.dataset_id),
        *(f"/api/analyses/{i}" for i in range(1, 30) if i not in x.analysis_ids),
        *(f"/api/jobs/{i}" for i in range(1, 30)),
        f"/api/datasets/{x.dataset_id}/images/train/0.png",  # the comparison is on test only
        "/api/models",
        "/api/datasets",
        "/api/jobs",
        "/api/comparisons",
        "/api/analyses",
        f"/api/comparisons/{x.comparison_id}/shares",
        "/api/audit",
    ]
    for path in guesses:
        assert on.get(path, headers=share).status_code == 403, path
    # ... while its own comparison, models, analyses and images open
    own = [
        f"/api/comparisons/{x.comparison_id}/view",
        *(f"/api/models/{i}" for i in x.model_ids),
        *(f"/api/analyses/{i}" for i in x.analysis_ids),
        f"/api/datasets/{x.dataset_id}/images/test/0.png",
    ]
    for path in own:
        assert on.get(path, headers=share).status_code == 200, path


def test_share_link_works_as_cookie_and_revocation_is_immediate(world: World) -> None:
    on, x = world.on, world.x
    created = _ok(
        on.post(f"/api/comparisons/{x.comparison_id}/shares", json={}, headers=bearer(world.write))
    )
    assert created["url"] == f"http://testserver/s/{created['token']}"
    # the dashboard says which address the browser reached; the link is written for it
    forwarded = _ok(
        on.post(
            f"/api/comparisons/{x.comparison_id}/shares",
            json={"label": "fwd"},
            headers={
                **bearer(world.write),
                "X-Forwarded-Host": "scope.example.org",
                "X-Forwarded-Proto": "https",
            },
        )
    )
    assert forwarded["url"] == f"https://scope.example.org/s/{forwarded['token']}"
    browser = TestClient(on.app)
    opened = browser.get(f"/s/{created['token']}", follow_redirects=False)
    assert opened.status_code == 303
    assert opened.headers["location"] == f"/compare?id={x.comparison_id}"
    cookie = opened.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert browser.get(f"/api/comparisons/{x.comparison_id}").status_code == 200
    me = browser.get("/api/session").json()
    assert (me["kind"], me["comparison_id"]) == ("share", x.comparison_id)
    revoked = on.delete(
        f"/api/comparisons/{x.comparison_id}/shares/{created['id']}", headers=bearer(world.write)
    )
    assert revoked.status_code == 200 and revoked.json()["live"] is False
    after = browser.get(f"/api/comparisons/{x.comparison_id}")
    assert after.status_code == 401
    assert after.json()["detail"] == "This share link was revoked."
    # the page says the link is dead (not "sign in") and forgets it
    page = browser.get(f"/compare?id={x.comparison_id}", follow_redirects=False)
    assert page.status_code == 404 and "This share link was revoked." in page.text
    assert page.headers["set-cookie"].startswith(f'{security.SHARE_COOKIE}="";')
    listed = on.get(f"/api/comparisons/{x.comparison_id}/shares", headers=bearer(world.write))
    assert created["id"] not in [s["id"] for s in listed.json()["data"]]
    dead = on.get(
        f"/api/comparisons/{x.comparison_id}/shares?include_dead=true",
        headers=bearer(world.write),
    )
    assert created["id"] in [s["id"] for s in dead.json()["data"]]


def test_a_share_link_opens_the_view_it_was_made_from(world: World) -> None:
    """Issue 18, bug 2: a link opened /compare?id=N bare, whatever view the sender shared."""
    on, x = world.on, world.x
    b = x.model_ids[1]
    view = {"b": str(b), "cls": "3", "sel": "4-9,17", "smp": "17", "emb_color": "d_margin"}
    url = f"/api/comparisons/{x.comparison_id}/shares"
    created = _ok(on.post(url, json={"view": view}, headers=bearer(world.write)))
    assert created["view"] == view
    listed = on.get(url, headers=bearer(world.write)).json()["data"]
    assert [s["view"] for s in listed if s["id"] == created["id"]] == [view]
    opened = TestClient(on.app).get(f"/s/{created['token']}", follow_redirects=False)
    assert opened.status_code == 303
    path, _, query = opened.headers["location"].partition("?")
    assert path == "/compare"
    assert parse_qsl(query) == [("id", str(x.comparison_id)), *view.items()]
    # a link made before links kept their view (NULL) opens the comparison's default view
    with session_factory(world.settings.database_url)() as session:
        row = session.get(ShareLinkRow, created["id"])
        assert row is not None
        row.view = None
        session.commit()
    opened = TestClient(on.app).get(f"/s/{created['token']}", follow_redirects=False)
    assert opened.headers["location"] == f"/compare?id={x.comparison_id}"

    # a view that would open an error page, or another comparison, is refused when made
    for bad, says in (
        ({"b": str(x.model_ids[0])}, "is not a pruned model of comparison"),
        ({"b": "99999"}, "is not a pruned model of comparison"),
        ({"cls": "cat"}, "should be a class index"),
        ({"id": "2"}, "leave id out"),
        ({"B-Bad": "1"}, "pattern"),
        ({"sel": "1" * 20_001}, "at most 20000"),
        ({f"k{i}": "1" for i in range(41)}, "at most 40"),
    ):
        answer = on.post(url, json={"view": bad}, headers=bearer(world.write))
        assert answer.status_code == 422, (bad, answer.text)
        assert says in answer.text, (bad, answer.text)


def test_a_comparisons_analyses_are_its_models_latest_and_a_share_link_may_read_them(
    world: World,
) -> None:
    """What the Overview and Similarity pages need, scoped to the comparison: the workspace's
    analysis list stays closed to a share link."""
    x = world.x
    got = _ok(world.off.get(f"/api/comparisons/{x.comparison_id}/analyses"))
    assert [a["model_id"] for a in got["data"]] == x.model_ids  # A first
    assert [a["id"] for a in got["data"]] == x.analysis_ids  # the ones its view uses
    every = _ok(world.off.get("/api/analyses", params={"dataset_id": x.dataset_id}))["data"]
    for a in got["data"]:  # the latest test-split analysis of each model (brute force)
        mine = [b["id"] for b in every if b["model_id"] == a["model_id"] and b["split"] == "test"]
        assert a["id"] == max(mine)
    viewer = TestClient(world.on.app)
    viewer.cookies.set(security.SHARE_COOKIE, world.share_x)
    assert viewer.get(f"/api/comparisons/{x.comparison_id}/analyses").json() == got
    assert viewer.get("/api/analyses").status_code == 403
    assert viewer.get(f"/api/comparisons/{world.y.comparison_id}/analyses").status_code == 403


def test_secrets_are_stored_only_as_sha256_and_compared_in_constant_time(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    with session_factory(world.settings.database_url)() as session:
        tokens = session.scalars(select(ApiTokenRow)).all()
        links = session.scalars(select(ShareLinkRow)).all()
    stored = {r.token_hash for r in [*tokens, *links]}
    for secret in (world.write, world.read, world.share_x):
        assert hashlib.sha256(secret.encode()).hexdigest() in stored
        assert all(secret not in repr(vars(r)) for r in [*tokens, *links])
        # at least 128 bits of randomness: 32 bytes of URL-safe base64 after the prefix
        assert len(secret) - 4 >= 43
    calls = []
    real = security.hmac.compare_digest

    def spy(a, b):  # type: ignore[no-untyped-def]
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(security.hmac, "compare_digest", spy)
    assert world.on.get("/api/models", headers=bearer(world.read)).status_code == 200
    assert calls, "the stored digest was not compared with hmac.compare_digest"


def test_sign_in_sets_an_http_only_cookie_and_refuses_bad_tokens(world: World) -> None:
    browser = TestClient(world.on.app)
    page = browser.get("/overview", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/overview"
    bad = browser.post("/login", data={"token": "psk_wrong", "next": "/overview"})
    assert bad.status_code == 401 and "This token is not valid." in bad.text
    assert "set-cookie" not in bad.headers
    good = browser.post(
        "/login",
        data={"token": world.read, "next": "/overview"},
        headers={"X-Forwarded-Proto": "https"},
        follow_redirects=False,
    )
    assert good.status_code == 303 and good.headers["location"] == "/overview"
    cookie = good.headers["set-cookie"]
    assert cookie.startswith(f"{security.TOKEN_COOKIE}={world.read};")
    for flag in ("HttpOnly", "Secure", "SameSite=lax"):
        assert flag in cookie
    assert world.read not in good.headers["location"]  # never in the URL
    browser.cookies.set(security.TOKEN_COOKIE, world.read)
    assert browser.get("/api/models").status_code == 200
    assert browser.post("/api/datasets", json={"builtin": "digits"}).status_code == 403
    # a cookie-borne write from another site is refused (SameSite=Lax aside)
    elsewhere = {"Origin": "https://evil.example"}
    with session_factory(world.settings.database_url)() as session:
        _row, writer_cookie = security.create_token(session, "cookie-writer")
    browser.cookies.set(security.TOKEN_COOKIE, writer_cookie)
    bad = browser.post("/api/datasets", json={"builtin": "blobs"}, headers=elsewhere)
    assert bad.status_code == 403 and "Cross-site" in bad.json()["detail"]
    assert browser.post("/login", data={"token": world.read}, headers=elsewhere).status_code == 403
    same = {"Origin": "http://testserver"}
    ok = browser.post("/api/datasets", json={"builtin": "blobs", "name": "b2"}, headers=same)
    assert ok.status_code == 201
    # ... while a script's bearer header is not a cookie: Origin does not matter
    assert (
        world.on.post(
            "/api/datasets",
            json={"builtin": "blobs", "name": "b3"},
            headers={**bearer(world.write), **elsewhere},
        ).status_code
        == 201
    )
    browser.cookies.set(security.TOKEN_COOKIE, world.read)
    # no open redirect
    evil = browser.post(
        "/login", data={"token": world.read, "next": "//evil.example"}, follow_redirects=False
    )
    assert evil.headers["location"] == "/"
    # the sign-in page takes its reason from the cookie, never from the URL
    assert "Nobody" not in browser.get("/login?why=Nobody").text
    with session_factory(world.settings.database_url)() as session:
        _row, doomed = security.create_token(session, "doomed", read_only=True)
        security.revoke_token(session, "doomed")
    # one cookie of that name: the jar also holds the one the sign-in set for its own domain
    browser.cookies.clear()
    browser.cookies.set(security.TOKEN_COOKIE, doomed)
    assert "(doomed) was revoked. Sign in with another token." in browser.get("/login").text
    out = browser.get("/logout", follow_redirects=False)
    assert out.status_code == 303 and 'prunescope_token=""' in out.headers["set-cookie"]


def test_a_dead_share_link_page_says_why(world: World) -> None:
    browser = TestClient(world.on.app)
    for secret, why in ((world.revoked, "was revoked"), (world.expired, "expired at")):
        page = browser.get(f"/s/{secret}", follow_redirects=False)
        assert page.status_code == 404 and why in page.text
        assert "set-cookie" not in page.headers


def test_writes_shares_and_refusals_are_audited(world: World) -> None:
    on, x = world.on, world.x
    before = _audit_count(world)
    on.post(
        "/api/datasets", json={"builtin": "digits", "name": "audited"}, headers=bearer(world.write)
    )
    on.post("/api/datasets", json={"builtin": "digits"}, headers=bearer(world.read))
    on.get(f"/api/comparisons/{x.comparison_id}", headers=bearer(world.share_x))
    on.get("/api/jobs", headers=bearer(world.share_x))
    TestClient(on.app).get(f"/s/{world.share_x}", follow_redirects=False)
    with session_factory(world.settings.database_url)() as session:
        events = session.scalars(
            select(AuditEventRow).where(AuditEventRow.id > before).order_by(AuditEventRow.id)
        ).all()
    seen = [(e.actor, e.action, e.target, e.status) for e in events]
    writer = _token_id(world, "writer")
    reader = _token_id(world, "reader")
    assert seen == [
        (f"token {writer} (writer)", "POST", "/api/datasets", 201),
        (f"token {reader} (reader)", "POST", "/api/datasets", 403),
        (f"share {world.share_x_id} (comparison {x.comparison_id})", "GET", "/api/jobs", 403),
        (
            f"share {world.share_x_id} (comparison {x.comparison_id})",
            "share.open",
            f"/s/{world.share_x[:10]}...",
            303,
        ),
    ]
    # the log names the token's id, never its secret, and only write tokens may read it
    assert all(world.share_x not in e.target for e in events)
    assert on.get("/api/audit", headers=bearer(world.read)).status_code == 403
    listed = on.get("/api/audit?limit=4", headers=bearer(world.write)).json()["data"]
    assert (
        [(e["action"], e["target"], e["status"]) for e in listed]
        == [
            ("GET", "/api/audit", 403),  # the read token's refused look, newest first
            ("share.open", f"/s/{world.share_x[:10]}...", 303),
            ("GET", "/api/jobs", 403),
            ("POST", "/api/datasets", 403),
        ]
    )


def _audit_count(world: World) -> int:
    with session_factory(world.settings.database_url)() as session:
        last = session.scalars(select(AuditEventRow.id).order_by(AuditEventRow.id.desc())).first()
    return last or 0


def _token_id(world: World, name: str) -> int:
    with session_factory(world.settings.database_url)() as session:
        return session.scalars(select(ApiTokenRow.id).where(ApiTokenRow.name == name)).one()


def test_dashboard_is_behind_sign_in_and_a_share_link_sees_its_comparison_only(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path / "d", auth="on", port=free_port(), warm_embeddings=False)
    app = create_app(settings, executor=InlineExecutor(settings), dashboard=True)
    with TestClient(app) as c:
        for path in ("/", "/compare?id=1", "/_dash-layout"):
            resp = c.get(path, follow_redirects=False)
            assert resp.status_code in (303, 401), path
        assert c.get("/login").status_code == 200
        assert c.get("/assets/style.css").status_code == 200
        assert c.post("/_dash-update-component", json={}).status_code == 401


def test_a_share_link_opens_its_comparisons_three_pages_and_nothing_else(world: World) -> None:
    """Issue 18: the recipient may open the Overview and Similarity map of the shared
    comparison (read-only); every other page sends them back to its compare page."""
    app = create_app(world.settings, executor=InlineExecutor(world.settings), dashboard=True)
    cid, other = world.x.comparison_id, world.y.comparison_id
    with TestClient(app) as c:
        c.cookies.set(security.SHARE_COOKIE, world.share_x)
        for path in (f"/compare?id={cid}", f"/overview?id={cid}", f"/similarity?id={cid}&m=2"):
            assert c.get(path, follow_redirects=False).status_code == 200, path
        for path in ("/", "/overview", f"/overview?id={other}", f"/similarity?id={other}", "/new"):
            resp = c.get(path, follow_redirects=False)
            assert resp.status_code == 303, path
            assert resp.headers["location"] == f"/compare?id={cid}", path


# limits -----------------------------------------------------------------------------------------
def _limited_app(tmp_path: Path, **overrides: object) -> tuple[TestClient, Settings]:
    options: dict[str, object] = {"auth": "on", **overrides}
    settings = Settings(data_dir=tmp_path / "d", port=free_port(), warm_embeddings=False, **options)
    app = create_app(settings, executor=InlineExecutor(settings), dashboard=False)
    return TestClient(app), settings


def test_job_submissions_are_rate_limited_per_token(tmp_path: Path) -> None:
    client, settings = _limited_app(tmp_path, job_rate_limit=2, job_rate_window=600)
    with client, session_factory(settings.database_url)() as session:
        _r, alice = security.create_token(session, "alice")
        _r, bob = security.create_token(session, "bob")
        bad_spec = {"kind": "train", "spec": {"dataset_id": 999}}  # refused, but counted
        for _ in range(2):
            assert client.post("/api/jobs", json=bad_spec, headers=bearer(alice)).status_code == 422
        third = client.post("/api/jobs", json=bad_spec, headers=bearer(alice))
        assert third.status_code == 429
        wait = int(third.headers["retry-after"])
        assert 0 < wait <= 600
        assert f"Try again in {wait} s" in third.json()["detail"]
        # per token: bob is not held back by alice, reads are never limited
        assert client.post("/api/jobs", json=bad_spec, headers=bearer(bob)).status_code == 422
        assert client.get("/api/jobs", headers=bearer(alice)).status_code == 200
        assert session.scalars(select(JobRow)).all() == []


def test_dry_runs_are_neither_rate_limited_nor_audited(tmp_path: Path) -> None:
    client, settings = _limited_app(tmp_path, job_rate_limit=2, job_rate_window=600)
    with client, session_factory(settings.database_url)() as session:
        _r, alice = security.create_token(session, "alice")
        _r, reader = security.create_token(session, "reader", read_only=True)
        bad_spec = {"kind": "train", "spec": {"dataset_id": 999}}
        events = len(session.scalars(select(AuditEventRow)).all())
        for _ in range(5):  # a form validating as someone types
            resp = client.post(
                "/api/jobs", params={"dry_run": "true"}, json=bad_spec, headers=bearer(alice)
            )
            assert resp.status_code == 422 and isinstance(resp.json()["detail"], list)
        session.expire_all()
        assert len(session.scalars(select(AuditEventRow)).all()) == events
        # the same access as a submission: a read-only token may not (and that is recorded)
        resp = client.post(
            "/api/jobs", params={"dry_run": "true"}, json=bad_spec, headers=bearer(reader)
        )
        assert resp.status_code == 403
        session.expire_all()
        assert len(session.scalars(select(AuditEventRow)).all()) == events + 1
        # real submissions still count from zero
        for _ in range(2):
            assert client.post("/api/jobs", json=bad_spec, headers=bearer(alice)).status_code == 422
        assert client.post("/api/jobs", json=bad_spec, headers=bearer(alice)).status_code == 429


def test_rate_limiter_window_slides() -> None:
    limiter = security.RateLimiter(limit=2, window=10)
    assert limiter.hit("k", now=0) == 0 and limiter.hit("k", now=1) == 0
    assert limiter.hit("k", now=5) == pytest.approx(5)  # the first leaves the window at 10
    assert limiter.hit("k", now=10) == 0
    assert limiter.hit("other", now=10) == 0


def test_request_bodies_are_limited(tmp_path: Path) -> None:
    client, settings = _limited_app(tmp_path, auth="off", max_body_bytes=4096)
    with client:
        big = b'{"builtin": "' + b"x" * 5000 + b'"}'
        resp = client.post(
            "/api/datasets", content=big, headers={"content-type": "application/json"}
        )
        assert resp.status_code == 413 and "4096 bytes" in resp.json()["detail"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            yield big[:3000]
            yield big[3000:]

        resp = client.post(
            "/api/datasets", content=chunks(), headers={"content-type": "application/json"}
        )
        assert resp.status_code == 413
        with session_factory(settings.database_url)() as session:
            assert session.scalars(select(ModelRow)).all() == []


# modes ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("host", "auth", "enabled"),
    [
        ("127.0.0.1", "auto", False),
        ("::1", "auto", False),
        ("localhost", "auto", False),
        ("0.0.0.0", "auto", True),
        ("10.1.2.3", "auto", True),
        ("127.0.0.1", "on", True),
        ("0.0.0.0", "off", False),
    ],
)
def test_bind_address_decides_authentication(host: str, auth: str, enabled: bool) -> None:
    assert Settings(host=host, auth=auth).auth_enabled is enabled


def test_auth_off_beyond_loopback_warns_loudly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(data_dir=tmp_path / "d", host="0.0.0.0", auth="off", warm_embeddings=False)
    create_app(settings, executor=InlineExecutor(settings), dashboard=False)
    err = capsys.readouterr().err
    assert "AUTHENTICATION IS OFF on 0.0.0.0" in err
    quiet = Settings(data_dir=tmp_path / "e", host="0.0.0.0", warm_embeddings=False)
    create_app(quiet, executor=InlineExecutor(quiet), dashboard=False)
    assert "AUTHENTICATION IS OFF" not in capsys.readouterr().err


def test_cookie_names_match_the_dashboard_client() -> None:
    from frontend import client

    assert (client.TOKEN_COOKIE, client.SHARE_COOKIE) == (
        security.TOKEN_COOKIE,
        security.SHARE_COOKIE,
    )


# the same core on PostgreSQL --------------------------------------------------------------------
def test_tokens_on_both_databases(settings: Settings) -> None:
    """Token resolution and revocation against SQLite and PostgreSQL."""
    on = Settings(**{**settings.model_dump(), "auth": "on"})
    app = create_app(on, executor=InlineExecutor(on), dashboard=False)
    with TestClient(app) as c, session_factory(on.database_url)() as session:
        _r, secret = security.create_token(session, "pg")
        ds = _ok(c.post("/api/datasets", json={"builtin": "blobs"}, headers=bearer(secret)))
        assert c.get(f"/api/datasets/{ds['id']}", headers=bearer(secret)).status_code == 200
        assert security.revoke_token(session, "pg")[0].revoked_at is not None
        assert c.get("/api/datasets", headers=bearer(secret)).status_code == 401
        with pytest.raises(LookupError):
            security.revoke_token(session, "nobody")
        assert session.scalars(select(AnalysisRow)).all() == []


# the command line -------------------------------------------------------------------------------
def test_token_commands_create_list_revoke_and_audit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from backend.cli import main

    data = ["--data-dir", str(tmp_path / "d")]
    assert main(["token", "create", "--name", "ci", "--read-only", *data]) == 0
    out = capsys.readouterr().out
    secret = re.search(r"psk_[\w-]{43}", out)
    assert secret is not None and "(ci, read)" in out
    settings = Settings(data_dir=tmp_path / "d")
    with session_factory(settings.database_url)() as session:
        row = session.scalars(select(ApiTokenRow)).one()
        assert row.token_hash == hashlib.sha256(secret[0].encode()).hexdigest()
        assert security.resolve(session, secret[0]).scope == "read"
    assert main(["token", "list", *data]) == 0
    listed = capsys.readouterr().out
    assert f"{secret[0][:10]}..." in listed and "live" in listed and secret[0] not in listed
    assert main(["token", "revoke", "ci", *data]) == 0
    assert "revoked" in capsys.readouterr().out
    assert main(["token", "revoke", "nobody", *data]) == 1
    assert "no token with id or name 'nobody'" in capsys.readouterr().err
    assert main(["token", "create", "--name", "  ", *data]) == 1
    assert main(["audit", *data]) == 0
    assert "The audit log is empty." in capsys.readouterr().out
