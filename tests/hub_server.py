"""A loopback stand-in for the Hugging Face Hub, for tests that must not touch the network.

It speaks just enough of the Hub's HTTP protocol for the real `huggingface_hub` client (pointed at it
with an explicit `endpoint=`) to download and upload files:

- `HEAD|GET /{org}/{name}/resolve/{revision}/{path}`: 200 with `X-Repo-Commit`, `ETag` (the sha256 of
  the body: the client names the cache blob after it) and `Content-Length`; a missing file is 404
  `X-Error-Code: EntryNotFound`, an unknown revision `RevisionNotFound`, an unknown repo `RepoNotFound`,
  a gated repo 401/403 `GatedRepo` (401 without a token, 403 with a wrong one).
- `POST /api/repos/create`, `POST /api/validate-yaml` (a card needs a licence),
  `POST /api/models/{org}/{name}/branch/{branch}`,
  `POST /api/models/{org}/{name}/preupload/{revision}` (every file "regular", so no LFS/Xet transfer is
  needed) and `POST /api/models/{org}/{name}/commit/{revision}` (NDJSON with base64 file contents): enough
  for `HfApi.create_repo` + `create_branch` + `upload_folder`. Writes need the server's token.
- any other path: 404 (huggingface_hub 2.x asks for a few extra paths).

Every request is recorded in `server.requests` (method, path, headers) so tests can count them.
Usage::

    with HubServer() as hub:
        hub.add_repo("org/name", {"model.safetensors": b"..."})
        hf_hub_download("org/name", "model.safetensors", endpoint=hub.endpoint, ...)
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class FakeRepo:
    """One repository: commits (40-hex id -> {path: bytes}) and refs (branch -> commit)."""

    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    gated: bool = False
    private: bool = False
    # path -> bytes served instead of the real content (to simulate corruption in transit).
    corrupt: dict[str, bytes] = field(default_factory=dict)


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased


class HubServer:
    """Threaded loopback Hub on 127.0.0.1 (port chosen by the OS); a context manager."""

    def __init__(self, token: str | None = None) -> None:
        # `token`: the one token the server accepts for gated repos and writes.
        self.token = token
        self.repos: dict[str, FakeRepo] = {}
        self.requests: list[Request] = []
        self.validated_cards: list[str] = []  # README.md contents sent to /api/validate-yaml
        self._lock = threading.Lock()
        self._commit_counter = 0
        handler = type("_Handler", (_Handler,), {"hub": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- content ---------------------------------------------------------------------------
    def new_commit_id(self) -> str:
        with self._lock:
            self._commit_counter += 1
            return sha256(f"commit-{self._commit_counter}".encode())[:40]

    def add_repo(
        self,
        repo_id: str,
        files: dict[str, bytes],
        *,
        commit: str | None = None,
        gated: bool = False,
        private: bool = False,
    ) -> str:
        """Create (or add a commit to) `repo_id` holding `files`; `main` points at it. Returns the commit."""
        commit = commit or self.new_commit_id()
        repo = self.repos.setdefault(repo_id, FakeRepo(gated=gated, private=private))
        repo.commits[commit] = dict(files)
        repo.refs["main"] = commit
        return commit

    def count(self, method: str | None = None) -> int:
        return sum(1 for r in self.requests if method is None or r.method == method)

    def reset_requests(self) -> None:
        with self._lock:
            self.requests.clear()


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep pytest output quiet
        pass

    # -- helpers ---------------------------------------------------------------------------
    def _record(self) -> None:
        with self.hub._lock:
            headers = {k.lower(): v for k, v in self.headers.items()}  # lower-case names: easy lookups
            self.hub.requests.append(Request(self.command, self.path, headers))

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _error(self, status: int, code: str | None, message: str, commit: str | None = None) -> None:
        headers = {"Content-Type": "application/json", "X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        if commit:
            headers["X-Repo-Commit"] = commit
        self._send(status, json.dumps({"error": message}).encode(), headers)

    def _json(self, payload: object, status: int = 200) -> None:
        self._send(status, json.dumps(payload).encode(), {"Content-Type": "application/json"})

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        return auth.removeprefix("Bearer ").strip() or None

    def _authorised(self) -> bool:
        return self.hub.token is not None and self._token() == self.hub.token

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    # -- download --------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self._record()
        self._resolve()

    def do_GET(self) -> None:
        self._record()
        self._resolve()

    def _resolve(self) -> None:
        parts = unquote(urlsplit(self.path).path).lstrip("/").split("/")
        if len(parts) < 5 or parts[2] != "resolve":
            self._error(404, None, "not found")
            return
        repo_id, revision, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
        repo = self.hub.repos.get(repo_id)
        if repo is None or (repo.private and not self._authorised()):
            self._error(401 if repo is not None else 404, "RepoNotFound", "Repository not found")
            return
        if repo.gated and not self._authorised():
            status = 403 if self._token() else 401
            self._error(status, "GatedRepo", f"Access to model {repo_id} is restricted.")
            return
        commit = repo.refs.get(revision, revision if revision in repo.commits else None)
        if commit is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return
        files = repo.commits[commit]
        if filename not in files:
            self._error(404, "EntryNotFound", f"{filename} does not exist on {revision}", commit)
            return
        body = repo.corrupt.get(filename, files[filename])
        headers = {
            "X-Repo-Commit": commit,
            "ETag": f'"{sha256(body)}"',
            "Content-Type": "application/octet-stream",
        }
        self._send(200, body, headers)

    # -- upload ----------------------------------------------------------------------------
    def do_POST(self) -> None:
        self._record()
        body = self._body()
        path = unquote(urlsplit(self.path).path)
        if not self._authorised():
            self._error(401, None, "Invalid credentials in Authorization header")
            return
        if path == "/api/repos/create":
            self._create_repo(json.loads(body or b"{}"))
            return
        if path == "/api/validate-yaml":  # model card check before a README.md is committed
            content = json.loads(body).get("content", "")
            self.hub.validated_cards.append(content)
            if not content.startswith("---\n"):
                self._json({"errors": [], "warnings": [{"message": "Empty or missing yaml metadata"}]})
            elif "license:" not in content.split("---")[1]:
                self._json({"errors": [{"message": "license is required"}]}, status=400)
            else:
                self._json({"errors": [], "warnings": []})
            return
        parts = path.lstrip("/").split("/")
        # /api/models/{org}/{name}/branch/{branch}: create a branch at main
        if len(parts) >= 6 and parts[:2] == ["api", "models"] and parts[4] == "branch":
            repo = self.hub.repos.get("/".join(parts[2:4]))
            branch = "/".join(parts[5:])
            if repo is None:
                self._error(404, "RepoNotFound", "Repository not found")
            elif branch in repo.refs:
                self._error(409, None, "Reference already exists")
            else:
                if "main" in repo.refs:
                    repo.refs[branch] = repo.refs["main"]
                self._json({})
            return
        # /api/models/{org}/{name}/{preupload|commit}/{revision}
        if len(parts) >= 6 and parts[:2] == ["api", "models"] and parts[4] in {"preupload", "commit"}:
            repo_id, action, revision = "/".join(parts[2:4]), parts[4], "/".join(parts[5:])
            repo = self.hub.repos.get(repo_id)
            if repo is None:
                self._error(404, "RepoNotFound", "Repository not found")
            elif action == "preupload":
                files = json.loads(body).get("files", [])
                self._json(
                    {
                        "files": [
                            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files
                        ],
                        "commitOid": repo.refs.get(revision),
                    }
                )
            else:
                self._commit(repo_id, repo, revision, body)
            return
        self._error(404, None, "not found")

    def _create_repo(self, payload: dict) -> None:
        organization, name = payload.get("organization"), payload["name"]
        repo_id = f"{organization}/{name}" if organization else name
        if repo_id in self.hub.repos:
            # The Hub's 409 body carries the repo URL: `create_repo(exist_ok=True)` reads it.
            body = {"error": "You already created this model repo", "url": f"{self.hub.endpoint}/{repo_id}"}
            self._send(409, json.dumps(body).encode(), {"Content-Type": "application/json"})
            return
        # huggingface_hub 1.x sends {"private": true}, 2.x {"visibility": "private"}.
        private = bool(payload.get("private")) or payload.get("visibility") == "private"
        self.hub.repos[repo_id] = FakeRepo(private=private)
        self._json({"url": f"{self.hub.endpoint}/{repo_id}", "name": repo_id})

    def _commit(self, repo_id: str, repo: FakeRepo, revision: str, body: bytes) -> None:
        parent = repo.refs.get(revision)
        if parent is None and repo.commits:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return
        files = dict(repo.commits.get(parent, {})) if parent else {}
        for line in body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            if item.get("key") == "file":
                value = item["value"]
                files[value["path"]] = base64.b64decode(value["content"])
            elif item.get("key") in {"deletedFile", "deletedFolder"}:
                files.pop(item["value"]["path"], None)
        commit = self.hub.new_commit_id()
        repo.commits[commit] = files
        repo.refs[revision] = commit
        self._json(
            {
                "commitUrl": f"{self.hub.endpoint}/{repo_id}/commit/{commit}",
                "commitOid": commit,
                "pullRequestUrl": None,
            }
        )


# -- fixtures shared by the hub tests ------------------------------------------------------------------
def safetensors_bytes(metadata: dict[str, str] | None = None, n: int = 4) -> bytes:
    """A tiny valid safetensors file (one float32 tensor of `n` values), without importing torch."""
    import numpy as np
    from safetensors.numpy import save

    return save({"weight": np.arange(n, dtype=np.float32)}, metadata=metadata)


def model_folder_files(mode: str = "pose", *, discriminator: bool = True) -> dict[str, bytes]:
    """The files of a valid fewshotv2v model folder (tiny config, tiny weights)."""
    from fewshotv2v.config import ModelConfig

    files = {
        "config.json": json.dumps(ModelConfig.preset("tiny").to_dict() | {"mode": mode}).encode(),
        "model.safetensors": safetensors_bytes({"ema": "true", "step": "100"}),
    }
    if discriminator:
        files["discriminator.safetensors"] = safetensors_bytes(n=2)
    return files


def registry_dict(name: str, repo_id: str, commit: str, files: dict[str, bytes], **extra) -> dict:
    """A registry (the `registry.json` format) with one pinned entry whose sha256/sizes match `files`."""
    entry = {
        "kind": "backbone",
        "repo_id": repo_id,
        "revision": commit,
        "license": "MIT",
        "description": "test entry",
        "files": [{"filename": f, "sha256": sha256(b), "size": len(b)} for f, b in files.items()],
    }
    entry.update(extra)
    return {
        "format": "fewshotv2v-registry",
        "version": 1,
        "models": {name: entry, "pose": {"kind": "model", "mode": "pose", "published": False}},
    }
