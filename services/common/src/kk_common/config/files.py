"""Checks of the files a valid configuration names: they exist, can be read, and parse.

Kept apart from :func:`~kk_common.config.parse_config`, which is pure and runs in every
container: a file is only there where it is mounted, so each caller checks the files it
uses. ``killkrill-agent validate`` and the shipper (at startup, before anything else)
check the TLS files of the enabled outputs; a problem names the key path, like every other
configuration problem, and the caller exits 2 without a traceback.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from .errors import ConfigProblem
from .model import AgentConfig

__all__ = ["tls_file_problems"]

_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"
_PRIVATE_KEY = b"PRIVATE KEY-----"  # PKCS#8, RSA and EC keys all end their BEGIN line so


def tls_file_problems(config: AgentConfig) -> list[ConfigProblem]:
    """Every problem with ``<pipeline>.output.tls`` files of the enabled pipelines."""
    problems: list[ConfigProblem] = []
    for pipeline, section in (("logs", config.logs), ("metrics", config.metrics)):
        if not section.enabled:
            continue
        tls = section.output.tls
        where = f"{pipeline}.output.tls"
        if tls.ca_file is not None:
            problems += _ca_problems(f"{where}.ca_file", tls.ca_file)
        cert_ok = key_ok = False
        if tls.cert_file is not None:
            found = _pem_problems(f"{where}.cert_file", tls.cert_file, _CERTIFICATE, "certificate")
            problems += found
            cert_ok = not found
        if tls.key_file is not None:
            found = _pem_problems(f"{where}.key_file", tls.key_file, _PRIVATE_KEY, "private key")
            problems += found
            key_ok = not found
        if cert_ok and key_ok:
            problems += _pair_problems(where, tls.cert_file or "", tls.key_file or "")
    return problems


def _read(path: str, key: str) -> tuple[bytes | None, list[ConfigProblem]]:
    try:
        return Path(path).read_bytes(), []
    except FileNotFoundError:
        return None, [ConfigProblem(key, f"file not found: {path}")]
    except IsADirectoryError:
        return None, [ConfigProblem(key, f"is a directory, not a file: {path}")]
    except OSError as error:
        reason = (error.strerror or str(error)).lower()
        return None, [ConfigProblem(key, f"cannot read {path}: {reason}")]


def _ca_problems(key: str, path: str) -> list[ConfigProblem]:
    text, problems = _read(path, key)
    if text is None:
        return problems
    if _CERTIFICATE not in text:
        return [ConfigProblem(key, f"not a PEM certificate bundle (no BEGIN CERTIFICATE): {path}")]
    try:
        ssl.create_default_context(cafile=path)
    except ssl.SSLError as error:
        return [ConfigProblem(key, f"no usable certificate in {path}: {error.reason or error}")]
    return []


def _pem_problems(key: str, path: str, marker: bytes, what: str) -> list[ConfigProblem]:
    text, problems = _read(path, key)
    if text is None:
        return problems
    if marker not in text:
        return [ConfigProblem(key, f"not a PEM {what}: {path}")]
    return []


def _pair_problems(where: str, cert_file: str, key_file: str) -> list[ConfigProblem]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        # An encrypted key would make OpenSSL prompt on the terminal; an empty password
        # fails instead (the agent has no way to get a passphrase).
        context.load_cert_chain(cert_file, key_file, password=b"")
    except ssl.SSLError as error:
        reason = error.reason or str(error)
        return [
            ConfigProblem(
                f"{where}.key_file",
                f"cannot be used with {where}.cert_file ({reason}): the key must be the "
                "unencrypted private key of that certificate",
            )
        ]
    return []
