"""Exact 2-D slice of the linear regions of a ReLU network (SCIENCE.md sect. 5).

The plane through three inputs p0, p1, p2 is x(u, v) = p0 + u (p1 - p0) + v (p2 - p0); the
three points sit at (u, v) = (0, 0), (1, 0), (0, 1). Over the domain rectangle (by default the
square [-m, 1 + m]^2 with margin m = 0.25, see ``domain``) every hidden value is piecewise
affine in (u, v). Per convex polygon of the domain we carry h(u, v) = h0 + u hu + v hv through
the ``torch.fx`` graph in float64, reusing the graph preparation of
:mod:`backend.analysis.linear_regions` (supported-module check, effective-weight float64 copy):

* affine layers map h0 with their bias and hu, hv without it; residual adds add all three parts;
  linear modules (average pools, flatten, reshape) map each part;
* at a ReLU / LeakyReLU every polygon is split (half-plane clipping of a convex polygon) by each
  unit's line h0 + u hu + v hv = 0 that crosses its interior; on each piece a unit is on or off,
  read from the sign at the piece's vertex mean (an interior point);
* at a MaxPool2d a polygon is split where a window's argmax changes: while the argmax at the
  polygon's vertices is not constant, it is cut by the line c_j = c_k of the two candidates
  that win at two of its vertices (the region where one candidate wins is convex, so a window
  whose argmax agrees at all vertices is constant on the polygon);
* at the output the polygons are cut in the same way by the decision lines o_j = o_k, so every
  final polygon has a single predicted class.

Pieces split earlier keep their own copies of the state (a batched piece list, as the 1-D
counter). Each activation region is convex (its constraints are linear once the pattern is
fixed), so ``n_patterns`` is the exact number of activation regions met by the domain;
``n_regions`` counts the convex pieces of the activation partition, which can exceed
``n_patterns`` when a max-pool cut line passes off the window's upper envelope.

Numerical conventions: a line cuts a polygon when vertices lie farther than ``1e-10`` (in
(u, v) units, signed distance h / ||(hu, hv)||) on both sides; vertices closer than that are
snapped onto the line.

Stopping early: ``cancel_check`` (a callable that raises to stop, e.g. a job's cancellation
check) is called before every node of every batch of polygons and before every polygon is
refined, so a slice of a large network stops well within a second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from backend.analysis.linear_regions import (
    CancelCheck,
    UnsupportedModuleError,
    _affine,
    _argmax_digests,
    _Counter,
    _relu_digests,
    _relu_slope,
    _sub_args,
    _windows,
)

__all__ = [
    "DegeneratePlaneError",
    "RegionBudgetExceeded",
    "RegionSlice",
    "SliceError",
    "UnsupportedModuleError",
    "slice_regions",
    "verify_slice",
]

_EPS_D = 1e-10  # distance (in (u, v)) a cut must reach into a polygon on both sides
_TIE_RTOL = 1e-9
_DONE = "__split_done__"  # env marker: resume a sub-batch after its split


class SliceError(ValueError):
    """Base class of the errors raised by :func:`slice_regions`."""


class RegionBudgetExceeded(SliceError):
    """The slice needs more polygons than ``max_regions``; no partial result is returned."""


class DegeneratePlaneError(SliceError):
    """p0, p1, p2 are collinear (or equal) or non-finite: they span no plane."""


@dataclass
class RegionSlice:
    """Exact activation regions on the plane x(u, v) = p0 + u (p1 - p0) + v (p2 - p0).

    Attributes:
        polygons: Final convex pieces, each a (k_i, 2) float64 array of (u, v) vertices in
            counter-clockwise order; one activation pattern and one predicted class each.
        areas: (P,) polygon areas in (u, v) units.
        patterns: One hashable key per polygon (same format as
            :func:`backend.analysis.linear_regions.sample_patterns`).
        predicted: (P,) argmax class of each polygon.
        n_regions: Convex pieces of the activation partition (before the decision cuts).
        n_patterns: Distinct activation patterns (= activation regions met by the domain).
        decision_boundary: Edges ((u1, v1), (u2, v2)) on which the predicted class changes,
            each reported once (from the polygon with the smaller class of the tied pair).
        domain: (u_min, u_max, v_min, v_max).
        domain_area: Area of the domain rectangle.
        logit_affine: (P, 3, C) logits = a[0] + u a[1] + v a[2] per polygon (not in to_json()).
        points: (3, ...) float64 p0, p1, p2 (not in to_json()).
    """

    polygons: list[np.ndarray]
    areas: np.ndarray
    patterns: list[bytes]
    predicted: np.ndarray
    n_regions: int
    n_patterns: int
    decision_boundary: list[tuple[tuple[float, float], tuple[float, float]]]
    domain: tuple[float, float, float, float]
    domain_area: float
    logit_affine: np.ndarray = field(repr=False)
    points: Tensor = field(repr=False)

    def to_json(self, max_polygons: int = 5000, digits: int = 6) -> dict[str, Any]:
        """JSON-ready dict for plotting (plotly ``fill='toself'`` traces).

        Args:
            max_polygons: Keep at most this many polygons, the largest by area
                (``truncated`` says whether some were left out).
            digits: Rounding of the coordinates.

        Returns:
            Dict with ``polygons`` (lists of [u, v]), ``predicted``, ``pattern_ids`` (index of
            the polygon's pattern among the distinct ones), counts, ``decision_boundary``,
            ``domain`` and ``points`` (the (u, v) of p0, p1, p2).
        """
        keep = np.argsort(-self.areas, kind="stable")[: max(0, int(max_polygons))]
        keep = np.sort(keep)
        ids: dict[bytes, int] = {}
        pid = [ids.setdefault(k, len(ids)) for k in self.patterns]
        return {
            "polygons": [
                [[round(float(u), digits), round(float(v), digits)] for u, v in self.polygons[i]]
                for i in keep
            ],
            "areas": [float(self.areas[i]) for i in keep],
            "predicted": [int(self.predicted[i]) for i in keep],
            "pattern_ids": [pid[i] for i in keep],
            "truncated": bool(len(keep) < len(self.polygons)),
            "n_polygons": len(self.polygons),
            "n_regions": int(self.n_regions),
            "n_patterns": int(self.n_patterns),
            "decision_boundary": [
                [[round(a, digits), round(b, digits)], [round(c, digits), round(d, digits)]]
                for (a, b), (c, d) in self.decision_boundary
            ],
            "domain": [float(x) for x in self.domain],
            "domain_area": float(self.domain_area),
            "points": {"p0": [0.0, 0.0], "p1": [1.0, 0.0], "p2": [0.0, 1.0]},
        }


# ----------------------------------------------------------------------------- geometry


def _area(poly: np.ndarray) -> float:
    """Shoelace area of a (k, 2) polygon (positive for counter-clockwise order)."""
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def _dist(poly: np.ndarray, line: np.ndarray) -> np.ndarray:
    """Signed distances (k, L) of the vertices (k, 2) to lines (L, 3) a0 + u au + v av = 0."""
    g = np.hypot(line[:, 1], line[:, 2])
    val = line[:, 0][None] + poly[:, :1] * line[:, 1][None] + poly[:, 1:] * line[:, 2][None]
    return val / np.where(g > 0, g, np.inf)[None]


def _cuts(poly: np.ndarray, lines: np.ndarray) -> np.ndarray:
    """Bool (L,): which lines (L, 3) cut the polygon's interior."""
    d = _dist(poly, lines)
    return (d.max(axis=0) > _EPS_D) & (d.min(axis=0) < -_EPS_D)


def _clip(poly: np.ndarray, line: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a convex polygon (k, 2) by a line (3,) into its (>= 0, <= 0) halves
    (Sutherland-Hodgman against both half-planes); vertices within _EPS_D snap onto the line."""
    d = _dist(poly, line[None])[:, 0]
    d[np.abs(d) <= _EPS_D] = 0.0
    pos: list[np.ndarray] = []
    neg: list[np.ndarray] = []
    k = poly.shape[0]
    for i in range(k):
        j = (i + 1) % k
        if d[i] >= 0:
            pos.append(poly[i])
        if d[i] <= 0:
            neg.append(poly[i])
        if d[i] * d[j] < 0:
            x = poly[i] + (d[i] / (d[i] - d[j])) * (poly[j] - poly[i])
            pos.append(x)
            neg.append(x)
    return np.array(pos), np.array(neg)


def _centroid(poly: np.ndarray) -> np.ndarray:
    return poly.mean(axis=0)


# ----------------------------------------------------------------------------- state


@dataclass
class _Triple:
    """h(u, v) = h0 + u hu + v hv on a batch of polygons; each part (P, ...)."""

    h0: Tensor
    hu: Tensor
    hv: Tensor

    def gather(self, rows: Tensor) -> _Triple:
        return _Triple(self.h0[rows], self.hu[rows], self.hv[rows])

    def parts(self) -> tuple[Tensor, Tensor, Tensor]:
        return self.h0, self.hu, self.hv


def _lines(x0: Tensor, xu: Tensor, xv: Tensor) -> np.ndarray:
    """Per-polygon lines: (P, N, 3) from parts (P, N)."""
    return torch.stack([x0, xu, xv], dim=-1).cpu().numpy()


class _Slicer:
    """Float64 copy of a model (via the 1-D counter's preparation) that slices planes."""

    def __init__(self, model: nn.Module, cancel_check: CancelCheck | None = None) -> None:
        self.c = _Counter(model)
        if cancel_check is not None:
            self.c.cancel_check = cancel_check
        self.n_pieces = 0
        self.max_regions = 0

    def _grow(self, added: int) -> None:
        self.n_pieces += added
        if self.n_pieces > self.max_regions:
            raise RegionBudgetExceeded(
                f"the slice needs more than max_regions={self.max_regions} polygons"
            )

    def _node(self, node: torch.fx.Node, kind: str, env: dict[str, Any]) -> Any:
        """Output of an affine / linear / shape / add node (mirrors the 1-D counter)."""
        c = self.c
        if kind == "size":
            args = _sub_args(node.args, env, lambda v: v.h0 if isinstance(v, _Triple) else v)
            return c._plain(node, kind, args, node.kwargs)
        if kind == "add":
            args = _sub_args(node.args, env, lambda v: v)
            x: Any = args[0]
            other: Any = args[1] if len(args) > 1 else node.kwargs.get("other")
            alpha: Any = node.kwargs.get("alpha", 1)
            if isinstance(other, _Triple) and isinstance(x, _Triple):
                return _Triple(
                    x.h0 + alpha * other.h0, x.hu + alpha * other.hu, x.hv + alpha * other.hv
                )
            if isinstance(x, _Triple):
                return _Triple(x.h0 + alpha * other, x.hu, x.hv)
            raise UnsupportedModuleError(f"add at node '{node.name}' has no tensor input")
        args = _sub_args(node.args, env, lambda v: v)
        x = args[0]
        assert isinstance(x, _Triple)
        p = x.h0.shape[0]
        if kind == "affine":
            m = c.modules[str(node.target)]
            return _Triple(_affine(m, x.h0, True), _affine(m, x.hu, False), _affine(m, x.hv, False))
        if kind == "linear":
            m = c.modules[str(node.target)]
            if isinstance(m, nn.Dropout | nn.Identity):
                return x
            y = m(torch.cat(x.parts()))
            return _Triple(y[:p], y[p : 2 * p], y[2 * p :])
        rest = _sub_args(node.args[1:], env, lambda v: v.h0 if isinstance(v, _Triple) else v)
        out = []
        for part in x.parts():
            if node.op == "call_method":
                out.append(getattr(part, str(node.target))(*rest, **node.kwargs))
            else:
                out.append(node.target(part, *rest, **node.kwargs))  # type: ignore[operator]
        return _Triple(*out)

    # --- splitting
    def _refine_relu(
        self, polys: list[np.ndarray], lines: np.ndarray
    ) -> tuple[list[np.ndarray], list[int]]:
        """Cut each polygon i by its crossing unit lines ``lines[i]`` (N, 3)."""
        out: list[np.ndarray] = []
        parent: list[int] = []
        for i, poly in enumerate(polys):
            self.c.cancel_check()
            li = lines[i]
            cand = np.flatnonzero(_cuts(poly, li))
            stack = [(poly, cand)]
            while stack:
                q, cd = stack.pop()
                if cd.size:
                    cd = cd[_cuts(q, li[cd])]
                if cd.size == 0:
                    out.append(q)
                    parent.append(i)
                    continue
                a, b = _clip(q, li[cd[0]])
                self._grow(1)
                stack.append((b, cd[1:]))
                stack.append((a, cd[1:]))
        return out, parent

    def _refine_max(
        self, polys: list[np.ndarray], cand: np.ndarray
    ) -> tuple[list[np.ndarray], list[int]]:
        """Cut each polygon i until every window's argmax is constant; cand (P, N, K, 3)."""
        out: list[np.ndarray] = []
        parent: list[int] = []
        for i, poly in enumerate(polys):
            self.c.cancel_check()
            ci = cand[i]  # (N, K, 3)
            stack = [(poly, np.arange(ci.shape[0]))]
            while stack:
                q, win = stack.pop()
                line = None
                if win.size:
                    c = ci[win]
                    vals = (
                        c[None, :, :, 0]
                        + q[:, 0, None, None] * c[None, :, :, 1]
                        + q[:, 1, None, None] * c[None, :, :, 2]
                    )  # (k, W, K)
                    am = vals.argmax(axis=2)
                    varying = (am != am[:1]).any(axis=0)
                    for w in np.flatnonzero(varying):
                        j = int(am[0, w])
                        ks = np.unique(am[:, w])
                        lines_w = c[w, j][None] - c[w, ks[ks != j]]
                        hit = np.flatnonzero(_cuts(q, lines_w))
                        if hit.size:
                            line = lines_w[hit[0]]
                            break
                    win = win[varying]
                if line is None:
                    out.append(q)
                    parent.append(i)
                    continue
                a, b = _clip(q, line)
                self._grow(1)
                stack.append((b, win))
                stack.append((a, win))
        return out, parent

    # --- exact pass
    def _run(
        self, start: int, env: dict[str, Any], polys: list[np.ndarray], keys: list[bytes]
    ) -> list[tuple[list[np.ndarray], list[bytes], np.ndarray]]:
        """Continue polygons from node ``start``; returns final (polygons, keys, (P, 3, C))."""
        c = self.c
        dev = c.device
        for i in range(start, len(c.nodes)):
            c.cancel_check()
            node, kind = c.nodes[i]
            if kind == "output":
                out = env[node.args[0].name]  # type: ignore[union-attr]
                p = len(polys)
                aff = torch.stack([t.reshape(p, -1) for t in out.parts()], dim=1)
                return [(polys, keys, aff.cpu().numpy())]
            if kind in ("relu", "maxpool"):
                x = env[node.args[0].name]  # type: ignore[union-attr]
                p = len(polys)
                m = c.modules.get(str(node.target))
                if env.pop(_DONE, None) == node.name:
                    new, parent = polys, list(range(p))
                elif kind == "relu":
                    lines = _lines(*(t.reshape(p, -1) for t in x.parts()))
                    new, parent = self._refine_relu(polys, lines)
                else:
                    assert isinstance(m, nn.MaxPool2d)
                    parts = [_windows(m, t) for t in x.parts()]
                    cand = torch.stack([pt[0] for pt in parts], dim=-1).cpu().numpy()
                    new, parent = self._refine_max(polys, cand)
                if len(new) != p:
                    rows = torch.as_tensor(parent, dtype=torch.long, device=dev)
                    if len(new) > c.batch_limit:
                        results = []
                        for s in range(0, len(new), c.batch_limit):
                            e = s + c.batch_limit
                            sub = {
                                k: v.gather(rows[s:e]) if isinstance(v, _Triple) else v
                                for k, v in env.items()
                            }
                            sub[_DONE] = node.name
                            sub_keys = [keys[j] for j in parent[s:e]]
                            results += self._run(i, sub, new[s:e], sub_keys)
                        return results
                    env = {
                        k: v.gather(rows) if isinstance(v, _Triple) else v for k, v in env.items()
                    }
                    keys = [keys[j] for j in parent]
                    x = env[node.args[0].name]  # type: ignore[union-attr]
                polys = new
                p = len(polys)
                mid = torch.as_tensor(np.array([_centroid(q) for q in polys]), device=dev)
                if kind == "relu":
                    view = (-1, *([1] * (x.h0.ndim - 1)))
                    val = x.h0 + mid[:, 0].view(view) * x.hu + mid[:, 1].view(view) * x.hv
                    on = val > 0
                    slope = _relu_slope(node, c.modules)
                    factor = torch.where(on, 1.0, slope).to(x.h0.dtype)
                    value: Any = _Triple(x.h0 * factor, x.hu * factor, x.hv * factor)
                    digests = _relu_digests(on)
                else:
                    assert isinstance(m, nn.MaxPool2d)
                    parts = [_windows(m, t) for t in x.parts()]
                    shape = parts[0][1]
                    c0, cu, cv = (pt[0] for pt in parts)
                    idx = (c0 + mid[:, 0, None, None] * cu + mid[:, 1, None, None] * cv).argmax(
                        dim=2, keepdim=True
                    )
                    value = _Triple(*(t.gather(2, idx).reshape(shape) for t in (c0, cu, cv)))
                    digests = _argmax_digests(idx[:, :, 0])
                keys = [k + d for k, d in zip(keys, digests, strict=True)]
            elif kind == "input":
                value = env.pop("__input__")
            else:
                value = self._node(node, kind, env)
            env[node.name] = value
            for k in [k for k in env if k != "__input__" and c.last_use.get(k, -1) <= i]:
                del env[k]
        raise AssertionError("graph without output node")

    def slice(
        self, pts: Tensor, domain: tuple[float, float, float, float], max_regions: int
    ) -> RegionSlice:
        self.n_pieces, self.max_regions = 1, max_regions
        u0, u1, v0, v1 = domain
        square = np.array([[u0, v0], [u1, v0], [u1, v1], [u0, v1]], dtype=np.float64)
        p0, p1, p2 = pts[0], pts[1], pts[2]
        env = {"__input__": _Triple(p0[None], (p1 - p0)[None], (p2 - p0)[None])}
        self.c._support(tuple(p0.shape))
        with torch.no_grad():
            results = self._run(0, env, [square], [b""])
        polys = [q for r in results for q in r[0]]
        keys = [k for r in results for k in r[1]]
        aff = np.concatenate([r[2] for r in results])
        n_regions = len(polys)
        # decision cuts: one "window" whose candidates are the logits
        cand = aff.transpose(0, 2, 1)[:, None]  # (P, 1, C, 3)
        final, parent = self._refine_max(polys, cand)
        keys = [keys[j] for j in parent]
        aff = aff[parent]
        mids = np.array([_centroid(q) for q in final])
        logits = aff[:, 0] + mids[:, :1] * aff[:, 1] + mids[:, 1:] * aff[:, 2]
        predicted = logits.argmax(axis=1)
        return RegionSlice(
            polygons=final,
            areas=np.array([_area(q) for q in final]),
            patterns=keys,
            predicted=predicted,
            n_regions=n_regions,
            n_patterns=len(set(keys)),
            decision_boundary=_decision_edges(final, aff, predicted),
            domain=domain,
            domain_area=(u1 - u0) * (v1 - v0),
            logit_affine=aff,
            points=pts,
        )


def _decision_edges(
    polys: list[np.ndarray], aff: np.ndarray, predicted: np.ndarray
) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """Edges of polygons that lie on a tie line o_c = o_k of their predicted class c with a
    class k > c that is the runner-up there (reported once, from the class-c side)."""
    edges: list[tuple[tuple[float, float], tuple[float, float]]] = []
    for q, a, c in zip(polys, aff, predicted, strict=True):
        o = a[0][None] + q[:, :1] * a[1][None] + q[:, 1:] * a[2][None]  # (k, C)
        tol = _TIE_RTOL * (1.0 + float(np.abs(o).max()))
        tied = np.abs(o - o[:, c : c + 1]) <= tol  # (k, C)
        tied[:, : c + 1] = False
        for i in range(q.shape[0]):
            j = (i + 1) % q.shape[0]
            both = tied[i] & tied[j]
            if both.any():
                edges.append(((float(q[i, 0]), float(q[i, 1])), (float(q[j, 0]), float(q[j, 1]))))
    return edges


def _domain(domain: float | tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    if isinstance(domain, int | float) and not isinstance(domain, bool):
        m = float(domain)
        box = (-m, 1.0 + m, -m, 1.0 + m)
    elif isinstance(domain, tuple | list) and len(domain) == 4:
        box = tuple(float(x) for x in domain)  # type: ignore[assignment]
    else:
        raise ValueError(f"domain={domain!r} should be a margin or (u_min, u_max, v_min, v_max)")
    if not all(math.isfinite(x) for x in box) or box[1] <= box[0] or box[3] <= box[2]:
        raise ValueError(f"domain={box} should be a finite non-empty rectangle")
    return box


def _check_points(p0: Tensor, p1: Tensor, p2: Tensor, device: torch.device) -> Tensor:
    for name, t in (("p0", p0), ("p1", p1), ("p2", p2)):
        if not isinstance(t, Tensor):
            raise ValueError(f"{name} should be a tensor of the model's input shape")
    if not (p0.shape == p1.shape == p2.shape):
        raise ValueError(f"p0, p1, p2 shapes differ: {p0.shape}, {p1.shape}, {p2.shape}")
    pts = torch.stack([p.detach().to(device=device, dtype=torch.float64) for p in (p0, p1, p2)])
    if not bool(torch.isfinite(pts).all()):
        raise DegeneratePlaneError("p0, p1, p2 contain non-finite values (NaN or inf)")
    d = (pts[1:] - pts[:1]).reshape(2, -1)
    gram = d @ d.T
    scale = float(gram[0, 0] * gram[1, 1])
    det = float(gram[0, 0] * gram[1, 1] - gram[0, 1] ** 2)
    if scale == 0.0 or det <= 1e-12 * scale:
        raise DegeneratePlaneError("p0, p1, p2 are collinear or equal: they span no plane")
    return pts


def slice_regions(
    model: nn.Module,
    p0: Tensor,
    p1: Tensor,
    p2: Tensor,
    *,
    domain: float | tuple[float, float, float, float] = 0.25,
    max_regions: int = 50_000,
    cancel_check: CancelCheck | None = None,
) -> RegionSlice:
    """Exact activation regions and decision regions on the plane through p0, p1, p2
    (SCIENCE.md sect. 5, exact 2-D slice).

    Args:
        model: ReLU network of supported operations
            (:func:`backend.analysis.linear_regions.check_supported`); pruning masks applied.
            Copied to float64 in eval mode, run on its own device.
        p0: Input of the model's input shape, e.g. (1, 8, 8); (u, v) = (0, 0).
        p1: Same shape; (u, v) = (1, 0).
        p2: Same shape; (u, v) = (0, 1).
        domain: Margin m for the square [-m, 1 + m]^2 (it contains the triangle p0 p1 p2),
            or an explicit rectangle (u_min, u_max, v_min, v_max).
        max_regions: Raise RegionBudgetExceeded when more polygons are needed.
        cancel_check: Called between nodes and polygons; raise from it to stop (module
            docstring).

    Returns:
        RegionSlice.

    Raises:
        UnsupportedModuleError: Unsupported module or operation.
        DegeneratePlaneError: Collinear, equal or non-finite points.
        RegionBudgetExceeded: More than ``max_regions`` polygons.
        ValueError: Bad shapes, domain or max_regions.
    """
    if isinstance(max_regions, bool) or not isinstance(max_regions, int) or max_regions < 1:
        raise ValueError(f"max_regions={max_regions!r} should be a positive integer")
    box = _domain(domain)
    slicer = _Slicer(model, cancel_check)
    pts = _check_points(p0, p1, p2, slicer.c.device)
    return slicer.slice(pts, box, max_regions)


def verify_slice(model: nn.Module, result: RegionSlice, n: int = 32, seed: int = 0) -> float:
    """Max abs difference between the per-polygon affine logits and a plain float64 forward
    pass at ``n`` random points inside random polygons (SCIENCE.md sect. 5 self-check).

    Args:
        model: The model ``result`` was computed for.
        result: Output of :func:`slice_regions`.
        n: Number of random points.
        seed: Seed of the draw.

    Returns:
        max |logits_piecewise - logits_forward| over the points and classes.
    """
    rng = np.random.default_rng(seed)
    idx = rng.integers(len(result.polygons), size=n)
    uv = np.empty((n, 2))
    for r, i in enumerate(idx):
        q = result.polygons[i]
        w = rng.dirichlet(np.ones(q.shape[0]))
        uv[r] = w @ q
    a = result.logit_affine[idx]
    pred = a[:, 0] + uv[:, :1] * a[:, 1] + uv[:, 1:] * a[:, 2]
    c = _Counter(model)
    pts = result.points.to(c.device)
    t = torch.as_tensor(uv, dtype=torch.float64, device=c.device)
    view = (-1, *([1] * (pts.ndim - 1)))
    x = pts[0][None] + t[:, 0].view(view) * (pts[1] - pts[0])[None]
    x = x + t[:, 1].view(view) * (pts[2] - pts[0])[None]
    with torch.no_grad():
        ref = c.model64(x).reshape(n, -1).cpu().numpy()
    return float(np.abs(pred - ref).max())
