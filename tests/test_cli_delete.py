"""``prunescope delete model|comparison|dataset|job ID [--cascade] [--yes]`` against the real REST
API (an app on a fresh database, reached through the CLI's own client): it says what would go,
asks, deletes only on "y" or --yes, and shows a refusal with what --cascade would delete."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest
from fastapi.testclient import TestClient

from backend import cli
from backend.config import Settings
from backend.db.session import session_scope
from backend.db.tables import ComparisonMemberRow, ComparisonRow, DatasetRow, JobRow, ModelRow


@dataclass
class Rows:
    dataset: int
    original: int
    pruned: int
    comparison: int
    job: int


@pytest.fixture
def rows(client: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Rows:
    """A dataset, an original and its pruned child, their comparison and a running job; the
    CLI's client sends its requests to ``client``'s app."""
    store = client.app.state.store  # type: ignore[attr-defined]
    with session_scope(settings.database_url) as s:
        ds = DatasetRow(
            name="ds", source="test", params={}, num_classes=2, class_names=["a", "b"],
            input_shape=[4], n_train=1, n_test=1, artifact_sha=store.put_bytes(b"dataset"),
        )  # fmt: skip
        s.add(ds)
        s.flush()
        a = ModelRow(
            name="original", architecture="mlp", arch_kwargs={}, dataset_id=ds.id, n_params=1,
            n_nonzero=1, checkpoint_sha=store.put_bytes(b"a"),
        )  # fmt: skip
        s.add(a)
        s.flush()
        b = ModelRow(
            name="pruned", architecture="mlp", arch_kwargs={}, dataset_id=ds.id, parent_id=a.id,
            n_params=1, n_nonzero=1, checkpoint_sha=store.put_bytes(b"b"),
        )  # fmt: skip
        s.add(b)
        s.flush()
        comp = ComparisonRow(name="a vs b", dataset_id=ds.id, model_a_id=a.id)
        comp.members = [ComparisonMemberRow(model_id=b.id, position=0)]
        job = JobRow(kind="ping", spec={"seconds": 60}, status="running", stage="running")
        s.add_all([comp, job])
        s.flush()
        made = Rows(ds.id, a.id, b.id, comp.id, job.id)

    def forward(request: httpx.Request) -> httpx.Response:
        answer = client.request(
            request.method, str(request.url), content=request.content, headers=request.headers
        )
        return httpx.Response(answer.status_code, content=answer.content, headers=answer.headers)

    def api(args):  # type: ignore[no-untyped-def]
        return cli.Api("http://testserver/api", transport=httpx.MockTransport(forward))

    monkeypatch.setattr(cli, "_api", api)
    return made


@dataclass
class Terminal:
    typed: list[str]  # what the user types at the next questions
    asked: list[str]  # the questions asked so far


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> Terminal:
    """The user at the keyboard; with nothing typed, there is no terminal (stdin closed)."""
    term = Terminal([], [])

    def ask(prompt: str = "") -> str:
        term.asked.append(prompt)
        if not term.typed:
            raise EOFError
        return term.typed.pop(0)

    monkeypatch.setattr("builtins.input", ask)
    return term


def exists(settings: Settings, table: type, ident: int) -> bool:
    with session_scope(settings.database_url) as s:
        return s.get(table, ident) is not None


def test_delete_explains_its_rules(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["delete", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: prunescope delete" in out
    for words in ("--cascade", "--yes", "asks for confirmation", "share links", "cancel"):
        assert words in out.replace("\n", " ").replace("  ", " "), words
    assert "delete" in cli.build_parser().format_help()


def test_delete_asks_first_and_deletes_only_on_yes(rows, settings, terminal, capsys):
    terminal.typed.append("n")
    assert cli.main(["delete", "comparison", str(rows.comparison)]) == 1
    out = capsys.readouterr().out
    assert f"This deletes comparison {rows.comparison} ('a vs b')" in out
    assert "Nothing was deleted" in out
    assert exists(settings, ComparisonRow, rows.comparison)
    # no terminal to ask on: nothing happens either
    assert cli.main(["delete", "comparison", str(rows.comparison)]) == 1
    assert exists(settings, ComparisonRow, rows.comparison)
    terminal.typed.append("y")
    assert cli.main(["delete", "comparison", str(rows.comparison)]) == 0
    assert terminal.asked == ["Delete? [y/N] "] * 3
    assert f"Deleted comparison {rows.comparison}" in capsys.readouterr().out
    assert not exists(settings, ComparisonRow, rows.comparison)


def test_a_refusal_names_the_users_and_what_cascade_would_delete(rows, settings, terminal, capsys):
    assert cli.main(["delete", "model", str(rows.original), "--yes"]) == 1
    err = capsys.readouterr().err
    assert f"refused: Model {rows.original} ('original') is used by comparison" in err
    assert "With --cascade: Would delete model" in err
    assert f"prunescope delete model {rows.original} --cascade" in err
    assert exists(settings, ModelRow, rows.original)
    assert cli.main(["delete", "model", str(rows.original), "--cascade", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "1 comparison" in out and f"model {rows.pruned} stays, as an original" in out
    assert not exists(settings, ComparisonRow, rows.comparison)
    assert exists(settings, ModelRow, rows.pruned)
    assert terminal.asked == []  # --yes: never asked


def test_a_running_job_is_refused_without_a_cascade_offer(rows, settings, capsys):
    assert cli.main(["delete", "job", str(rows.job), "--yes"]) == 1
    err = capsys.readouterr().err
    assert f"Job {rows.job} (ping) is running: cancel it first" in err
    assert "--cascade" not in err
    assert exists(settings, JobRow, rows.job)
    assert cli.main(["delete", "dataset", "99", "--yes"]) == 1
    assert "(404): Dataset not found" in capsys.readouterr().err
