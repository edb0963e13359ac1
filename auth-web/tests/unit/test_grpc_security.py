"""auth-web's gRPC client settings: mutual TLS read once into Settings, plaintext only by explicit choice and
never in production, and `serve` refuses to start without either."""

from __future__ import annotations

from pathlib import Path

import pytest

from auth_web import cli
from auth_web.config import Settings
from auth_web.face_services import LIVENESS, FaceServices, LivenessInput, ServiceUnavailable
from auth_web.template_crypto import generate_key
from faceauth_common.settings import SettingsError
from faceauth_common.tls import ServiceFolders, ensure_certificates, server_hosts

STRONG_SECRET = "s" * 48


def production(**extra: str) -> dict[str, str]:
    """Everything else production requires, so that only the gRPC settings decide."""
    return {"FACEAUTH_ENV": "production", "FACEAUTH_SECRET_KEY": STRONG_SECRET, "FACEAUTH_TEMPLATE_KEY": KEY, **extra}


KEY = generate_key()


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> ServiceFolders:
    made = ServiceFolders.under(tmp_path_factory.mktemp("grpc-tls"))
    ensure_certificates(made, server_hosts([]), server_hosts([]))
    return made


def test_settings_read_auth_webs_client_certificate(folders: ServiceFolders) -> None:
    settings = Settings.from_env(folders.environment())
    assert settings.grpc_security.tls is not None
    assert settings.grpc_security.tls.cert == (folders.auth_web / "client.crt").resolve()
    assert settings.grpc_security.tls.ca == (folders.auth_web / "ca.crt").resolve()


def test_production_accepts_mutual_tls(folders: ServiceFolders) -> None:
    assert Settings.from_env(production(**folders.environment())).grpc_security.tls is not None


def test_production_refuses_plaintext_grpc() -> None:
    with pytest.raises(SettingsError, match="GRPC_INSECURE=true is refused in production"):
        Settings.from_env(production(GRPC_INSECURE="true"))


def test_development_may_choose_plaintext_explicitly() -> None:
    assert Settings.from_env({"GRPC_INSECURE": "true"}).grpc_security.insecure


def test_serve_refuses_to_start_without_grpc_tls(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("GRPC_TLS_CA", "GRPC_CLIENT_TLS_CERT", "GRPC_CLIENT_TLS_KEY", "GRPC_INSECURE", "FACEAUTH_ENV"):
        monkeypatch.delenv(name, raising=False)
    started = []
    monkeypatch.setattr("auth_web.serve.run", lambda settings: started.append(settings))
    assert cli.main(["serve"]) == 1
    assert not started
    error = capsys.readouterr().err
    assert "GRPC_TLS_CA" in error and "GRPC_INSECURE" in error


def test_migrate_needs_no_grpc_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("GRPC_TLS_CA", "GRPC_CLIENT_TLS_CERT", "GRPC_CLIENT_TLS_KEY", "GRPC_INSECURE", "FACEAUTH_ENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite3'}")
    assert cli.main(["migrate"]) == 0


def test_an_app_made_without_grpc_settings_fails_closed() -> None:
    """Not through `serve` (a test, a WSGI server of one's own): no plaintext fallback, no 500 — unavailable."""
    services = FaceServices(Settings())
    assert services.serving(LIVENESS) is False
    with pytest.raises(ServiceUnavailable) as unavailable:
        services.check([b"frame"], LivenessInput(["BLINK"], [0]))
    assert unavailable.value.code == "TLS_NOT_CONFIGURED"
