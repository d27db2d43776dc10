"""A local stand-in for the Hugging Face Hub's file endpoints, for download tests without a network.

It answers what ``huggingface_hub.hf_hub_download`` and ``get_hf_file_metadata`` ask (checked against
huggingface_hub 2.4): ``HEAD`` and ``GET /{org}/{repo}/resolve/{revision}/{filename}`` with the
headers the real Hub sends — ``X-Repo-Commit`` (40-hex commit), ``ETag`` (git blob sha1, or the
sha256 for LFS files), ``X-Linked-Etag`` and ``X-Linked-Size`` for LFS files, ``Content-Length`` —
and ``404`` with ``X-Error-Code: RepoNotFound`` / ``RevisionNotFound`` / ``EntryNotFound`` for what is
missing. Files ending in ``.safetensors`` are served as LFS files. A revision may be a branch name or
the commit hash the server reported for it. Every request is logged so tests can assert that a cache
hit made none, and a file can be corrupted: the server then sends other bytes than the ones whose
sha256 and size it advertises. No redirect to a CDN host is simulated.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors",)


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob, which the Hub sends as the ETag of non-LFS files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeHub:
    """Serve in-memory repositories ``{(repo_id, revision): {filename: bytes}}`` on 127.0.0.1.

    Attributes:
        url: endpoint to put in ``HF_ENDPOINT`` (``http://127.0.0.1:<port>``), set by :meth:`start`.
        requests: ``(method, path)`` of every request received, in order.
        advertise_sha256: when False, LFS files are served like plain git files (no sha256 header),
            as for a repository that stored weights without LFS.
    """

    def __init__(self) -> None:
        self.repos: dict[tuple[str, str], dict[str, bytes]] = {}
        self.requests: list[tuple[str, str]] = []
        self.advertise_sha256 = True
        self.url = ""
        self._corrupt: dict[tuple[str, str, str], str] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- content -------------------------------------------------------------------------------

    @staticmethod
    def commit_of(repo_id: str, revision: str) -> str:
        """The 40-hex commit hash the server reports for a branch or tag."""
        return hashlib.sha1(f"{repo_id}@{revision}".encode()).hexdigest()

    def add(self, repo_id: str, files: dict[str, bytes], revision: str = "main") -> str:
        """Publish ``files`` as ``repo_id`` at ``revision``; return the commit hash it resolves to."""
        self.repos[(repo_id, revision)] = dict(files)
        return self.commit_of(repo_id, revision)

    def corrupt(self, repo_id: str, filename: str, revision: str = "main", mode: str = "flip") -> None:
        """Serve wrong bytes for one file while advertising the original sha256 and size.

        ``mode="flip"`` inverts the last byte (same length); ``mode="truncate"`` drops the second half.
        """
        if mode not in ("flip", "truncate"):
            raise ValueError(f"unknown corruption mode {mode!r}")
        self._corrupt[(repo_id, revision, filename)] = mode

    def served_bytes(self, repo_id: str, filename: str, revision: str = "main") -> bytes:
        """The bytes a GET of this file returns (differs from the stored ones when corrupted)."""
        data = self.repos[(repo_id, revision)][filename]
        mode = self._corrupt.get((repo_id, revision, filename))
        if mode == "flip":
            return data[:-1] + bytes([data[-1] ^ 0xFF])
        if mode == "truncate":
            return data[: len(data) // 2]
        return data

    def _resolve(self, repo_id: str, revision: str) -> tuple[str, str] | str:
        """``(branch, commit)`` for a branch or commit of ``repo_id``, or the Hub's error code."""
        branches = [rev for (repo, rev) in self.repos if repo == repo_id]
        if not branches:
            return "RepoNotFound"
        for branch in branches:
            if revision in (branch, self.commit_of(repo_id, branch)):
                return branch, self.commit_of(repo_id, branch)
        return "RevisionNotFound"

    # --- server --------------------------------------------------------------------------------

    def start(self) -> FakeHub:
        """Listen on a free port of 127.0.0.1 in a daemon thread."""
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
                hub._answer(self, send_body=False)

            def do_GET(self) -> None:  # noqa: N802
                hub._answer(self, send_body=True)

            def log_message(self, format: str, *args: object) -> None:  # keep test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-hub", daemon=True
        )  # a short poll keeps shutdown (once per test) fast
        self._thread.start()
        return self

    def stop(self) -> None:
        """Shut the server down and free its port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _answer(self, handler: BaseHTTPRequestHandler, *, send_body: bool) -> None:
        with self._lock:
            self.requests.append((handler.command, handler.path))
        parts = urlsplit(handler.path).path.split("/")
        # ["", org, repo, "resolve", revision, filename...]; the revision arrives percent-encoded
        if len(parts) < 6 or parts[3] != "resolve":
            return self._send(handler, 404, {}, b'{"error": "no such endpoint"}', send_body)
        repo_id, revision, filename = f"{parts[1]}/{parts[2]}", unquote(parts[4]), unquote("/".join(parts[5:]))
        resolved = self._resolve(repo_id, revision)
        if isinstance(resolved, str):
            return self._error(handler, resolved, {}, send_body)
        branch, commit = resolved
        files = self.repos[(repo_id, branch)]
        if filename not in files:
            return self._error(handler, "EntryNotFound", {"X-Repo-Commit": commit}, send_body)
        data = files[filename]
        headers = {"X-Repo-Commit": commit, "Content-Type": "application/octet-stream"}
        if filename.endswith(LFS_SUFFIXES) and self.advertise_sha256:
            sha256 = hashlib.sha256(data).hexdigest()
            headers.update({"ETag": f'"{sha256}"', "X-Linked-Etag": f'"{sha256}"', "X-Linked-Size": str(len(data))})
        else:
            headers["ETag"] = f'"{git_blob_sha1(data)}"'
        body = self.served_bytes(repo_id, filename, branch) if send_body else data
        self._send(handler, 200, headers, body, send_body)

    def _error(self, handler: BaseHTTPRequestHandler, code: str, headers: dict[str, str], send_body: bool) -> None:
        message = {"RepoNotFound": "Repository not found", "RevisionNotFound": "Invalid rev id"}.get(
            code, "Entry not found"
        )
        headers = {**headers, "X-Error-Code": code, "X-Error-Message": message, "Content-Type": "application/json"}
        self._send(handler, 404, headers, json.dumps({"error": message}).encode(), send_body)

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes, send_body: bool
    ) -> None:
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(body)))  # a HEAD announces the size it would send
        handler.end_headers()
        if send_body:
            handler.wfile.write(body)
