"""One settings object, read from the environment and ``.env``.

Every field is documented in ``.env.example``. Names that outside tools rely on
(``TELEGRAM_BOT_TOKEN``, ``TELEGRAM_API_URL``, ``BEARBOT_*``) are fixed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bearbot.labels import DEFAULT_LABELS, parse_labels


class SettingsError(Exception):
    """A setting has a bad value; the message is one line that names it."""


# Defaults that code outside the settings also needs (functions' keyword defaults); one source each.
DEFAULT_MAX_PIXELS = 40_000_000  # decompression-bomb guard: larger non-JPEG images are refused
DEFAULT_MAX_SIDE = 2560  # the largest photo size Telegram sends; longer JPEG sides shrink while decoding
DEFAULT_BEAR_THRESHOLD = 0.88  # "is this a bear" cut-off, measured by bench/not_bear.py (bearbot/model_def.py)
# The size models see photos at (square centre crop), v0's and, by default (BEARBOT_IMAGE_SIZE),
# trained ones': 9/7 of ImageNet's 224 px training crops. Nets trained on random-resized crops
# learn objects larger than a full-image resize to the same size shows them; testing ~1.3× larger
# compensates (Touvron et al. 2019, "FixRes": best test size 288 for training at 224). Measured
# with v0 on all 332 photos of ../shared/data/bears: 2.41 % error at 224, 1.81 % at 256 and 288,
# 1.20 % at 320 (chosen while looking at that folder, so treat it as tuned to it).
DEFAULT_SERVE_SIZE = 288


class Settings(BaseSettings):
    """All configuration. Construct with :func:`load_settings` to get one-line errors."""

    model_config = SettingsConfigDict(
        # Every field is read from BEARBOT_<FIELD>, except the two Telegram names that keep their own.
        env_prefix="BEARBOT_", env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    # --- Telegram -------------------------------------------------------------------------
    telegram_bot_token: SecretStr | None = Field(None, validation_alias="TELEGRAM_BOT_TOKEN")
    telegram_api_url: str = Field("https://api.telegram.org", validation_alias="TELEGRAM_API_URL")
    admin_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    webhook_url: str | None = None
    webhook_listen: str = "0.0.0.0"
    webhook_port: int = Field(8443, ge=1, le=65535)
    # Required in webhook mode: Telegram sends it in a header and updates without it are refused.
    webhook_secret: SecretStr | None = Field(None, validate_default=True)

    # --- Discord (bot/discord; README "Discord") ------------------------------------------------
    discord_bot_token: SecretStr | None = Field(None, validation_alias="DISCORD_BOT_TOKEN")
    discord_admin_ids: Annotated[frozenset[int], NoDecode] = frozenset()  # Discord user ids (snowflakes)
    discord_admin_role: str | None = None  # members with a role of this name are admins too
    discord_admin_channel_id: int | None = None  # scheduled runs' outcomes go here (else to each admin's DMs)
    discord_guild_id: int | None = None  # register slash commands in this one server only (instant; for testing)
    concurrent_updates: int = Field(32, ge=1)
    photos_per_minute: int = Field(20, ge=1)
    corrections_per_minute: int = Field(10, ge=1)
    # Replies to stickers, plain text and unknown commands per user per minute; beyond, silence.
    chatter_per_minute: int = Field(10, ge=1)
    # Telegram's cloud Bot API serves getFile downloads up to 20 MB; a self-hosted server lifts it.
    max_download_bytes: int = Field(20 * 1024 * 1024, ge=1)

    # --- Storage ----------------------------------------------------------------------------
    data_dir: Path = Path("./var")
    database_url: str | None = None

    # --- Images -----------------------------------------------------------------------------
    max_image_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1)
    # Longer sides are shrunk while a JPEG decodes (other formats are refused): Telegram sends 2560 at most.
    max_image_side: int = Field(DEFAULT_MAX_SIDE, ge=64)
    # Uploads decoded at once by one bot process (each holds up to max side² × 3 bytes).
    max_concurrent_decodes: int = Field(2, ge=1)
    # Micro-batching (bot/batching.py): photos waiting for the model share one forward pass of at most
    # this many; the first waits at most batch_wait_ms for company. 1 turns batching off.
    batch_max_size: int = Field(8, ge=1, le=64)
    batch_wait_ms: float = Field(5.0, ge=0.0, le=1000.0)

    # --- Model and training -----------------------------------------------------------------
    labels: Annotated[tuple[str, ...], NoDecode] = DEFAULT_LABELS
    arch: str = "efficientnet_lite0"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    bear_threshold: float = Field(DEFAULT_BEAR_THRESHOLD, ge=0.0, le=1.0)
    train_batch_size: int | None = Field(None, ge=1)
    image_size: int = Field(DEFAULT_SERVE_SIZE, ge=32)
    golden_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    # The retrain gate (trainer/gate.py): promote only when fixes outnumber breaks at this one-sided
    # sign-test level, judged on golden photos and on users' reviewed photos cross-fitted in this many folds.
    gate_alpha: float = Field(0.2, gt=0.0, le=1.0)
    gate_folds: int = Field(5, ge=2, le=20)

    # --- Learning loop ----------------------------------------------------------------------
    retrain_interval_hours: float = Field(24.0, ge=0.0)
    retrain_cron: str | None = None
    retrain_min_corrections: int = Field(20, ge=1)
    corrections_to_accept: int = Field(2, ge=1)
    # Whose corrections count toward agreement and the retrain trigger (storage/trust.py): admins, and
    # users first seen this many days ago with this many corrections that turned out right and at most
    # this share of decided ones wrong. 0 days and 0 right trusts everyone (the pre-issue-14 policy).
    trust_min_days: float = Field(7.0, ge=0.0)
    trust_min_right: int = Field(3, ge=0)
    trust_max_wrong_share: float = Field(0.2, ge=0.0, le=1.0)
    model_poll_seconds: float = Field(5.0, gt=0.0)
    # local: the bot starts a trainer process for queued runs; external: a `bearbot worker` elsewhere does.
    trainer_mode: Literal["local", "external"] = "local"
    # A run still "running" this long after it started is presumed dead, heartbeat or not.
    run_stale_hours: float = Field(6.0, gt=0.0)
    # A worker renews its run's lease every quarter of this; a run not renewed for this long is failed.
    run_lease_seconds: float = Field(120.0, ge=5.0)
    # Model files kept: the newest N versions plus the serving one and N steps of its rollback chain.
    keep_model_versions: int = Field(5, ge=1)

    # --- Dataset search ---------------------------------------------------------------------
    search_query_template: str = "{label} bear"
    search_per_label: int = Field(150, ge=1)

    log_level: str = "INFO"

    @field_validator("telegram_bot_token", "discord_bot_token", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        """``DISCORD_BOT_TOKEN=`` as .env.example ships it means no token, not an empty one."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("admin_ids", "discord_admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",") if p.strip()]
            try:
                return frozenset(int(p) for p in parts)
            except ValueError:
                raise ValueError("expected comma-separated numeric user ids, e.g. 12345,67890") from None
        return value

    @field_validator("labels", mode="before")
    @classmethod
    def _split_labels(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_labels(value)
        return value

    @field_validator("retrain_cron")
    @classmethod
    def _check_cron(cls, value: str | None) -> str | None:
        if not value:
            return None
        from apscheduler.triggers.cron import CronTrigger

        CronTrigger.from_crontab(value)  # raises ValueError with the reason
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _check_webhook_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        # Without a secret python-telegram-bot checks no header: anyone reaching the port could post
        # updates as an admin. Telegram allows 1-256 characters A-Z a-z 0-9 _ -.
        secret = value.get_secret_value() if value is not None else ""
        if secret and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise ValueError("use 1-256 characters A-Z, a-z, 0-9, _ or - (e.g. from `openssl rand -hex 32`)")
        if not secret and info.data.get("webhook_url"):
            raise ValueError(
                "required in webhook mode (BEARBOT_WEBHOOK_URL is set); generate one with `openssl rand -hex 32`"
            )
        return value if secret else None

    @field_validator("telegram_api_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _default_database(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'bearbot.db'}"
        return self

    # --- Derived paths ----------------------------------------------------------------------
    @property
    def db_url(self) -> str:
        """The database URL (always set after validation)."""
        assert self.database_url is not None
        return self.database_url

    @property
    def images_dir(self) -> Path:
        return self.data_dir / "images"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def features_dir(self) -> Path:
        """Cached body features of dataset photos (trainer/features.py); safe to delete."""
        return self.data_dir / "features"

    @property
    def runs_dir(self) -> Path:
        return self.data_dir / "runs"

    @property
    def token(self) -> str | None:
        return self.telegram_bot_token.get_secret_value() if self.telegram_bot_token else None


def settings_to_env(settings: Settings) -> dict[str, str]:
    """Every set field as environment variables, so a child process sees the same settings."""
    env: dict[str, str] = {}
    for field in Settings.model_fields:
        value = getattr(settings, field)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, frozenset | tuple | list):
            value = ",".join(str(v) for v in sorted(value)) if isinstance(value, frozenset) else ",".join(value)
        env[env_name(field)] = str(value)
    return env


def env_name(field: str) -> str:
    """The environment variable that sets ``field`` (e.g. ``data_dir`` → ``BEARBOT_DATA_DIR``)."""
    alias = Settings.model_fields[field].validation_alias
    return alias if isinstance(alias, str) else f"{Settings.model_config['env_prefix']}{field.upper()}"


def masked(name: str, value: str) -> str:
    """``value`` of the variable ``name`` as it may be shown: tokens, secrets and a database password hidden."""
    if name == "TELEGRAM_BOT_TOKEN":
        bot_id, _, rest = value.partition(":")
        # The part before ':' is the bot's public user id: it tells you *which* bot, not how to be it.
        return f"{bot_id}:*** ({len(rest)} characters hidden)" if rest else "*** (not in the form 123456:ABC…)"
    if "SecretStr" in str(Settings.model_fields[_field_of(name)].annotation):
        return "*** (set)"
    if name == "BEARBOT_DATABASE_URL":
        from sqlalchemy.engine import make_url

        try:
            return make_url(value).render_as_string(hide_password=True)
        except Exception:  # noqa: BLE001 - an unparsable URL is shown without its credentials part
            return "***@" + value.rpartition("@")[2] if "@" in value else value
    return value


def _field_of(name: str) -> str:
    return next(field for field in Settings.model_fields if env_name(field) == name)


def effective_settings(settings: Settings, env_file: Path | None) -> list[tuple[str, str, str]]:
    """``(NAME, shown value, source)`` for every setting, secrets masked; source is environment, env file or default."""
    from dotenv import dotenv_values

    in_file = {k.upper() for k in dotenv_values(env_file)} if env_file else set()
    in_env = {k.upper() for k in os.environ}
    values = settings_to_env(settings)
    rows = []
    for field in Settings.model_fields:
        name = env_name(field)
        source = "environment" if name in in_env else "env file" if name in in_file else "default"
        value = values.get(name)
        rows.append((name, "(not set)" if value in (None, "") else masked(name, value), source))
    return rows


ENV_FILE_VAR = "BEARBOT_ENV_FILE"


def find_env_file(explicit: str | Path | None = None) -> Path | None:
    """The env file to read: ``explicit`` (``--env-file``), else ``$BEARBOT_ENV_FILE``, else ``./.env`` if present.

    A file that was named but does not exist is an error: silently running without the
    operator's settings (and with a fresh empty data directory) is worse than stopping.
    """
    named, source = (explicit, "--env-file") if explicit else (os.environ.get(ENV_FILE_VAR), ENV_FILE_VAR)
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise SettingsError(f"the env file {path} named by {source} does not exist")
        return path.resolve()
    local = Path.cwd() / ".env"
    return local.resolve() if local.is_file() else None


def load_settings(*, env_file: str | Path | None = None, **overrides: object) -> Settings:
    """Read settings from the environment and the env file (see :func:`find_env_file`).

    A relative ``BEARBOT_DATA_DIR`` is resolved once, here, against the env file's folder (or the
    working directory when there is none), so every command and child process agrees on it
    wherever it was started. Raises :class:`SettingsError` with one line on a bad value.
    """
    path = find_env_file(env_file)
    try:
        settings = Settings(_env_file=path, **overrides)  # type: ignore[arg-type, call-arg]
        if not settings.data_dir.is_absolute():
            base = path.parent if path is not None else Path.cwd()
            absolute = Path(os.path.abspath(base / settings.data_dir))
            settings = Settings(_env_file=path, **{**overrides, "data_dir": absolute})  # type: ignore[arg-type, call-arg]
        return settings
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = err["loc"][0] if err["loc"] else "?"
        name = env_name(str(loc)) if str(loc) in Settings.model_fields else str(loc)
        value = err.get("input")
        secret = str(loc) in Settings.model_fields and "SecretStr" in str(Settings.model_fields[str(loc)].annotation)
        shown = "" if secret or isinstance(value, dict) or value is None else f" (got {str(value)[:60]!r})"
        message = str(err["msg"]).removeprefix("Value error, ")
        raise SettingsError(f"Bad setting {name}{shown}: {message}") from None
