"""Settings of auth-web, read once from the environment (see docs/configuration.md, section auth-web)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from auth_web.actions import NAMES as ACTION_NAMES
from auth_web.flash import MAX_STEP_MS, MIN_STEP_MS, FlashPolicy, capture_ms, frames_to_cover
from auth_web.i18n import check_languages
from auth_web.proxies import parse_address_list
from auth_web.template_crypto import TemplateCipher, TemplateKeyError, cipher_from_env, development_cipher
from faceauth_common.settings import (
    SettingsError,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_str,
)
from faceauth_common.tls import GrpcSecurity

#: The development default; production refuses to start with it (or with no key at all).
DEV_SECRET_KEY = "dev-insecure-secret-key-change-me"  # noqa: S105 (refused in production)
MIN_PRODUCTION_SECRET_LENGTH = 32

LOOPBACK_ADDRESSES = ("127.0.0.1", "::1")
FACTORS = ("password+face", "passkey+face", "face")


@dataclass(frozen=True)
class CaptureSettings:
    """What the browser captures; sent to the page and returned with every challenge."""

    # 15 frames at 10 fps (1.4 s): liveness-service's calibration, see its README "Recommended capture".
    frames: int = 15
    fps: float = 10.0
    width: int = 640
    height: int = 480
    jpeg_quality: float = 0.85
    # No countdown: the page starts the capture once the face has been well placed for ~0.5 s (its live framing
    # guidance). It waits at most this long, challenge in hand, for that; past it, it asks for a new challenge.
    placement_wait_ms: int = 4000


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    secret_key: str = DEV_SECRET_KEY
    # Encrypts the face templates at rest (FACEAUTH_TEMPLATE_KEY + FACEAUTH_TEMPLATE_OLD_KEYS); the default is the
    # public development key, which production refuses.
    template_cipher: TemplateCipher = dataclasses.field(default_factory=development_cipher)
    database_url: str = "postgresql+psycopg2://postgres@127.0.0.1:5432/faceauth"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "faceauth:"
    liveness_target: str = "127.0.0.1:50051"
    recognition_target: str = "127.0.0.1:50052"
    # Mutual TLS to both model services (GRPC_TLS_CA, GRPC_CLIENT_TLS_CERT/_KEY) or GRPC_INSECURE; `serve` refuses
    # to start unconfigured.
    grpc_security: GrpcSecurity = dataclasses.field(default_factory=GrpcSecurity)
    liveness_deadline_seconds: float = 15.0
    recognition_deadline_seconds: float = 15.0
    health_deadline_seconds: float = 1.0
    db_connect_timeout_seconds: int = 3
    redis_timeout_seconds: float = 2.0
    listen: str = "127.0.0.1:8000"
    # Prometheus /metrics, served by the gunicorn master on its own port (never through the gateway); "" = off.
    metrics_listen: str = "127.0.0.1:9100"
    workers: int = 2
    threads: int = 4
    proxy_count: int = 0
    # Peers whose X-Forwarded-* headers count (with proxy_count > 0): IPs, CIDR networks or host names.
    trusted_proxies: tuple[str, ...] = LOOPBACK_ADDRESSES
    # Client addresses that see /readyz's per-dependency details (everyone else: the status code only).
    internal_addresses: tuple[str, ...] = LOOPBACK_ADDRESSES
    force_secure_cookies: bool = False
    log_level: str = "INFO"
    # Login policy
    factors: str = "password+face"
    challenge_actions: tuple[str, ...] = ACTION_NAMES
    # One BLINK and one turn, in random order (challenge_actions_for).
    challenge_length: int = 2
    challenge_ttl_seconds: int = 60
    # The screen-flash challenge (flash.py): on unless an operator turns it off for photosensitive users.
    flash_enabled: bool = True
    flash: FlashPolicy = dataclasses.field(default_factory=FlashPolicy)
    # A capture POST later than placement wait + notice + capture + this is refused (CHALLENGE_LATE).
    capture_slack_seconds: float = 8.0
    min_matched_frames: int = 2
    # Upload limits
    min_frames: int = 5
    max_frames: int = 24
    max_frame_bytes: int = 1024 * 1024
    max_frame_pixels: int = 4_000_000
    capture: CaptureSettings = dataclasses.field(default_factory=CaptureSettings)
    # Enrollment
    enroll_min_faces: int = 3
    enroll_min_quality: float = 0.3
    enroll_max_templates: int = 5
    # Sessions
    session_idle_seconds: int = 1800
    session_absolute_seconds: int = 43200
    session_cookie_name: str = "faceauth_session"
    # Abuse
    # Failed logins (accounts.ThrottlePolicy; docs/configuration.md): counted in a sliding window under the
    # username from one address, the address, and the username; soft delays first, locks only per address.
    lockout_window_seconds: int = 900
    lockout_threshold: int = 10
    lockout_address_threshold: int = 50
    throttle_free_attempts: int = 3
    throttle_address_free_attempts: int = 10
    throttle_username_free_attempts: int = 30
    throttle_base_seconds: float = 2.0
    throttle_max_seconds: float = 60.0
    throttle_known_address_seconds: int = 30 * 24 * 3600
    rate_limit_login_per_address: str = "20/minute;200/hour"
    rate_limit_login_per_username: str = "10/minute;60/hour"
    rate_limit_register_per_address: str = "10/hour"
    # The OIDC token endpoint per client address: a wrong client secret costs an argon2 verification.
    rate_limit_token_per_address: str = "600/minute"  # noqa: S105 (a rate, not a secret)
    rate_limit_enroll_per_user: str = "20/hour"
    # Accounts
    password_min_length: int = 10
    allow_registration: bool = True
    # Passkeys (passkeys.py; docs/configuration.md "Passkeys"). Empty origin: this request's own origin (the
    # gateway's X-Forwarded-Proto/Host applied); empty RP id: the origin's host name.
    webauthn_origin: str = ""
    webauthn_rp_id: str = ""
    webauthn_rp_name: str = "faceauth"
    # After a failed face check (first factor passed), the user may sign in with a passkey instead.
    passkey_fallback: bool = True
    # Re-authentication and recovery (reauth.py, recovery.py; docs/configuration.md "Accounts and recovery")
    # A sensitive change needs a ceremony this recent (the session's auth_time).
    reauth_max_age_seconds: int = 300
    recovery_link_ttl_seconds: int = 86400
    # The narrow session a recovery link opens: long enough to set a password and enroll, then it ends.
    recovery_session_seconds: int = 900
    # The public root URL of faceauth (https://auth.example.com): links printed by the CLI and sent by e-mail.
    public_url: str = ""
    # Self-service recovery by e-mail: on when smtp_host is set.
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_from: str = ""
    smtp_security: str = "starttls"
    smtp_timeout_seconds: float = 10.0
    rate_limit_recovery_per_address: str = "5/hour"
    # OpenID Connect provider (oidc.py; docs/configuration.md "OpenID Connect and forward-auth")
    # The issuer URL (https://auth.example.com); empty: this request's own root URL (development only).
    oidc_issuer: str = ""
    oidc_signing_alg: str = "ES256"
    oidc_id_token_seconds: int = 600
    oidc_access_token_seconds: int = 300
    oidc_refresh_token_seconds: int = 30 * 86400
    oidc_code_seconds: int = 60
    oidc_request_seconds: int = 600
    # A rotated-out signing key stays in JWKS this long (longer than any ID token it signed lives).
    oidc_retired_key_seconds: int = 86400
    # Forward-auth (/auth/verify): the hosts a return URL may point to (a leading "." also allows subdomains).
    forward_auth_domains: tuple[str, ...] = ()
    # Where a proxy sends a signed-out visitor: faceauth's public /auth/start URL; empty: this request's host.
    forward_auth_login_url: str = ""
    # The session cookie's Domain (e.g. ".example.com", so that apps on subdomains share it); empty: host-only.
    session_cookie_domain: str = ""
    # The pages' languages (AUTH_LANGUAGES; i18n.py): shipped catalogues, the first one is the fallback when neither
    # the switcher's cookie nor the browser's Accept-Language picks one.
    languages: tuple[str, ...] = ("en", "de")

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def self_service_recovery(self) -> bool:
        """Self-service recovery ("Forgot password or face?") by e-mail: only where mail can be sent."""
        return bool(self.smtp_host)

    @property
    def password_required(self) -> bool:
        return self.factors == "password+face"

    @property
    def max_content_length(self) -> int:
        # The frames plus room for the small form fields and multipart framing.
        return self.max_frames * self.max_frame_bytes + 1024 * 1024

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read every AUTH_* variable (and the shared ones); raises SettingsError on a bad value."""
        mode = env_choice("FACEAUTH_ENV", "development", ("development", "production"), env)
        secret = env_str("FACEAUTH_SECRET_KEY", "", env)
        if mode == "production":
            if not secret or secret == DEV_SECRET_KEY:
                raise SettingsError("FACEAUTH_SECRET_KEY must be set to a random value in production")
            if len(secret) < MIN_PRODUCTION_SECRET_LENGTH:
                raise SettingsError(
                    f"FACEAUTH_SECRET_KEY must be at least {MIN_PRODUCTION_SECRET_LENGTH} characters in production"
                )
        try:
            template_cipher = cipher_from_env(env, allow_development_key=mode != "production")
        except TemplateKeyError as error:
            raise SettingsError(str(error)) from None
        actions = tuple(a.upper() for a in env_list("AUTH_CHALLENGE_ACTIONS", ACTION_NAMES, env))
        unknown = [a for a in actions if a not in ACTION_NAMES]
        if unknown or not actions:
            raise SettingsError(f"AUTH_CHALLENGE_ACTIONS must be a list of {list(ACTION_NAMES)}, got {actions}")
        max_frames = env_int("AUTH_MAX_FRAMES", 24, env, minimum=1, maximum=32)
        capture = CaptureSettings(
            frames=env_int("AUTH_CAPTURE_FRAMES", CaptureSettings.frames, env, minimum=1, maximum=max_frames),
            fps=env_float("AUTH_CAPTURE_FPS", CaptureSettings.fps, env, minimum=1.0, maximum=30.0),
            width=env_int("AUTH_CAPTURE_WIDTH", 640, env, minimum=160, maximum=1920),
            height=env_int("AUTH_CAPTURE_HEIGHT", 480, env, minimum=120, maximum=1080),
            jpeg_quality=env_float("AUTH_CAPTURE_JPEG_QUALITY", 0.85, env, minimum=0.3, maximum=1.0),
            placement_wait_ms=env_int("AUTH_CAPTURE_PLACEMENT_WAIT_MS", 4000, env, minimum=500, maximum=30_000),
        )
        min_frames = env_int("AUTH_MIN_FRAMES", 5, env, minimum=1, maximum=max_frames)
        throttle_base = env_float("AUTH_THROTTLE_BASE_SECONDS", 2.0, env, minimum=0.1, maximum=3600.0)
        throttle_max = env_float("AUTH_THROTTLE_MAX_SECONDS", 60.0, env, minimum=0.1, maximum=86400.0)
        if throttle_max < throttle_base:
            raise SettingsError(
                f"AUTH_THROTTLE_MAX_SECONDS ({throttle_max}) must be >= AUTH_THROTTLE_BASE_SECONDS ({throttle_base})"
            )
        if capture.frames < min_frames:
            raise SettingsError(f"AUTH_CAPTURE_FRAMES ({capture.frames}) must be >= AUTH_MIN_FRAMES ({min_frames})")
        flash_enabled = env_bool("AUTH_FLASH", True, env)
        flash = _flash_policy(env)
        if flash_enabled:
            needed = frames_to_cover(capture_ms(flash.steps * flash.max_duration_ms), capture.fps)
            if needed > max_frames:
                raise SettingsError(
                    f"the longest flash sequence (AUTH_FLASH_STEPS × AUTH_FLASH_MAX_DURATION_MS = "
                    f"{flash.steps * flash.max_duration_ms} ms, after the unlit lead-in) needs {needed} frames at "
                    f"AUTH_CAPTURE_FPS {capture.fps:g}, more than AUTH_MAX_FRAMES ({max_frames}): raise "
                    "AUTH_MAX_FRAMES (and LIVENESS_MAX_FRAMES), or shorten the sequence"
                )
        return cls(
            env=mode,
            secret_key=secret or DEV_SECRET_KEY,
            template_cipher=template_cipher,
            database_url=env_str("DATABASE_URL", cls.database_url, env),
            redis_url=env_str("REDIS_URL", cls.redis_url, env),
            redis_prefix=env_str("AUTH_REDIS_PREFIX", cls.redis_prefix, env),
            liveness_target=env_str("LIVENESS_TARGET", cls.liveness_target, env),
            recognition_target=env_str("RECOGNITION_TARGET", cls.recognition_target, env),
            grpc_security=GrpcSecurity.client_from_env(env),
            liveness_deadline_seconds=env_float("AUTH_LIVENESS_DEADLINE_SECONDS", 15.0, env, minimum=0.1),
            recognition_deadline_seconds=env_float("AUTH_RECOGNITION_DEADLINE_SECONDS", 15.0, env, minimum=0.1),
            health_deadline_seconds=env_float("AUTH_HEALTH_DEADLINE_SECONDS", 1.0, env, minimum=0.05),
            db_connect_timeout_seconds=env_int("AUTH_DB_CONNECT_TIMEOUT_SECONDS", 3, env, minimum=1),
            redis_timeout_seconds=env_float("AUTH_REDIS_TIMEOUT_SECONDS", 2.0, env, minimum=0.05),
            listen=env_str("AUTH_WEB_LISTEN", cls.listen, env),
            metrics_listen=_metrics_listen(env_str("AUTH_WEB_METRICS_LISTEN", cls.metrics_listen, env)),
            workers=env_int("AUTH_WEB_WORKERS", 2, env, minimum=1, maximum=64),
            threads=env_int("AUTH_WEB_THREADS", 4, env, minimum=1, maximum=64),
            proxy_count=env_int("AUTH_PROXY_COUNT", 0, env, minimum=0, maximum=5),
            trusted_proxies=_addresses("AUTH_TRUSTED_PROXIES", env),
            internal_addresses=_addresses("AUTH_INTERNAL_ADDRESSES", env),
            force_secure_cookies=env_bool("AUTH_FORCE_SECURE_COOKIES", False, env),
            log_level=env_str("LOG_LEVEL", "INFO", env),
            factors=env_choice("AUTH_FACTORS", "password+face", FACTORS, env),
            challenge_actions=actions,
            challenge_length=env_int("AUTH_CHALLENGE_LENGTH", 2, env, minimum=0, maximum=4),
            challenge_ttl_seconds=env_int("AUTH_CHALLENGE_TTL_SECONDS", 60, env, minimum=1, maximum=600),
            flash_enabled=flash_enabled,
            flash=flash,
            capture_slack_seconds=env_float("AUTH_CAPTURE_SLACK_SECONDS", 8.0, env, minimum=0.5, maximum=120.0),
            min_matched_frames=env_int("AUTH_MIN_MATCHED_FRAMES", 2, env, minimum=1, maximum=max_frames),
            min_frames=min_frames,
            max_frames=max_frames,
            max_frame_bytes=env_int("AUTH_MAX_FRAME_BYTES", 1024 * 1024, env, minimum=16 * 1024, maximum=2097152),
            max_frame_pixels=env_int("AUTH_MAX_FRAME_PIXELS", 4_000_000, env, minimum=10_000, maximum=4_000_000),
            capture=capture,
            enroll_min_faces=env_int("AUTH_ENROLL_MIN_FACES", 3, env, minimum=1, maximum=max_frames),
            enroll_min_quality=env_float("AUTH_ENROLL_MIN_QUALITY", 0.3, env, minimum=0.0, maximum=1.0),
            enroll_max_templates=env_int("AUTH_ENROLL_MAX_TEMPLATES", 5, env, minimum=1, maximum=64),
            session_idle_seconds=env_int("AUTH_SESSION_IDLE_SECONDS", 1800, env, minimum=30),
            session_absolute_seconds=env_int("AUTH_SESSION_ABSOLUTE_SECONDS", 43200, env, minimum=60),
            session_cookie_name=env_str("AUTH_SESSION_COOKIE_NAME", cls.session_cookie_name, env),
            lockout_window_seconds=env_int("AUTH_LOCKOUT_WINDOW_SECONDS", 900, env, minimum=1, maximum=7 * 86400),
            lockout_threshold=env_int("AUTH_LOCKOUT_THRESHOLD", 10, env, minimum=1),
            lockout_address_threshold=env_int("AUTH_LOCKOUT_ADDRESS_THRESHOLD", 50, env, minimum=1),
            throttle_free_attempts=env_int("AUTH_THROTTLE_FREE_ATTEMPTS", 3, env, minimum=0),
            throttle_address_free_attempts=env_int("AUTH_THROTTLE_ADDRESS_FREE_ATTEMPTS", 10, env, minimum=0),
            throttle_username_free_attempts=env_int("AUTH_THROTTLE_USERNAME_FREE_ATTEMPTS", 30, env, minimum=0),
            throttle_base_seconds=throttle_base,
            throttle_max_seconds=throttle_max,
            throttle_known_address_seconds=env_int(
                "AUTH_THROTTLE_KNOWN_ADDRESS_SECONDS", cls.throttle_known_address_seconds, env, minimum=0
            ),
            rate_limit_login_per_address=env_str(
                "AUTH_RATE_LIMIT_LOGIN_PER_ADDRESS", cls.rate_limit_login_per_address, env
            ),
            rate_limit_login_per_username=env_str(
                "AUTH_RATE_LIMIT_LOGIN_PER_USERNAME", cls.rate_limit_login_per_username, env
            ),
            rate_limit_register_per_address=env_str(
                "AUTH_RATE_LIMIT_REGISTER_PER_ADDRESS", cls.rate_limit_register_per_address, env
            ),
            rate_limit_token_per_address=env_str(
                "AUTH_RATE_LIMIT_TOKEN_PER_ADDRESS", cls.rate_limit_token_per_address, env
            ),
            rate_limit_enroll_per_user=env_str("AUTH_RATE_LIMIT_ENROLL_PER_USER", cls.rate_limit_enroll_per_user, env),
            password_min_length=env_int("AUTH_PASSWORD_MIN_LENGTH", 10, env, minimum=8, maximum=128),
            allow_registration=env_bool("AUTH_ALLOW_REGISTRATION", True, env),
            languages=_languages(env),
            **_passkey_settings(env),
            **_account_settings(env, mode),
            **_oidc_settings(env, mode),
        )

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def _flash_policy(env: Mapping[str, str] | None) -> FlashPolicy:
    """AUTH_FLASH_*: 4–6 steps, each at least ``MIN_STEP_MS`` (WCAG 2.3.1: at most 3 changes per second)."""
    defaults = FlashPolicy()
    steps = env_int("AUTH_FLASH_STEPS", defaults.steps, env, minimum=4, maximum=6)
    shortest = env_int(
        "AUTH_FLASH_MIN_DURATION_MS", defaults.min_duration_ms, env, minimum=MIN_STEP_MS, maximum=MAX_STEP_MS
    )
    longest = env_int(
        "AUTH_FLASH_MAX_DURATION_MS", defaults.max_duration_ms, env, minimum=MIN_STEP_MS, maximum=MAX_STEP_MS
    )
    if longest < shortest:
        raise SettingsError(
            f"AUTH_FLASH_MAX_DURATION_MS ({longest}) must be >= AUTH_FLASH_MIN_DURATION_MS ({shortest})"
        )
    notice = env_int("AUTH_FLASH_NOTICE_MS", defaults.notice_ms, env, minimum=0, maximum=10_000)
    return FlashPolicy(steps=steps, min_duration_ms=shortest, max_duration_ms=longest, notice_ms=notice)


def _oidc_settings(env: Mapping[str, str] | None, mode: str) -> dict[str, object]:
    """AUTH_OIDC_*, AUTH_FORWARD_AUTH_* and AUTH_SESSION_COOKIE_DOMAIN."""
    issuer = env_str("AUTH_OIDC_ISSUER", "", env).rstrip("/")
    if issuer and not issuer.startswith(("https://", "http://")):
        raise SettingsError(f"AUTH_OIDC_ISSUER must be an http(s) URL, got {issuer!r}")
    if mode == "production" and issuer and not issuer.startswith("https://"):
        raise SettingsError("AUTH_OIDC_ISSUER must be an https URL in production")
    id_token_seconds = env_int("AUTH_OIDC_ID_TOKEN_SECONDS", 600, env, minimum=60, maximum=86400)
    retired = env_int("AUTH_OIDC_RETIRED_KEY_SECONDS", 86400, env, minimum=60, maximum=365 * 86400)
    if retired < id_token_seconds:
        raise SettingsError(
            f"AUTH_OIDC_RETIRED_KEY_SECONDS ({retired}) must be >= AUTH_OIDC_ID_TOKEN_SECONDS ({id_token_seconds}): "
            "a retired key must verify every ID token it signed until they expire"
        )
    domains = tuple(d.strip().lower() for d in env_list("AUTH_FORWARD_AUTH_DOMAINS", (), env) if d.strip())
    for domain in domains:
        if "/" in domain or ":" in domain or domain in (".", ""):
            raise SettingsError(
                f"AUTH_FORWARD_AUTH_DOMAINS takes host names (a leading '.' for subdomains): {domain!r}"
            )
    login_url = env_str("AUTH_FORWARD_AUTH_LOGIN_URL", "", env)
    if login_url and not login_url.startswith(("https://", "http://")):
        raise SettingsError(f"AUTH_FORWARD_AUTH_LOGIN_URL must be an http(s) URL, got {login_url!r}")
    return {
        "oidc_issuer": issuer,
        "oidc_signing_alg": env_choice("AUTH_OIDC_SIGNING_ALG", "ES256", ("ES256", "RS256"), env),
        "oidc_id_token_seconds": id_token_seconds,
        "oidc_access_token_seconds": env_int("AUTH_OIDC_ACCESS_TOKEN_SECONDS", 300, env, minimum=30, maximum=86400),
        "oidc_refresh_token_seconds": env_int(
            "AUTH_OIDC_REFRESH_TOKEN_SECONDS", 30 * 86400, env, minimum=300, maximum=365 * 86400
        ),
        "oidc_code_seconds": env_int("AUTH_OIDC_CODE_SECONDS", 60, env, minimum=10, maximum=600),
        "oidc_request_seconds": env_int("AUTH_OIDC_REQUEST_SECONDS", 600, env, minimum=60, maximum=3600),
        "oidc_retired_key_seconds": retired,
        "forward_auth_domains": domains,
        "forward_auth_login_url": login_url,
        "session_cookie_domain": env_str("AUTH_SESSION_COOKIE_DOMAIN", "", env).strip(),
    }


SMTP_SECURITY = ("starttls", "tls", "none")
#: Where ``make run`` serves faceauth: the CLI's links point there when AUTH_PUBLIC_URL is not set.
LOCAL_RUN_URL = "https://localhost:8443"


def _account_settings(env: Mapping[str, str] | None, mode: str) -> dict[str, object]:
    """AUTH_REAUTH_*, AUTH_RECOVERY_*, AUTH_PUBLIC_URL and SMTP_*."""
    public_url = env_str("AUTH_PUBLIC_URL", "", env).strip().rstrip("/")
    if public_url and not public_url.startswith(("https://", "http://")):
        raise SettingsError(f"AUTH_PUBLIC_URL must be an http(s) URL, got {public_url!r}")
    smtp_host = env_str("SMTP_HOST", "", env).strip()
    smtp_from = env_str("SMTP_FROM", "", env).strip()
    if smtp_host and "@" not in smtp_from:
        raise SettingsError("SMTP_FROM must be an e-mail address when SMTP_HOST is set")
    if smtp_host and mode == "production" and not public_url:
        raise SettingsError("AUTH_PUBLIC_URL must be set in production when SMTP_HOST is (the links in the mail)")
    security = env_choice("SMTP_SECURITY", "starttls", SMTP_SECURITY, env)
    return {
        "reauth_max_age_seconds": env_int("AUTH_REAUTH_MAX_AGE_SECONDS", 300, env, minimum=30, maximum=86400),
        "recovery_link_ttl_seconds": env_int(
            "AUTH_RECOVERY_LINK_TTL_SECONDS", 86400, env, minimum=300, maximum=30 * 86400
        ),
        "recovery_session_seconds": env_int("AUTH_RECOVERY_SESSION_SECONDS", 900, env, minimum=120, maximum=3600),
        "public_url": public_url,
        "smtp_host": smtp_host,
        "smtp_port": env_int("SMTP_PORT", 465 if security == "tls" else 587, env, minimum=1, maximum=65535),
        "smtp_username": env_str("SMTP_USERNAME", "", env),
        "smtp_password": env_str("SMTP_PASSWORD", "", env),
        "smtp_from": smtp_from,
        "smtp_security": security,
        "smtp_timeout_seconds": env_float("SMTP_TIMEOUT_SECONDS", 10.0, env, minimum=1.0, maximum=120.0),
        "rate_limit_recovery_per_address": env_str("AUTH_RATE_LIMIT_RECOVERY_PER_ADDRESS", "5/hour", env),
    }


def _passkey_settings(env: Mapping[str, str] | None) -> dict[str, object]:
    """AUTH_WEBAUTHN_* and AUTH_PASSKEY_FALLBACK."""
    origin = env_str("AUTH_WEBAUTHN_ORIGIN", "", env).rstrip("/")
    if origin and (not origin.startswith(("https://", "http://")) or "/" in origin.split("://", 1)[1]):
        raise SettingsError(f"AUTH_WEBAUTHN_ORIGIN must be scheme://host[:port] without a path, got {origin!r}")
    rp_id = env_str("AUTH_WEBAUTHN_RP_ID", "", env).strip().lower()
    if rp_id and ("/" in rp_id or ":" in rp_id):
        raise SettingsError(f"AUTH_WEBAUTHN_RP_ID is a host name (e.g. auth.example.com), got {rp_id!r}")
    return {
        "webauthn_origin": origin,
        "webauthn_rp_id": rp_id,
        "webauthn_rp_name": env_str("AUTH_WEBAUTHN_RP_NAME", "faceauth", env),
        "passkey_fallback": env_bool("AUTH_PASSKEY_FALLBACK", True, env),
    }


def _languages(env: Mapping[str, str] | None) -> tuple[str, ...]:
    """AUTH_LANGUAGES: language codes with a shipped catalogue (``en``, ``de``), the fallback first."""
    codes = tuple(code.strip() for code in env_list("AUTH_LANGUAGES", Settings.languages, env) if code.strip())
    try:
        return check_languages(codes)
    except ValueError as error:
        raise SettingsError(f"AUTH_LANGUAGES {error}") from None


def _addresses(name: str, env: Mapping[str, str] | None) -> tuple[str, ...]:
    """A comma-separated list of IP addresses, CIDR networks or host names (default: loopback)."""
    values = env_list(name, LOOPBACK_ADDRESSES, env)
    try:
        parse_address_list(values)
    except ValueError as error:
        raise SettingsError(f"{name}: {error}") from None
    return values


def _metrics_listen(value: str) -> str:
    """``host:port``; empty or ``off`` turns the metrics endpoint off."""
    value = value.strip()
    if value.lower() in ("", "off"):
        return ""
    _host, separator, port = value.rpartition(":")
    if not separator or not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError(f"AUTH_WEB_METRICS_LISTEN must be host:port or 'off', got {value!r}")
    return value
