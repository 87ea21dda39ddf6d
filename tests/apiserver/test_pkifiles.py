"""The server-side PKI files: created by a child process, re-checked only when needed,
and a running server that never loads the crypto libraries for client certificates."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import textwrap
from pathlib import Path

from cryptography import x509

from sampan.apiserver.pki import _load_cert, ensure_pki
from sampan.apiserver.pkifiles import STAMP, PkiFiles, ensure_pki_files, server_ssl_context

ROOT = Path(__file__).resolve().parent.parent.parent


async def test_child_creates_the_pki_and_stamps_it(tmp_path):
    tls = tmp_path / "tls"
    files = await ensure_pki_files(tls, ["localhost", "api.example"], ["127.0.0.1", "198.18.0.7"])
    assert isinstance(files, PkiFiles)
    cert = _load_cert(files.server_cert_path)
    assert cert is not None
    stamp = json.loads((tls / STAMP).read_text())
    assert stamp["hostnames"] == ["localhost", "api.example"]
    assert set(stamp["files"]) >= {"ca.crt", "server.crt", "admin.key", "sa.pub"}
    # Keys load lazily and match what the in-process API would load.
    assert files.ca_pem == files.ca_cert_path.read_bytes()
    assert files.sa_public_key.key_size == 2048
    assert isinstance(server_ssl_context(files), ssl.SSLContext)


async def test_a_changed_file_or_request_is_checked_again(tmp_path):
    tls = tmp_path / "tls"
    first = await ensure_pki_files(tls, ["localhost"], [])
    serial = _load_cert(first.server_cert_path).serial_number
    # Same request, same files: the stamp holds and nothing is re-issued.
    await ensure_pki_files(tls, ["localhost"], [])
    assert _load_cert(first.server_cert_path).serial_number == serial
    # A new name is not covered: the serving certificate is re-issued with it.
    await ensure_pki_files(tls, ["localhost", "new.example"], [])
    cert = _load_cert(first.server_cert_path)
    assert cert.serial_number != serial
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "new.example" in sans.get_values_for_type(x509.DNSName)
    # A damaged file no longer matches the stamp and is replaced.
    first.server_cert_path.write_text("garbage")
    await ensure_pki_files(tls, ["localhost", "new.example"], [])
    assert _load_cert(first.server_cert_path) is not None


async def test_child_failure_is_reported(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    try:
        await ensure_pki_files(blocker / "tls", ["localhost"], [])
    except RuntimeError as exc:
        assert "PKI" in str(exc)
    else:
        raise AssertionError("expected a RuntimeError")


def test_in_process_pki_is_still_available(tmp_path):
    pki = ensure_pki(tmp_path / "tls", ["localhost"], [])
    assert pki.ca_pem.startswith(b"-----BEGIN CERTIFICATE-----")
    assert pki.server_cert_path == tmp_path / "tls" / "server.crt"


def test_running_server_does_not_load_crypto_libraries(tmp_path):
    """Client-certificate requests are authenticated with the ssl module alone."""
    script = textwrap.dedent(f"""
        import asyncio, ssl, sys
        from pathlib import Path
        import aiohttp
        from sampan.server import ServerOptions, start_server

        async def main():
            server = await start_server(ServerOptions(data_dir=Path({str(tmp_path)!r}), port=0, datastore="memory",
                                                      agent=False, controllers=[], scheduler=False))
            try:
                tls = Path({str(tmp_path)!r}) / "server" / "tls"
                ctx = ssl.create_default_context(cafile=str(tls / "ca.crt"))
                ctx.load_cert_chain(tls / "admin.crt", tls / "admin.key")
                async with aiohttp.ClientSession() as http:
                    async with http.get(server.url + "/api/v1/namespaces/default", ssl=ctx) as resp:
                        print("status", resp.status)
            finally:
                await server.stop()
            print("loaded", sorted(m for m in ("cryptography", "jwt", "jsonschema") if m in sys.modules))

        asyncio.run(main())
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "status 200" in out.stdout
    assert "loaded []" in out.stdout
