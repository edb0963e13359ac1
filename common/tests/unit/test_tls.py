"""faceauth_common.tls: the private CA and certificates it makes, and the settings that choose mutual TLS."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from faceauth_common import tls
from faceauth_common.settings import SettingsError
from faceauth_common.tls import GrpcSecurity, Identity, ServiceFolders, TlsNotConfigured


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def extension(certificate: x509.Certificate, kind):  # type: ignore[no-untyped-def]
    return certificate.extensions.get_extension_for_class(kind)


@pytest.fixture
def folders(tmp_path: Path) -> ServiceFolders:
    made = ServiceFolders.under(tmp_path)
    issued = tls.ensure_certificates(
        made, tls.server_hosts(["liveness-service"]), tls.server_hosts(["recognition-service"])
    )
    assert len(issued) == 5
    return made


# ---- the CA ----------------------------------------------------------------------------------------------


def test_the_ca_can_only_sign_end_entity_certificates(folders: ServiceFolders) -> None:
    ca = load(folders.ca_dir / "ca.crt")
    constraints = extension(ca, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = extension(ca, x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign and not usage.value.digital_signature
    ca.verify_directly_issued_by(ca)  # self-signed
    assert ca.not_valid_after_utc - datetime.datetime.now(datetime.UTC) > datetime.timedelta(days=3000)


def test_private_keys_are_readable_by_their_owner_only(folders: ServiceFolders) -> None:
    keys = sorted(folders.ca_dir.parent.rglob("*.key"))
    assert [key.relative_to(folders.ca_dir.parent).as_posix() for key in keys] == [
        "auth-web/client.key",
        "ca/ca.key",
        "liveness/client.key",
        "liveness/server.key",
        "recognition/client.key",
        "recognition/server.key",
    ]
    assert all(key.stat().st_mode & 0o077 == 0 for key in keys)
    # The CA key is not in any service's folder.
    for folder in (folders.liveness, folders.recognition, folders.auth_web):
        assert not (folder / "ca.key").exists()
        assert (folder / "ca.crt").read_bytes() == (folders.ca_dir / "ca.crt").read_bytes()


# ---- the certificates ------------------------------------------------------------------------------------


def test_server_certificates_name_every_host_clients_use_and_only_serve(folders: ServiceFolders) -> None:
    ca = load(folders.ca_dir / "ca.crt")
    for folder, host in ((folders.liveness, "liveness-service"), (folders.recognition, "recognition-service")):
        server = load(folder / "server.crt")
        server.verify_directly_issued_by(ca)
        names = extension(server, x509.SubjectAlternativeName).value
        assert names.get_values_for_type(x509.DNSName) == [host, "localhost"]
        assert names.get_values_for_type(x509.IPAddress) == [
            ipaddress.ip_address("127.0.0.1"),
            ipaddress.ip_address("::1"),
        ]
        assert list(extension(server, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
        constraints = extension(server, x509.BasicConstraints)
        assert constraints.critical and not constraints.value.ca
        usage = extension(server, x509.KeyUsage)
        assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign


def test_client_certificates_are_for_client_use_only(folders: ServiceFolders) -> None:
    ca = load(folders.ca_dir / "ca.crt")
    for path in (folders.auth_web / "client.crt", folders.liveness / "client.crt", folders.recognition / "client.crt"):
        client = load(path)
        client.verify_directly_issued_by(ca)
        assert list(extension(client, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
        assert not extension(client, x509.BasicConstraints).value.ca
        with pytest.raises(x509.ExtensionNotFound):
            extension(client, x509.SubjectAlternativeName)
    common_name = load(folders.auth_web / "client.crt").subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    assert common_name[0].value == "auth-web"


def test_certificates_are_valid_now_for_about_a_year_and_within_the_ca(folders: ServiceFolders) -> None:
    now = datetime.datetime.now(datetime.UTC)
    ca = load(folders.ca_dir / "ca.crt")
    for path in folders.ca_dir.parent.rglob("*/*.crt"):
        certificate = load(path)
        assert certificate.not_valid_before_utc <= now < certificate.not_valid_after_utc
        assert certificate.not_valid_after_utc <= ca.not_valid_after_utc
        if path.name != "ca.crt":
            assert datetime.timedelta(days=360) < certificate.not_valid_after_utc - now <= tls.LEAF_VALIDITY


def test_keys_are_p256_and_match_their_certificates(folders: ServiceFolders) -> None:
    from cryptography.hazmat.primitives import serialization

    for certificate_path in folders.liveness.glob("*.crt"):
        if certificate_path.name == "ca.crt":
            continue
        key = serialization.load_pem_private_key(certificate_path.with_suffix(".key").read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
        assert load(certificate_path).public_key() == key.public_key()


# ---- idempotence and renewal -----------------------------------------------------------------------------


def test_a_second_run_keeps_everything(folders: ServiceFolders) -> None:
    before = {path: path.read_bytes() for path in folders.ca_dir.parent.rglob("*") if path.is_file()}
    assert (
        tls.ensure_certificates(
            folders, tls.server_hosts(["liveness-service"]), tls.server_hosts(["recognition-service"])
        )
        == []
    )
    assert {path: path.read_bytes() for path in before} == before


def test_a_new_host_name_reissues_only_that_server_certificate(folders: ServiceFolders) -> None:
    issued = tls.ensure_certificates(
        folders, tls.server_hosts(["liveness.internal"]), tls.server_hosts(["recognition-service"])
    )
    assert issued == [folders.liveness / "server.crt"]
    names = extension(load(folders.liveness / "server.crt"), x509.SubjectAlternativeName).value
    assert "liveness.internal" in names.get_values_for_type(x509.DNSName)


def test_a_new_ca_reissues_every_certificate(folders: ServiceFolders) -> None:
    (folders.ca_dir / "ca.key").unlink()
    issued = tls.ensure_certificates(
        folders, tls.server_hosts(["liveness-service"]), tls.server_hosts(["recognition-service"])
    )
    assert len(issued) == 5
    ca = load(folders.ca_dir / "ca.crt")
    for path in issued:
        load(path).verify_directly_issued_by(ca)
    assert (folders.auth_web / "ca.crt").read_bytes() == (folders.ca_dir / "ca.crt").read_bytes()


def test_a_certificate_close_to_expiry_is_renewed(folders: ServiceFolders, monkeypatch: pytest.MonkeyPatch) -> None:
    later = datetime.datetime.now(datetime.UTC) + tls.LEAF_VALIDITY - datetime.timedelta(days=10)
    monkeypatch.setattr(tls, "_now", lambda: later)
    issued = tls.ensure_certificates(
        folders, tls.server_hosts(["liveness-service"]), tls.server_hosts(["recognition-service"])
    )
    assert len(issued) == 5


def test_issue_refuses_a_server_certificate_without_host_names() -> None:
    authority = tls.make_authority()
    with pytest.raises(ValueError, match="host names"):
        tls.issue(authority, Identity("liveness", server=True))
    with pytest.raises(ValueError, match="server or client"):
        tls.issue(authority, Identity("nobody"))


def test_the_cli_writes_one_folder_per_service(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert tls.main(["ensure", "--out", str(tmp_path), "--liveness-host", "liveness-service"]) == 0
    assert "5 issued" in capsys.readouterr().out
    names = extension(load(tmp_path / "liveness" / "server.crt"), x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["liveness-service", "localhost"]
    assert tls.main(["ensure", "--out", str(tmp_path), "--liveness-host", "liveness-service"]) == 0
    assert "0 issued" in capsys.readouterr().out


# ---- settings --------------------------------------------------------------------------------------------


def server_env(folders: ServiceFolders, **extra: str) -> dict[str, str]:
    return {**folders.environment(), **extra}


def test_settings_with_all_three_files_choose_mutual_tls(folders: ServiceFolders) -> None:
    security = GrpcSecurity.from_env("LIVENESS_TLS_CERT", "LIVENESS_TLS_KEY", server_env(folders))
    assert security.tls is not None and not security.insecure
    assert security.tls.cert == (folders.liveness / "server.crt").resolve()
    assert security.server_credentials() is not None
    client = GrpcSecurity.client_from_env(server_env(folders))
    assert client.tls is not None and client.tls.cert == (folders.auth_web / "client.crt").resolve()
    assert client.channel_credentials() is not None


def test_nothing_set_is_refused_when_used_not_silently_plaintext() -> None:
    security = GrpcSecurity.from_env("LIVENESS_TLS_CERT", "LIVENESS_TLS_KEY", {})
    assert not security.configured
    for use in (security.require, security.server_credentials, security.channel_credentials):
        with pytest.raises(TlsNotConfigured, match=r"GRPC_TLS_CA, LIVENESS_TLS_CERT, LIVENESS_TLS_KEY.*GRPC_INSECURE"):
            use()
    with pytest.raises(TlsNotConfigured):
        GrpcSecurity().channel_credentials()


def test_a_partial_tls_configuration_names_what_is_missing(folders: ServiceFolders) -> None:
    env = server_env(folders)
    del env["LIVENESS_TLS_KEY"]
    with pytest.raises(SettingsError, match="missing: LIVENESS_TLS_KEY"):
        GrpcSecurity.from_env("LIVENESS_TLS_CERT", "LIVENESS_TLS_KEY", env)


def test_an_unreadable_file_is_a_settings_error(folders: ServiceFolders, tmp_path: Path) -> None:
    env = server_env(folders, GRPC_TLS_CA=str(tmp_path / "nope.crt"))
    with pytest.raises(SettingsError, match=r"GRPC_TLS_CA=.*not a readable file"):
        GrpcSecurity.client_from_env(env)


def test_explicit_plaintext_works_in_development_only() -> None:
    security = GrpcSecurity.client_from_env({"GRPC_INSECURE": "true"})
    assert security.insecure and security.configured
    assert security.channel_credentials() is None and security.server_credentials() is None
    assert GrpcSecurity.client_from_env({"GRPC_INSECURE": "true", "FACEAUTH_ENV": "development"}).insecure


def test_plaintext_is_refused_in_production() -> None:
    with pytest.raises(SettingsError, match="GRPC_INSECURE=true is refused in production"):
        GrpcSecurity.client_from_env({"GRPC_INSECURE": "true", "FACEAUTH_ENV": "production"})
    with pytest.raises(SettingsError, match="refused in production"):
        GrpcSecurity.from_env(
            "RECOGNITION_TLS_CERT", "RECOGNITION_TLS_KEY", {"GRPC_INSECURE": "1", "FACEAUTH_ENV": "production"}
        )


def test_plaintext_and_tls_together_are_ambiguous(folders: ServiceFolders) -> None:
    with pytest.raises(SettingsError, match="both set"):
        GrpcSecurity.client_from_env(server_env(folders, GRPC_INSECURE="true"))
