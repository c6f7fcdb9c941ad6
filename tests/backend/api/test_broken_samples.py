"""The samples one corruption at one severity broke in B and not in A (issue 18: a robustness
cell selects them), checked against a brute force over each sample's own corruption outcomes
(``GET /comparisons/{id}/samples/{index}``, another code path)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient


def ok(resp: Any) -> Any:
    assert resp.status_code in (200, 201), resp.text
    return resp.json()


def test_broken_samples_match_each_samples_outcomes(client: TestClient) -> None:
    ds = ok(client.post("/api/datasets", json={"builtin": "digits"}))
    spec = {"dataset_id": ds["id"], "architecture": "digits_cnn", "epochs": 2}
    a = ok(client.post("/api/jobs", json={"kind": "train", "spec": spec}))["result"]["model_id"]
    prune = {"model_id": a, "method": "global_magnitude", "sparsity": 0.9, "finetune": None}
    b = ok(client.post("/api/jobs", json={"kind": "prune", "spec": prune}))["result"]["model_id"]
    body = {"model_a_id": a, "model_b_ids": [b], "embedding": "pca"}
    body |= {"corruptions": ["gaussian_noise", "contrast"], "severities": [1, 5]}
    cid = ok(client.post("/api/comparisons", json=body))["id"]
    n = ok(client.get(f"/api/comparisons/{cid}/view"))["analysis_a"]["n_samples"]

    # brute force: every sample's outcomes, one request each
    details = [ok(client.get(f"/api/comparisons/{cid}/samples/{i}")) for i in range(n)]
    checked = 0
    for corruption in ("gaussian_noise", "contrast"):
        for severity in (1, 5):
            expected, frag_a, frag_b = [], 0, 0
            for d in details:
                grid = d["corruptions"]
                r, c = grid["names"].index(corruption), grid["severities"].index(severity)
                fa = d["a"]["correct"] and not grid["correct_a"][r][c]
                fb = d["b"]["correct"] and not grid["correct_b"][r][c]
                frag_a, frag_b = frag_a + fa, frag_b + fb
                if fb and not fa:
                    expected.append(d["index"])
            got = ok(
                client.get(
                    f"/api/comparisons/{cid}/broken",
                    params={"corruption": corruption, "severity": severity, "b": b},
                )
            )
            assert got["ids"] == expected and got["count"] == len(expected)
            assert (got["fragile_a"], got["fragile_b"]) == (frag_a, frag_b)
            checked += len(expected)
    assert checked > 0  # the 90%-sparse model is broken by something: the test can fail

    # settings the analyses did not run, and bad ones, say so
    missing = client.get(
        f"/api/comparisons/{cid}/broken", params={"corruption": "fog", "severity": 1}
    )
    assert missing.status_code == 404 and "no outcomes under fog" in missing.json()["detail"]
    bad = client.get(
        f"/api/comparisons/{cid}/broken", params={"corruption": "contrast", "severity": 6}
    )
    assert bad.status_code == 422


def test_a_comparison_without_corruptions_says_so(client: TestClient) -> None:
    ds = ok(client.post("/api/datasets", json={"builtin": "digits"}))
    spec = {"dataset_id": ds["id"], "architecture": "digits_cnn", "epochs": 1}
    a = ok(client.post("/api/jobs", json={"kind": "train", "spec": spec}))["result"]["model_id"]
    prune = {"model_id": a, "method": "random", "sparsity": 0.5, "finetune": None}
    b = ok(client.post("/api/jobs", json={"kind": "prune", "spec": prune}))["result"]["model_id"]
    body = {"model_a_id": a, "model_b_ids": [b], "embedding": "pca"}
    cid = ok(client.post("/api/comparisons", json=body))["id"]
    answer = client.get(
        f"/api/comparisons/{cid}/broken", params={"corruption": "contrast", "severity": 1}
    )
    assert answer.status_code == 404 and "without corruptions" in answer.json()["detail"]
