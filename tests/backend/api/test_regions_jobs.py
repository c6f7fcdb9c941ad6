"""The regions job through the REST API: A and every B measured on the same segments."""

from __future__ import annotations

import numpy as np
import torch


def test_regions_job_measures_every_model_on_shared_segments(client, pipeline):
    torch.set_num_threads(1)
    cid = pipeline.comparison_id
    resp = client.get(f"/api/comparisons/{cid}/regions")
    assert resp.status_code == 409 and "kind 'regions'" in resp.json()["detail"]
    job = client.post(
        "/api/jobs",
        json={
            "kind": "regions",
            "spec": {"comparison_id": cid, "n_pairs": 2, "n_samples": 12, "slice_extent": 0.02},
        },
    ).json()
    assert job["status"] == "succeeded", job["error"]
    body = client.get(f"/api/comparisons/{cid}/regions").json()
    assert {r["model_id"] for r in body["data"]} == {pipeline.original_id, *pipeline.pruned_ids}
    lengths = {}
    for result in body["data"]:
        assert set(result["segments"]) == {"within_class", "across_class", "local"}
        assert 0.0 <= result["decision_exact_fraction"] <= 1.0
        assert all(0.0 <= v <= 1.0 for v in result["dead_neuron_rate"].values())
        if result["model_id"] != pipeline.original_id:
            assert result["pattern_agreement_with_a"]  # same widths: unstructured pruning
        seg = client.get(
            f"/api/comparisons/{cid}/regions/{result['model_id']}/table",
            params={"which": "segments"},
        ).json()["columns"]
        # pruning leaves neurons whose flips do not reach the output (SCIENCE.md sect. 5)
        assert np.all(np.array(seg["linear_pieces"]) <= np.array(seg["activation_pieces"]))
        assert np.all(np.array(seg["distinct_patterns"]) <= np.array(seg["activation_pieces"]))
        lengths[result["model_id"]] = seg["length"]
        smp = client.get(f"/api/comparisons/{cid}/regions/{result['model_id']}/table").json()
        assert smp["count"] == 12
        dist = np.array(smp["columns"]["region_distance"], dtype=float)
        assert np.all(dist > 0)
        # the decision interval: the lower end as before, an upper end never below it
        cols = smp["columns"]
        lower = np.array(cols["decision_lower"], dtype=float)
        assert np.array_equal(lower, np.array(cols["decision_distance"], dtype=float))
        upper = np.array([np.nan if v is None else v for v in cols["decision_upper"]])
        found = ~np.isnan(upper)
        assert found.any() and np.all(lower[found] <= upper[found])
        assert set(cols["decision_upper_direction"]) <= {"margin_gradient", "towards_sample", ""}
        assert all(1 <= r <= 4 for r in cols["decision_rays"])
        towards = [
            t
            for t, d in zip(
                cols["decision_upper_target"], cols["decision_upper_direction"], strict=True
            )
            if d == "towards_sample"
        ]
        assert all(0 <= t for t in towards)
        assert result["samples"]["decision_upper"]["median"] is not None
        # the exact region map: same plane for every model, areas tile the domain
        rmap = client.get(f"/api/comparisons/{cid}/regions/{result['model_id']}/slice").json()
        assert "error" not in rmap, rmap.get("error")
        assert rmap["samples"] == result["slice"]["samples"]
        assert rmap["self_check_error"] < 1e-9
        if not rmap["truncated"]:
            assert abs(sum(rmap["areas"]) - rmap["extent"] ** 2) < 1e-9
        assert len(rmap["polygons"]) == len(rmap["predicted"])
    # every model saw exactly the same segments
    assert len({tuple(v) for v in lengths.values()}) == 1


def test_regions_job_refuses_unknown_comparisons(client):
    resp = client.post("/api/jobs", json={"kind": "regions", "spec": {"comparison_id": 99}})
    assert resp.status_code == 422 and "comparison 99 does not exist" in resp.json()["detail"]
