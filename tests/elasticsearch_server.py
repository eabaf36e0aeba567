"""Loopback servers for the Elasticsearch tests and benchmark.

- :func:`start_noida`: a real (if small) Elasticsearch-compatible server, the ``noida-db``
  binary from PyPI, with only its Elasticsearch endpoint enabled, on a chosen port, with its
  data in a folder of ours. Stopped by its process id.
- :class:`FaultProxy`: an HTTP(S) reverse proxy in front of a server that can stall bulk
  requests (a server that stops answering mid-build) and terminate TLS (noida speaks plain
  HTTP only).
- :class:`RejectingServer`: answers every request with Elasticsearch's HTTP 401, for the
  bad-credential tests (noida has no security: it accepts any credential).

Everything binds 127.0.0.1.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipeline.retrieval.search.elastic import ElasticsearchIndex

HOST = "127.0.0.1"


@dataclass(frozen=True)
class ElasticsearchTarget:
    """A server to test against: its URL and the client options it needs (credentials)."""

    url: str
    options: dict[str, Any] = field(default_factory=dict)

    def index(self, name: str, url: str | None = None, **settings: Any) -> ElasticsearchIndex:
        """An index on this server (or, through ``url``, on a proxy in front of it)."""
        return ElasticsearchIndex(url or self.url, name, **{**self.options, **settings})

    @classmethod
    def from_environment(cls) -> ElasticsearchTarget | None:
        """The cluster named by ``ELASTICSEARCH_URL`` and its credentials, if one is set."""
        url = os.environ.get("ELASTICSEARCH_URL")
        if not url:
            return None
        options: dict[str, Any] = {}
        if api_key := os.environ.get("ELASTICSEARCH_API_KEY"):
            options["api_key"] = api_key
        if username := os.environ.get("ELASTICSEARCH_USERNAME"):
            options["username"] = username
            options["password"] = os.environ.get("ELASTICSEARCH_PASSWORD", "")
        if ca_certs := os.environ.get("ELASTICSEARCH_CA_CERTS"):
            options["ca_certs"] = ca_certs
        return cls(url, options)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def noida_binary() -> Path | None:
    """The noida-db executable shipped in the wheel (not its Python wrapper, which would be a
    second process to stop), or None when the package is not installed."""
    try:
        binary = Path(str(files("noida_db").joinpath("noida-db")))
    except ModuleNotFoundError:
        return None
    return binary if binary.is_file() else None


@dataclass
class NoidaServer:
    process: subprocess.Popen[bytes]
    url: str
    data_dir: Path
    log_path: Path

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to our process id, SIGKILL if it lingers."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)


def start_noida(data_dir: Path, port: int | None = None, timeout: float = 30.0,
                attempts: int = 3) -> NoidaServer:
    """Start noida-db's Elasticsearch endpoint alone on ``port`` (a free one by default)."""
    binary = noida_binary()
    if binary is None:
        raise RuntimeError("noida-db is not installed (pip install noida-db==0.2.3)")
    binary.chmod(0o755)
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "noida.log"
    for attempt in range(attempts):
        chosen = port or free_port()
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                [str(binary), "start", "--data-dir", str(data_dir), "--host", HOST,
                 "--only", "elasticsearch", "--elasticsearch-port", str(chosen)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        server = NoidaServer(process, f"http://{HOST}:{chosen}", data_dir, log_path)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(server.url, timeout=2) as response:
                    if response.status == 200:
                        return server
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.05)
        server.stop()
        if port is not None or attempt == attempts - 1:
            break  # else the free port was taken meanwhile: try another
    tail = log_path.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"noida-db did not start on {HOST}; its log:\n{tail}")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


@dataclass
class FaultProxy:
    """Forwards every request to ``upstream``; can stall ``_bulk`` requests and speak TLS.

    After ``bulk_passes`` bulk requests went through, the next ones get no answer for
    ``stall_seconds`` (then the connection is closed). ``bulk_requests`` counts the bulk
    requests received, so a test can see the client's retries.
    """

    upstream: str
    bulk_passes: int | None = None
    stall_seconds: float = 10.0
    certfile: Path | None = None
    keyfile: Path | None = None
    upstream_ca: str | None = None
    bulk_requests: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _released: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        scheme = "https" if self.certfile else "http"
        return f"{scheme}://{HOST}:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.split("?")[0].endswith("/_bulk") and proxy._stall():
                    proxy._released.wait(proxy.stall_seconds)
                    self.close_connection = True
                    return
                status, headers, payload = proxy._upstream(self.command, self.path,
                                                           dict(self.headers), body)
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in {"content-length", "transfer-encoding",
                                            "connection"}:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

        self._server = _Server((HOST, 0), Handler)
        if self.certfile:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.certfile, self.keyfile)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()

    def _stall(self) -> bool:
        with self._lock:
            self.bulk_requests += 1
            return self.bulk_passes is not None and self.bulk_requests > self.bulk_passes

    def _upstream(self, method: str, path: str, headers: dict[str, str],
                  body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        target = urlsplit(self.upstream)
        if target.scheme == "https":
            context = ssl.create_default_context(cafile=self.upstream_ca)
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                target.hostname, target.port, context=context, timeout=60)
        else:
            connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
        headers = {k: v for k, v in headers.items() if k.lower() not in {"host", "connection"}}
        try:
            connection.request(method, target.path.rstrip("/") + path, body=body or None,
                               headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()


@dataclass
class RejectingServer:
    """Answers everything with Elasticsearch's 401 and remembers the Authorization headers."""

    authorizations: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._server.server_address[1]}"

    def start(self) -> RejectingServer:
        seen = self.authorizations

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _reject(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                seen.append(self.headers.get("Authorization", ""))
                reason = "unable to authenticate with provided credentials"
                payload = json.dumps({"error": {
                    "root_cause": [{"type": "security_exception", "reason": reason}],
                    "type": "security_exception", "reason": reason}, "status": 401}).encode()
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("WWW-Authenticate", 'Basic realm="security", ApiKey')
                self.send_header("X-Elastic-Product", "Elasticsearch")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _reject

        self._server = _Server((HOST, 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that is its own CA, made with the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("the openssl command is not installed")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key
