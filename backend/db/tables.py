"""SQLAlchemy 2.0 tables. (Database rows; neural-network architectures live in top-level models/.)

Schema changes go through Alembic (backend/db/migrations); ``Base.metadata`` is the target the
migrations are checked against in tests.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class DatasetRow(Base):
    """A registered dataset; its arrays live in the artifact store as one .npz."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    source: Mapped[str] = mapped_column(String(50))  # "builtin:digits", "upload", ...
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    num_classes: Mapped[int] = mapped_column(Integer)
    class_names: Mapped[list[Any]] = mapped_column(JSON)
    input_shape: Mapped[list[Any]] = mapped_column(JSON)
    n_train: Mapped[int] = mapped_column(Integer)
    n_test: Mapped[int] = mapped_column(Integer)
    artifact_sha: Mapped[str] = mapped_column(String(64))
    # sha256 of the uploaded file this dataset was read from (deduplicates uploads)
    upload_sha: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class JobRow(Base):
    """A unit of heavy work; executors move only its id."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), index=True, default="queued")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    stage: Mapped[str] = mapped_column(String(200), default="queued")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    traceback: Mapped[str | None] = mapped_column(Text, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # a sweep's child jobs point at the sweep
    parent_job_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id"), nullable=True, index=True
    )
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ModelRow(Base):
    """A trained or pruned network: architecture name + kwargs + checkpoint artifact."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    architecture: Mapped[str] = mapped_column(String(100))
    arch_kwargs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id"), nullable=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("models.id"), nullable=True)
    pruning_method: Mapped[str | None] = mapped_column(String(100), nullable=True)
    pruning_params: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    sparsity: Mapped[float] = mapped_column(Float, default=0.0)
    n_params: Mapped[int] = mapped_column(Integer)
    n_nonzero: Mapped[int] = mapped_column(Integer)
    accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    sparsity_report: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    checkpoint_sha: Mapped[str] = mapped_column(String(64))
    # sha256 of the uploaded checkpoint file this model was imported from
    upload_sha: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    # what one forward pass at registration proved the model accepts: one sample's shape and
    # the number of logits (null: registered without a dataset, nothing proven yet)
    input_shape: Mapped[list[int] | None] = mapped_column(JSON, nullable=True)
    num_classes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # why the exact linear-region counter cannot take this network (null: it can, or unknown)
    regions_unsupported: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    parent: Mapped[ModelRow | None] = relationship(remote_side=[id])


class AnalysisRow(Base):
    """Results of evaluating one model on one dataset split; per-sample table as Parquet."""

    __tablename__ = "analyses"
    __table_args__ = (UniqueConstraint("model_id", "dataset_id", "split"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"))
    split: Mapped[str] = mapped_column(String(20))
    accuracy: Mapped[float] = mapped_column(Float)
    n_samples: Mapped[int] = mapped_column(Integer)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)  # recall, precision, support, confusion
    samples_sha: Mapped[str] = mapped_column(String(64))
    # penultimate features (N, D) float32 .npy, and per-(corruption, severity) sample records
    features_sha: Mapped[str | None] = mapped_column(String(64), nullable=True)
    corruptions_sha: Mapped[str | None] = mapped_column(String(64), nullable=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ComparisonRow(Base):
    """Model A (original) against one or more models B (pruned) on one dataset."""

    __tablename__ = "comparisons"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"))
    model_a_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    # comparison-wide results (similarity map), written by the compare job
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    members: Mapped[list[ComparisonMemberRow]] = relationship(
        order_by="ComparisonMemberRow.position", cascade="all, delete-orphan"
    )

    @property
    def model_b_ids(self) -> list[int]:
        return [m.model_id for m in self.members]


class ComparisonMemberRow(Base):
    """One model B of a comparison, in display order."""

    __tablename__ = "comparison_models"

    comparison_id: Mapped[int] = mapped_column(ForeignKey("comparisons.id"), primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class ComparisonResultRow(Base):
    """What the compare job found for one pruned model B against A: recall distortion, flags,
    geometry shifts, aligned embedding (summary JSON + per-sample Parquet)."""

    __tablename__ = "comparison_results"
    __table_args__ = (UniqueConstraint("comparison_id", "model_b_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    comparison_id: Mapped[int] = mapped_column(ForeignKey("comparisons.id"), index=True)
    model_b_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)
    samples_sha: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RegionResultRow(Base):
    """Linear-region statistics of one model of a comparison (SCIENCE.md sect. 5): exact
    segment counts on the comparison's shared segment set and per-sample local measures."""

    __tablename__ = "region_results"
    __table_args__ = (UniqueConstraint("comparison_id", "model_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    comparison_id: Mapped[int] = mapped_column(ForeignKey("comparisons.id"), index=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)
    segments_sha: Mapped[str] = mapped_column(String(64))
    samples_sha: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LayerResultRow(Base):
    """Per prunable layer of A and one B of a comparison (SCIENCE.md sect. 7): sparsity, kept
    channels, relative weight change, linear CKA, dead-ReLU rates and weight histograms, as
    JSON (``{"n_samples": n, "layers": [...]}``)."""

    __tablename__ = "layer_results"
    __table_args__ = (UniqueConstraint("comparison_id", "model_b_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    comparison_id: Mapped[int] = mapped_column(ForeignKey("comparisons.id"), index=True)
    model_b_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AttributionResultRow(Base):
    """Geometric attribution of one test sample in A and one B of a comparison (occlusion
    heatmaps of angle, length and margin, and the sample's corrupted versions), as JSON."""

    __tablename__ = "attribution_results"
    __table_args__ = (
        UniqueConstraint("comparison_id", "model_b_id", "sample_index", "params_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    comparison_id: Mapped[int] = mapped_column(ForeignKey("comparisons.id"), index=True)
    model_b_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    sample_index: Mapped[int] = mapped_column(Integer)
    # canonical parameters, e.g. "patch=4,stride=4,fill=mean,severity=all"
    params_key: Mapped[str] = mapped_column(String(100))
    artifact_sha: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiTokenRow(Base):
    """An API token (``prunescope token create``). Only the sha256 of the secret is stored;
    ``prefix`` (its first characters) lets people tell their tokens apart."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(10))  # "read" or "write"
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ShareLinkRow(Base):
    """A read-only link to one comparison (``/s/<token>``); only the token's sha256 is stored."""

    __tablename__ = "share_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    comparison_id: Mapped[int] = mapped_column(ForeignKey("comparisons.id"), index=True)
    prefix: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(200), default="")
    created_by: Mapped[str] = mapped_column(String(250), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # the compare page's query the link was made from (b, cls, sel, view settings; no id)
    view: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)


class AuditEventRow(Base):
    """One recorded write, share-link use or refused request: who, when, what, and the answer."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(250))  # "token 3 (alice)", "share 5", "local"
    token_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    share_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    action: Mapped[str] = mapped_column(String(30))  # "POST", "share.open", "login", ...
    target: Mapped[str] = mapped_column(String(500))  # the path
    status: Mapped[int] = mapped_column(Integer)
    client: Mapped[str] = mapped_column(String(100), default="")
