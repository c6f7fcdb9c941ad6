"""FastAPI app factory: REST API under /api, the Dash dashboard under /.

Dash runs on its Flask server mounted through a2wsgi rather than Dash's FastAPI backend:
that backend runs synchronous callbacks inside the event loop, and our callbacks call this
same server's REST API, which would deadlock. a2wsgi runs them in a thread pool instead.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI

from backend.api import errors, security, signin
from backend.api.access import AccessMiddleware
from backend.api.deps import warm_imports
from backend.api.routes import (
    analyses,
    architectures,
    comparisons,
    corruptions,
    datasets,
    experiments,
    health,
    jobs,
    methods,
    models,
    session,
    shares,
    uploads,
)
from backend.api.routes.architectures import catalogue as architecture_catalogue
from backend.artifacts import Sweeper
from backend.config import Settings, get_settings
from backend.db.session import check_database, configure_pool, migrate
from backend.jobs.executor import Executor, make_executor
from backend.storage import ArtifactStore

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    executor: Executor | None = None,
    dashboard: bool = True,
) -> FastAPI:
    """Build the application. Migrations run here, so a fresh data folder just works.

    Args:
        settings: configuration; default :func:`get_settings`.
        executor: where submitted jobs go; default from settings (started with the app).
        dashboard: mount the Dash frontend at "/".
    """
    settings = settings or get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    configure_pool(settings.db_pool_size, settings.db_max_overflow)
    check_database(settings.database_url)  # a wrong URL: one clear line, not a traceback
    migrate(settings.database_url)
    store = ArtifactStore(settings.artifact_location)
    store.clean_temp()
    executor = executor or make_executor(settings)

    # what the first visitor would otherwise wait for, done in a thread as the server starts
    warmers: list[Callable[[], object]] = [warm_imports, partial(architecture_catalogue, settings)]

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        threading.Thread(target=warm_up, args=(warmers,), name="warm-up", daemon=True).start()
        executor.start()
        sweeper = Sweeper(settings, store)  # artifact files no row names: now, then periodically
        sweeper.start()
        try:
            yield
        finally:
            sweeper.stop()
            executor.shutdown()

    app = FastAPI(
        title="PruneScope",
        summary="See what pruning did to your network.",
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
        lifespan=lifespan,
    )
    errors.install(app)  # error answers that survive any input; unique races answer 409
    app.state.settings = settings
    app.state.store = store
    app.state.executor = executor
    routers = (
        health,
        uploads,
        datasets,
        models,
        experiments,
        methods,
        architectures,
        corruptions,
        jobs,
        analyses,
        comparisons,
        shares,
        session,
    )
    for module in routers:
        app.include_router(module.router, prefix="/api")
    app.include_router(signin.router)
    app.add_middleware(AccessMiddleware, paths=lambda: app.openapi()["paths"], settings=settings)
    app.openapi = lambda: document_access(app)  # type: ignore[method-assign]
    if not settings.loopback and not settings.auth_enabled:
        warn_open(settings)

    if dashboard:
        from a2wsgi import WSGIMiddleware

        from frontend.app import create_dash_app
        from frontend.app import warm_up as warm_dashboard

        dash_app = create_dash_app(settings.api_url)
        app.mount("/", WSGIMiddleware(dash_app.server))  # type: ignore[arg-type]
        warmers.append(partial(warm_dashboard, dash_app))
    return app


def warm_up(warmers: Sequence[Callable[[], object]]) -> None:
    """Run each warm-up; one that fails is logged and skipped (it only costs the first
    visitor some time, it must never stop the server)."""
    for warm in warmers:
        try:
            warm()
        except Exception:  # noqa: BLE001
            log.warning("warm-up %r failed; the first request will do it", warm, exc_info=True)


OPEN_WARNING = """
!!! PruneScope: AUTHENTICATION IS OFF on {host}:{port} (PRUNESCOPE_AUTH=off).
!!! Anyone who can reach this address can read every model and dataset, submit jobs and
!!! upload files. Unset PRUNESCOPE_AUTH (or bind to 127.0.0.1) unless this network is yours.
"""


def warn_open(settings: Settings) -> None:
    """The loud warning of a server that binds beyond loopback with authentication off."""
    text = OPEN_WARNING.format(host=settings.host, port=settings.port)
    log.warning(text.strip())
    sys.stderr.write(text)


ERROR_REF = "#/components/schemas/ErrorPublic"
ACCESS_REFUSALS = {
    401: "No credential, or one that is unknown, revoked or expired (WWW-Authenticate: Bearer)",
    403: "The credential may not do this (read-only token, share link of another comparison, "
    "or a cross-site request)",
    413: "Request body too large (PRUNESCOPE_MAX_BODY_BYTES)",
    429: "Too many job submissions for this token (Retry-After says when to try again)",
}


def document_access(app: FastAPI) -> dict:  # type: ignore[type-arg]
    """The OpenAPI schema, with the bearer scheme and each operation's access (``security``,
    and ``x-access`` / ``x-share`` saying which token or share link may call it)."""
    if app.openapi_schema:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    schema = get_openapi(
        title=app.title, version=app.version, summary=app.summary, routes=app.routes
    )
    schema.setdefault("components", {})["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token (prunescope token create) or a share link's secret.",
        }
    }
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            need = security.route_access(method.upper(), path)
            operation["x-access"] = str(need)
            rule = security.share_rule(method.upper(), path)
            if rule is not None:
                operation["x-share"] = rule
            operation["security"] = [] if need is security.Access.PUBLIC else [{"bearer": []}]
            answers = operation.setdefault("responses", {})
            refusals = [] if need is security.Access.PUBLIC else [401, 403]
            if method.upper() not in security.READ_METHODS:
                refusals.append(413)
            if (method.upper(), path) in security.SUBMIT_ROUTES:
                refusals.append(429)
            for code in refusals:
                answers.setdefault(
                    str(code),
                    {
                        "description": ACCESS_REFUSALS[code],
                        "content": {"application/json": {"schema": {"$ref": ERROR_REF}}},
                    },
                )
    app.openapi_schema = schema
    return schema
