"""The SMTP client against a real server (aiosmtpd): STARTTLS and AUTH, implicit TLS, refusals."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sdfleet.services.mailer import SmtpConfig, SmtpMailer
from tests.fixtures.live import free_port
from tests.fixtures.notifications import _Mailbox


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> tuple[ssl.SSLContext, str]:
    """A self-signed certificate for 127.0.0.1: the server's context and the CA file the client trusts."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sdfleet test smtp")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                       serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context, str(folder / "cert.pem")


def _authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"fleet", b"s3cret")
    return AuthResult(success=ok, handled=False)


def _message() -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "sdfleet@fleet.example", "a@example.com", "hello"
    message.set_content("hi")
    return message


@pytest.fixture
def starttls_server(tls):
    context, _ = tls
    mailbox, port = _Mailbox(), free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True,
                            authenticator=_authenticator, auth_require_tls=True)
    controller.start()
    yield mailbox, port
    controller.stop()


def test_starttls_then_auth_delivers(starttls_server, tls):
    mailbox, port = starttls_server
    mailer = SmtpMailer(SmtpConfig.parse(f"smtp://fleet:s3cret@127.0.0.1:{port}?starttls=require&ca_file={tls[1]}"),
                        mail_from="sdfleet@fleet.example")
    result = mailer.send(_message())
    assert result.ok and result.status_code == 250, result
    assert mailbox.envelopes == [("sdfleet@fleet.example", ["a@example.com"])]


@pytest.mark.parametrize(("url", "expected"), [
    ("smtp://fleet:wrong@127.0.0.1:{port}?ca_file={ca}", "535"),  # bad credentials: the server's code
    ("smtp://fleet:s3cret@127.0.0.1:{port}?starttls=off", "AUTH"),  # no AUTH offered before STARTTLS
    ("smtp://fleet:s3cret@127.0.0.1:{port}", "CERTIFICATE_VERIFY_FAILED"),  # an unknown CA is not trusted
])
def test_refusals_are_reported_not_raised(starttls_server, tls, url, expected):
    _, port = starttls_server
    result = SmtpMailer(SmtpConfig.parse(url.format(port=port, ca=tls[1])), mail_from="sdfleet@fleet.example").send(
        _message())
    assert not result.ok and expected in f"{result.status_code} {result.error}", result


def test_implicit_tls(tls):
    context, ca = tls
    mailbox, port = _Mailbox(), free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, ssl_context=context)
    controller.start()
    try:
        mailer = SmtpMailer(SmtpConfig.parse(f"smtps://127.0.0.1:{port}?ca_file={ca}"), mail_from="sdfleet@fleet.example")
        assert mailer.send(_message()).ok
        assert len(mailbox.messages) == 1
    finally:
        controller.stop()


def test_starttls_required_but_not_offered_refuses_to_send():
    mailbox, port = _Mailbox(), free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        result = SmtpMailer(SmtpConfig.parse(f"smtp://127.0.0.1:{port}?starttls=require"),
                            mail_from="sdfleet@fleet.example").send(_message())
        assert not result.ok and "STARTTLS" in result.error and not mailbox.messages
    finally:
        controller.stop()
