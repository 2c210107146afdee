"""SQLAlchemy 2.0 typed models. The schema is created only by Alembic migrations."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, synonym

# Explicit constraint names so migrations behave the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Timezone-aware now in UTC (stored as naive UTC by SQLite)."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON, datetime: DateTime(timezone=True)}


class Role(enum.StrEnum):
    USER = "user"
    ADMIN = "admin"


class Origin(enum.StrEnum):
    """How an image's bytes first arrived (``images.origin``); it never changes."""

    UPLOAD = "upload"
    SEARCH = "search"
    IMPORT = "import"


class ItemSource(enum.StrEnum):
    """Who set a dataset item's label (``dataset_items.source``): a correction relabels a searched or
    imported photo, and from then on its source is ``correction`` while its :class:`Origin` stays."""

    SEARCH = "search"
    IMPORT = "import"
    CORRECTION = "correction"


class CorrectionStatus(enum.StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class Split(enum.StrEnum):
    TRAIN = "train"
    VALID = "valid"
    GOLDEN = "golden"


class RunStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"


class Trigger(enum.StrEnum):
    SCHEDULE = "schedule"
    CORRECTIONS = "corrections"
    ADMIN = "admin"
    CLI = "cli"


def _enum(cls: type[enum.StrEnum], name: str) -> Enum:
    # VARCHAR + CHECK on every backend (no native PG enum types to migrate by hand).
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


class User(Base):
    __tablename__ = "users"
    # One person per transport account: Telegram user 42 and Discord user 42 are two rows.
    __table_args__ = (UniqueConstraint("transport", "external_id", name="uq_users_transport_external_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    transport: Mapped[str] = mapped_column(String(16), default="telegram", server_default="telegram")
    external_id: Mapped[int] = mapped_column(BigInteger)  # the transport's user id (Discord: a snowflake)
    telegram_id = synonym("external_id")  # the name before other transports; means nothing without transport
    display_name: Mapped[str] = mapped_column(String(256), default="")
    role: Mapped[Role] = mapped_column(_enum(Role, "role"), default=Role.USER)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Tell this user when a model trained on their correction starts serving (opt-out by command).
    notify_learned: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())


class Image(Base):
    __tablename__ = "images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    path: Mapped[str] = mapped_column(String(512))  # relative to the data dir's images/
    size_bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    format: Mapped[str] = mapped_column(String(16))
    phash: Mapped[str] = mapped_column(String(16), index=True)
    origin: Mapped[Origin] = mapped_column(_enum(Origin, "origin"))
    source_url: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (
        # At most one active version, enforced by the database on both backends.
        Index(
            "uq_model_versions_one_active",
            "is_active",
            unique=True,
            sqlite_where=text("is_active = 1"),
            postgresql_where=text("is_active"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    artifact_path: Mapped[str | None] = mapped_column(String(512), default=None)  # None: built-in v0
    sha256: Mapped[str] = mapped_column(String(64))
    arch: Mapped[str] = mapped_column(String(64))
    labels: Mapped[list[str]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    is_active: Mapped[bool] = mapped_column(Boolean, default=False)
    previous_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    activated_at: Mapped[datetime | None] = mapped_column(default=None)
    # Why a serving process could not load this version (None: never failed, or loaded since).
    load_error: Mapped[str | None] = mapped_column(Text, default=None)


class PredictionRecord(Base):
    """A :class:`bearbot.prediction.Prediction` as stored: one per answered photo, with both messages."""

    __tablename__ = "predictions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    transport: Mapped[str] = mapped_column(String(16), default="telegram", server_default="telegram")  # of the chat
    chat_id: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[int | None] = mapped_column(BigInteger, default=None)  # the user's photo message
    reply_message_id: Mapped[int | None] = mapped_column(BigInteger, default=None)  # the bot's answer
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"), default=None)
    label: Mapped[str] = mapped_column(String(32))
    confidence: Mapped[float] = mapped_column(Float)
    probabilities: Mapped[dict[str, Any]] = mapped_column(JSON)
    is_bear: Mapped[bool] = mapped_column(Boolean, default=True)
    latency_ms: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    image: Mapped[Image] = relationship()

    __table_args__ = (
        Index("ix_predictions_chat_reply", "chat_id", "reply_message_id"),
        Index("ix_predictions_chat_message", "chat_id", "message_id"),
    )


class Correction(Base):
    __tablename__ = "corrections"
    # A user correcting the same image again updates their correction.
    __table_args__ = (UniqueConstraint("image_id", "user_id", name="uq_corrections_image_user"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prediction_id: Mapped[int | None] = mapped_column(ForeignKey("predictions.id"), default=None)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)  # trust counts per user
    label: Mapped[str] = mapped_column(String(32))
    status: Mapped[CorrectionStatus] = mapped_column(
        _enum(CorrectionStatus, "correction_status"), default=CorrectionStatus.PENDING, index=True
    )
    reviewed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Set when a training snapshot has dealt with this (accepted) correction, whatever the outcome
    # (added, relabelled, merged, superseded, refused as golden); cleared when the label changes.
    merged_at: Mapped[datetime | None] = mapped_column(default=None)
    merge_outcome: Mapped[str | None] = mapped_column(String(16), default=None)
    # The first promoted model version trained on this correction (None: not in a serving model yet).
    learned_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"), default=None)
    # When the bot claimed telling the user about it (once, whichever replica wins; see storage/notices.py).
    learned_notice_at: Mapped[datetime | None] = mapped_column(default=None)


class DatasetItem(Base):
    __tablename__ = "dataset_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), unique=True)
    label: Mapped[str] = mapped_column(String(32), index=True)
    # The same VARCHAR(16) as ever, without a CHECK constraint (so no migration), read as the enum.
    source: Mapped[ItemSource] = mapped_column(
        Enum(ItemSource, native_enum=False, create_constraint=False, length=16, values_callable=lambda e: [m.value for m in e])
    )
    split: Mapped[Split] = mapped_column(_enum(Split, "split"), index=True)
    correction_id: Mapped[int | None] = mapped_column(ForeignKey("corrections.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    image: Mapped[Image] = relationship()


class TrainingRun(Base):
    __tablename__ = "training_runs"
    __table_args__ = (
        # At most one queued-or-running run per lane (there is one lane: every run shares it),
        # enforced by the database on both backends, so two racing requests cannot both queue.
        Index(
            "uq_training_runs_one_active",
            "lane",
            unique=True,
            sqlite_where=text("status IN ('queued', 'running')"),
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trigger: Mapped[Trigger] = mapped_column(_enum(Trigger, "trigger"))
    status: Mapped[RunStatus] = mapped_column(_enum(RunStatus, "run_status"), default=RunStatus.QUEUED, index=True)
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    requested_chat_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    requested_transport: Mapped[str | None] = mapped_column(String(16), default=None)  # where requested_chat_id is
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    n_train: Mapped[int | None] = mapped_column(Integer, default=None)
    n_valid: Mapped[int | None] = mapped_column(Integer, default=None)
    n_golden: Mapped[int | None] = mapped_column(Integer, default=None)
    n_corrections: Mapped[int | None] = mapped_column(Integer, default=None)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    worker: Mapped[str | None] = mapped_column(String(128), default=None)  # host:pid:uuid holding it
    lane: Mapped[str] = mapped_column(String(32), default="train", server_default="train")
    # The holder renews this while it works; a running run whose lease ran out is presumed dead.
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"), default=None)
    notified: Mapped[bool] = mapped_column(Boolean, default=False)


class RateCounter(Base):
    """Hits of one per-user limit in one fixed window (storage/limits.py); shared by every replica."""

    __tablename__ = "rate_limits"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # photos, corrections, chatter
    subject: Mapped[str] = mapped_column(String(80), primary_key=True)  # who: a transport's user id
    slot: Mapped[int] = mapped_column(BigInteger, primary_key=True, index=True)  # unix time // window
    hits: Mapped[int] = mapped_column(Integer, default=0)


class UserTrust(Base):
    """What a user's corrections have earned (storage/trust.py): the correction policy reads it."""

    __tablename__ = "user_trust"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    first_seen: Mapped[datetime] = mapped_column(default=utcnow)
    made: Mapped[int] = mapped_column(Integer, default=0)  # corrections (one per photo, updates included)
    right: Mapped[int] = mapped_column("right_count", Integer, default=0)  # agreed with the accepted label
    wrong: Mapped[int] = mapped_column("wrong_count", Integer, default=0)  # rejected, or another label accepted
    muted: Mapped[bool] = mapped_column(Boolean, default=False)  # by an admin: corrections never count
    muted_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
