"""A stand-in for the Hugging Face Hub on 127.0.0.1, answering as huggingface.co does.

``HEAD|GET /{repo}/resolve/{revision}/{path}``:
- an LFS file: 302 to a "CDN" (a second server, another origin, as cas-bridge.xethub.hf.co is)
  with ``X-Repo-Commit``, ``X-Linked-Etag: "<sha256>"`` (the LFS object id), ``X-Linked-Size``;
  the CDN serves the bytes;
- a small file stored in git: 200 with ``ETag: "<git blob sha1>"`` and the bytes;
- a missing file of a known repo: 404 with ``X-Error-Code: EntryNotFound``; an unknown repo:
  401 with ``X-Error-Code: RepoNotFound`` (the hub does not reveal private repos).

``corrupt`` holds paths whose transfer is damaged in flight (one byte flipped, same length).
``requests`` logs (method, path) of every request to either server.
"""
from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Set, Tuple

COMMIT = "c0ffee" + "0" * 34


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeHub:
    def __init__(self):
        self.files: Dict[Tuple[str, str], Tuple[bytes, bool]] = {}  # (repo, path) -> (bytes, lfs)
        self.corrupt: Set[Tuple[str, str]] = set()
        self.requests: List[Tuple[str, str]] = []
        self._hub = ThreadingHTTPServer(("127.0.0.1", 0), self._handler(self._resolve))
        self._cdn = ThreadingHTTPServer(("127.0.0.1", 0), self._handler(self._serve_blob))
        self.url = f"http://127.0.0.1:{self._hub.server_address[1]}"
        self.cdn_url = f"http://127.0.0.1:{self._cdn.server_address[1]}"

    def add(self, repo: str, path: str, data: bytes, lfs: bool = True) -> str:
        """Serve ``data`` as ``repo/path``; returns its sha256."""
        self.files[(repo, path)] = (data, lfs)
        return hashlib.sha256(data).hexdigest()

    def start(self):
        for server in (self._hub, self._cdn):
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self):
        for server in (self._hub, self._cdn):
            server.shutdown()
            server.server_close()

    def downloads(self) -> int:
        """Number of GET requests for file bytes (the client also asks /api/... once per process)."""
        return sum(1 for m, p in self.requests if m == "GET" and ("/resolve/" in p or p.startswith("/blobs/")))

    def _handler(self, respond):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self):
                hub.requests.append(("HEAD", self.path))
                respond(self, body=False)

            def do_GET(self):
                hub.requests.append(("GET", self.path))
                respond(self, body=True)

            def log_message(self, *args):
                pass

        return Handler

    def _send(self, h, status, headers, data=b"", body=True):
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if body:
            h.wfile.write(data)

    def _resolve(self, h, body):
        parts = h.path.split("?")[0].lstrip("/").split("/")
        if len(parts) < 5 or parts[2] != "resolve":
            return self._send(h, 404, {}, b"not found", body)
        repo, path = f"{parts[0]}/{parts[1]}", "/".join(parts[4:])
        if not any(r == repo for r, _ in self.files):
            return self._send(h, 401, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"},
                              b"Repository not found", body)
        if (repo, path) not in self.files:
            return self._send(h, 404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT},
                              b"Entry not found", body)
        data, lfs = self.files[(repo, path)]
        if lfs:
            sha = hashlib.sha256(data).hexdigest()
            return self._send(h, 302, {"Location": f"{self.cdn_url}/blobs/{sha}?repo={repo}&path={path}",
                                       "X-Repo-Commit": COMMIT, "ETag": f'"{git_blob_sha1(sha.encode())}"',
                                       "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(data))}, b"", body)
        self._send(h, 200, {"X-Repo-Commit": COMMIT, "ETag": f'"{git_blob_sha1(data)}"'},
                   self._maybe_corrupt(repo, path, data), body)

    def _serve_blob(self, h, body):
        query = dict(kv.split("=", 1) for kv in h.path.split("?", 1)[1].split("&")) if "?" in h.path else {}
        key = (query.get("repo"), query.get("path"))
        if key not in self.files:
            return self._send(h, 404, {}, b"no such blob", body)
        data = self.files[key][0]
        self._send(h, 200, {"Content-Type": "application/octet-stream"}, self._maybe_corrupt(*key, data), body)

    def _maybe_corrupt(self, repo, path, data):
        if (repo, path) in self.corrupt and data:
            mid = len(data) // 2
            return data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1:]
        return data
