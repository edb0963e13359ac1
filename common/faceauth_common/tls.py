"""Mutual TLS between auth-web and the model services: settings, gRPC credentials, and the private CA.

Every gRPC connection inside faceauth is mutually authenticated: the server proves its name with a
certificate issued by a small private CA, and the client must present a certificate from the same CA
(``require_client_auth``). Nothing else can call ``Encode`` / ``Verify`` / ``Check``.

Settings (docs/configuration.md, "gRPC mutual TLS"), read once into the services' settings objects:

- ``GRPC_TLS_CA``: the CA certificate every peer's certificate must chain to (both sides);
- ``{PREFIX}_TLS_CERT`` / ``{PREFIX}_TLS_KEY``: a server's own certificate and key
  (``LIVENESS_`` and ``RECOGNITION_``);
- ``GRPC_CLIENT_TLS_CERT`` / ``GRPC_CLIENT_TLS_KEY``: the certificate a client presents (auth-web, the
  health probe);
- ``GRPC_INSECURE=true``: plaintext, for development only; refused when ``FACEAUTH_ENV=production``.

With none of them set, servers and clients refuse to start instead of falling back to plaintext.

The CA and the certificates are made by ``ensure_certificates`` (the local run calls it; docker-compose runs
``python -m faceauth_common.tls ensure ...`` in its one-shot ``certs`` service). Clients verify the server's
host name, so server certificates carry every name they are reached by (``liveness-service``, ``localhost``,
``127.0.0.1``, ...).
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from faceauth_common.settings import SettingsError, env_bool, env_choice, env_str

CA_VARIABLE = "GRPC_TLS_CA"
INSECURE_VARIABLE = "GRPC_INSECURE"
CLIENT_CERT_VARIABLE = "GRPC_CLIENT_TLS_CERT"
CLIENT_KEY_VARIABLE = "GRPC_CLIENT_TLS_KEY"
#: Every gRPC TLS setting of the stack (a program reads its own subset).
TLS_VARIABLES = (
    CA_VARIABLE,
    "LIVENESS_TLS_CERT",
    "LIVENESS_TLS_KEY",
    "RECOGNITION_TLS_CERT",
    "RECOGNITION_TLS_KEY",
    CLIENT_CERT_VARIABLE,
    CLIENT_KEY_VARIABLE,
    INSECURE_VARIABLE,
)

CA_VALIDITY = datetime.timedelta(days=3650)
LEAF_VALIDITY = datetime.timedelta(days=397)
#: A certificate with less than this left is issued again by ``ensure_certificates``.
RENEW_BEFORE = datetime.timedelta(days=30)


class TlsNotConfigured(SettingsError):
    """Neither mutual TLS nor the explicit development plaintext mode is configured."""


# ---------------------------------------------------------------------------------------------------------
# Settings and credentials


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of one gRPC endpoint: the CA its peers must chain to, its own certificate and key."""

    ca: Path
    cert: Path
    key: Path

    def read(self) -> tuple[bytes, bytes, bytes]:
        return self.ca.read_bytes(), self.cert.read_bytes(), self.key.read_bytes()


@dataclass(frozen=True)
class GrpcSecurity:
    """How one process talks gRPC: mutual TLS (``tls``), explicit plaintext (``insecure``), or unconfigured.

    Unconfigured (the dataclass default, and what ``from_env`` gives when nothing is set) is refused by
    ``server_credentials`` / ``channel_credentials``: a service never falls back to plaintext silently.
    """

    tls: TlsFiles | None = None
    insecure: bool = False
    #: Names the variables to set, for the refusal message.
    variables: tuple[str, ...] = field(default=(CA_VARIABLE,), compare=False)

    @classmethod
    def from_env(cls, cert_variable: str, key_variable: str, env: Mapping[str, str] | None = None) -> GrpcSecurity:
        """Read ``GRPC_TLS_CA``, ``cert_variable``, ``key_variable`` and ``GRPC_INSECURE``.

        Raises SettingsError for a partial TLS configuration, an unreadable file, TLS and plaintext both
        requested, or ``GRPC_INSECURE`` in production (``FACEAUTH_ENV=production``).
        """
        names = (CA_VARIABLE, cert_variable, key_variable)
        values = {name: env_str(name, "", env) for name in names}
        insecure = env_bool(INSECURE_VARIABLE, False, env)
        production = env_choice("FACEAUTH_ENV", "development", ("development", "production"), env) == "production"
        given = [name for name in names if values[name]]
        if insecure:
            if production:
                raise SettingsError(
                    f"{INSECURE_VARIABLE}=true is refused in production (FACEAUTH_ENV=production): "
                    f"gRPC must use mutual TLS ({', '.join(names)})"
                )
            if given:
                raise SettingsError(f"{INSECURE_VARIABLE}=true and {', '.join(given)} are both set: choose one")
            return cls(insecure=True, variables=names)
        if not given:
            return cls(variables=names)
        missing = [name for name in names if not values[name]]
        if missing:
            raise SettingsError(f"gRPC mutual TLS needs {', '.join(names)}; missing: {', '.join(missing)}")
        for name in names:
            path = Path(values[name])
            if not path.is_file() or not os.access(path, os.R_OK):
                raise SettingsError(f"{name}={values[name]} is not a readable file")
        return cls(
            tls=TlsFiles(*(Path(values[name]).resolve() for name in names)),
            variables=names,
        )

    @classmethod
    def client_from_env(cls, env: Mapping[str, str] | None = None) -> GrpcSecurity:
        """The client side: ``GRPC_TLS_CA``, ``GRPC_CLIENT_TLS_CERT``, ``GRPC_CLIENT_TLS_KEY``, ``GRPC_INSECURE``."""
        return cls.from_env(CLIENT_CERT_VARIABLE, CLIENT_KEY_VARIABLE, env)

    @property
    def configured(self) -> bool:
        return self.tls is not None or self.insecure

    def require(self) -> None:
        """Raise TlsNotConfigured unless TLS or the explicit plaintext mode is set."""
        if not self.configured:
            raise TlsNotConfigured(
                f"gRPC needs mutual TLS: set {', '.join(self.variables)} "
                f"(`python -m faceauth_common.tls ensure` makes a CA and certificates), "
                f"or {INSECURE_VARIABLE}=true for development without TLS"
            )

    def server_credentials(self) -> grpc.ServerCredentials | None:
        """Credentials that require a client certificate from the CA; None means plaintext was chosen."""
        self.require()
        if self.tls is None:
            return None
        ca, cert, key = self.tls.read()
        return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True)

    def channel_credentials(self) -> grpc.ChannelCredentials | None:
        """Client credentials presenting our certificate and trusting only the CA; None means plaintext.

        gRPC checks the server certificate against the host of the target (DNS name or IP address), so
        no ``ssl_target_name_override``: certificates carry the names clients use.
        """
        self.require()
        if self.tls is None:
            return None
        ca, cert, key = self.tls.read()
        return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)


# ---------------------------------------------------------------------------------------------------------
# The private CA and certificates


@dataclass(frozen=True)
class Identity:
    """One certificate to issue: ``name`` (its common name), server and/or client use, and the host names
    (DNS names or IP addresses) a server certificate is valid for."""

    name: str
    server: bool = False
    client: bool = False
    hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Authority:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _new_key() -> ec.EllipticCurvePrivateKey:
    # P-256: small, fast handshakes, supported by every TLS stack gRPC uses.
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    temporary.replace(path)


def _write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    temporary.chmod(0o644)
    temporary.replace(path)


def make_authority(common_name: str = "faceauth private gRPC CA") -> Authority:
    """A self-signed CA that may only sign end-entity certificates (path length 0)."""
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(certificate, key)


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return x509.DNSName(host)


def issue(authority: Authority, identity: Identity) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """An end-entity certificate and its new key for ``identity``, signed by ``authority``."""
    if not (identity.server or identity.client):
        raise ValueError(f"{identity.name}: a certificate must be for server or client use")
    if identity.server and not identity.hosts:
        raise ValueError(f"{identity.name}: a server certificate needs the host names clients reach it by")
    key = _new_key()
    now = _now()
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] * identity.server + [ExtendedKeyUsageOID.CLIENT_AUTH] * identity.client
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity.name)]))
        .issuer_name(authority.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(min(now + LEAF_VALIDITY, authority.certificate.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()), critical=False)
    )
    if identity.hosts:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_general_name(host) for host in identity.hosts]), critical=False
        )
    return builder.sign(authority.key, hashes.SHA256()), key


def load_or_make_authority(ca_dir: Path) -> Authority:
    """The CA kept in ``ca_dir`` (``ca.crt``, ``ca.key``), made on first use and remade when it expires soon."""
    cert_path, key_path = ca_dir / "ca.crt", ca_dir / "ca.key"
    if cert_path.is_file() and key_path.is_file():
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if isinstance(key, ec.EllipticCurvePrivateKey) and certificate.not_valid_after_utc - _now() > RENEW_BEFORE:
            return Authority(certificate, key)
    authority = make_authority()
    _write_private(key_path, _key_pem(authority.key))
    _write_public(cert_path, authority.certificate.public_bytes(serialization.Encoding.PEM))
    return authority


def _still_good(path: Path, authority: Authority, identity: Identity) -> bool:
    """The certificate at ``path`` is from this CA, valid for a while, and for exactly this identity."""
    if not path.is_file() or not path.with_suffix(".key").is_file():
        return False
    try:
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
        certificate.verify_directly_issued_by(authority.certificate)
    except (ValueError, TypeError, InvalidSignature):
        return False
    if certificate.not_valid_after_utc - _now() < RENEW_BEFORE:
        return False
    try:
        sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        hosts = set(sans)
    except x509.ExtensionNotFound:
        hosts = set()
    try:
        usages = set(certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return False
    wanted = {ExtendedKeyUsageOID.SERVER_AUTH} if identity.server else set()
    wanted |= {ExtendedKeyUsageOID.CLIENT_AUTH} if identity.client else set()
    return hosts == {_general_name(host) for host in identity.hosts} and usages == wanted


def ensure_certificate(authority: Authority, identity: Identity, cert_path: Path) -> bool:
    """Write ``cert_path`` and its key (``.key`` beside it) unless a good one is there; True if issued."""
    if _still_good(cert_path, authority, identity):
        return False
    certificate, key = issue(authority, identity)
    _write_private(cert_path.with_suffix(".key"), _key_pem(key))
    _write_public(cert_path, certificate.public_bytes(serialization.Encoding.PEM))
    return True


@dataclass(frozen=True)
class ServiceFolders:
    """Where ``ensure_certificates`` writes: one folder per program, each holding only what it needs.

    ``liveness/`` and ``recognition/``: ``ca.crt``, ``server.crt``/``.key`` (the service) and
    ``client.crt``/``.key`` (its health probe); ``auth-web/``: ``ca.crt``, ``client.crt``/``.key``.
    The CA key stays in ``ca_dir``, which no service needs.
    """

    ca_dir: Path
    liveness: Path
    recognition: Path
    auth_web: Path

    @classmethod
    def under(cls, root: Path) -> ServiceFolders:
        return cls(root / "ca", root / "liveness", root / "recognition", root / "auth-web")

    def environment(self) -> dict[str, str]:
        """The settings of every program on one machine (the local run): both servers' certificates and
        auth-web's client certificate, which the run's own health probes present too."""
        return {
            CA_VARIABLE: str(self.auth_web / "ca.crt"),
            "LIVENESS_TLS_CERT": str(self.liveness / "server.crt"),
            "LIVENESS_TLS_KEY": str(self.liveness / "server.key"),
            "RECOGNITION_TLS_CERT": str(self.recognition / "server.crt"),
            "RECOGNITION_TLS_KEY": str(self.recognition / "server.key"),
            CLIENT_CERT_VARIABLE: str(self.auth_web / "client.crt"),
            CLIENT_KEY_VARIABLE: str(self.auth_web / "client.key"),
        }


def ensure_certificates(
    folders: ServiceFolders, liveness_hosts: Iterable[str], recognition_hosts: Iterable[str]
) -> list[Path]:
    """Make (once) the CA and every certificate of the stack; returns the certificates issued this time.

    Existing certificates are kept while they are from the current CA, have more than ``RENEW_BEFORE``
    left and carry the requested names; a running service reads its files at start, so restart it after
    a renewal.
    """
    authority = load_or_make_authority(folders.ca_dir)
    ca_pem = authority.certificate.public_bytes(serialization.Encoding.PEM)
    wanted = [
        (folders.liveness / "server.crt", Identity("liveness", server=True, hosts=tuple(liveness_hosts))),
        (folders.liveness / "client.crt", Identity("liveness-healthcheck", client=True)),
        (folders.recognition / "server.crt", Identity("recognition", server=True, hosts=tuple(recognition_hosts))),
        (folders.recognition / "client.crt", Identity("recognition-healthcheck", client=True)),
        (folders.auth_web / "client.crt", Identity("auth-web", client=True)),
    ]
    for folder in (folders.liveness, folders.recognition, folders.auth_web):
        if not (folder / "ca.crt").is_file() or (folder / "ca.crt").read_bytes() != ca_pem:
            _write_public(folder / "ca.crt", ca_pem)
    return [path for path, identity in wanted if ensure_certificate(authority, identity, path)]


#: Names every server certificate carries besides its own, so that probes on the machine itself verify too.
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


def server_hosts(extra: Iterable[str]) -> list[str]:
    """``extra`` (the names clients use) followed by ``LOCAL_HOSTS``, without repeats."""
    hosts: list[str] = []
    for host in [*extra, *LOCAL_HOSTS]:
        if host and host not in hosts:
            hosts.append(host)
    return hosts


class GrpcTls:
    """A private CA and certificates for every program under ``root`` (the local run's layout), with the settings
    that start a service or a client with them: what tests and benchmarks run the services with."""

    def __init__(self, root: Path) -> None:
        self.folders = ServiceFolders.under(root)
        ensure_certificates(self.folders, server_hosts([]), server_hosts([]))

    @property
    def env(self) -> dict[str, str]:
        """Settings for a model service or auth-web: mutual TLS, never plaintext."""
        return {**self.folders.environment(), "GRPC_INSECURE": ""}

    @property
    def client(self) -> GrpcSecurity:
        """auth-web's client identity."""
        return GrpcSecurity.client_from_env(self.env)

    def server(self, prefix: str = "LIVENESS") -> GrpcSecurity:
        return GrpcSecurity.from_env(f"{prefix}_TLS_CERT", f"{prefix}_TLS_KEY", self.env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m faceauth_common.tls",
        description="Make the private CA and the certificates of faceauth's gRPC mutual TLS (idempotent).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    ensure = commands.add_parser(
        "ensure",
        help="create or renew the CA and every certificate",
        description="Writes OUT/ca/ (CA key and certificate), OUT/liveness/, OUT/recognition/ and OUT/auth-web/; "
        "each folder can be given on its own (e.g. one volume per service).",
    )
    ensure.add_argument("--out", type=Path, default=Path("."), help="root folder of the default layout")
    ensure.add_argument("--ca-dir", type=Path, help="folder of the CA (default OUT/ca)")
    for option in ("liveness", "recognition", "auth-web"):
        ensure.add_argument(f"--{option}-dir", type=Path, help=f"folder for {option} (default OUT/{option})")
    ensure.add_argument(
        "--liveness-host", action="append", default=[], help="name clients use for liveness (repeatable)"
    )
    ensure.add_argument(
        "--recognition-host", action="append", default=[], help="name clients use for recognition (repeatable)"
    )
    args = parser.parse_args(argv)
    default = ServiceFolders.under(args.out)
    folders = ServiceFolders(
        args.ca_dir or default.ca_dir,
        args.liveness_dir or default.liveness,
        args.recognition_dir or default.recognition,
        args.auth_web_dir or default.auth_web,
    )
    issued = ensure_certificates(folders, server_hosts(args.liveness_host), server_hosts(args.recognition_host))
    for path in issued:
        print(f"issued {path}")
    print(f"gRPC TLS certificates ready ({len(issued)} issued, CA {folders.ca_dir / 'ca.crt'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
