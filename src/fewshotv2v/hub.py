"""Weights on the Hugging Face Hub: the pinned registry, downloads with sha256 checks, model lookup.

Every model the project knows is listed in `registry.json` (shipped in the package): a repo id, a pinned
40-hex commit, and a sha256 (and size, when known) per file. `download` fetches each file with
`hf_hub_download`, passing endpoint / revision / cache_dir / token / library name explicitly (huggingface_hub
reads its environment variables once, at import), then checks the sha256. A stamp (path, size, mtime,
sha256) records the check, so a second call with everything cached makes no HTTP request and does not
re-hash hundreds of MB. `resolve_model` turns a name or folder into a local model folder, never touching
the network.

The registry can be replaced by a JSON file named in `FSV2V_REGISTRY` (same format): for tests and mirrors.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fewshotv2v import __version__
from fewshotv2v.errors import (
    AuthError,
    CheckpointError,
    ChecksumError,
    ConfigError,
    DiskFullError,
    DownloadError,
    FewShotV2VError,
    ModelNotFoundError,
    NotFoundOnHubError,
    OfflineError,
)
from fewshotv2v.registry import (  # noqa: F401  (re-exported: hub.load_registry etc.)
    _COMMIT,
    REGISTRY_FILE,
    RegistryEntry,
    RegistryFile,
    _as_registry,
    load_registry,
)

LIBRARY_NAME = "fewshotv2v"
ASSETS_DIR = Path(__file__).with_name("assets")
MODEL_FILES = ("config.json", "model.safetensors")  # a fewshotv2v model folder needs both
OPTIONAL_MODEL_FILES = ("discriminator.safetensors",)
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


# ---------------------------------------------------------------------------------------------- helpers
def _settings(settings):
    if settings is None:
        from fewshotv2v.settings import load_settings

        settings = load_settings()
    return settings


def hub_token(settings) -> str | bool:
    """The token to send: settings (`FSV2V_HUB__TOKEN`, else `HF_TOKEN`), else the stored login
    (`$HF_TOKEN_PATH`, else `$HF_HOME/token`, read now); `False` (send none) if there is none.

    Never printed or logged; it goes only to the configured endpoint.
    """
    if settings.hub.token:
        return settings.hub.token
    from fewshotv2v.settings import hf_home

    path = Path(os.environ.get("HF_TOKEN_PATH") or hf_home() / "token").expanduser()
    try:
        stored = path.read_text(encoding="utf-8").strip()
    except OSError:
        stored = ""
    return stored or False


def _packaged_dir(name: str) -> Path | None:
    path = ASSETS_DIR / name
    return path if re.fullmatch(r"[\w.-]+", name) and path.is_dir() else None


def _hub_error(exc: BaseException, repo_id: str, filename: str, revision: str, endpoint: str) -> Exception:
    """Map a huggingface_hub / OS error to a one-line `FewShotV2VError` (or return `exc` unchanged)."""
    from huggingface_hub import errors as hf

    where = f"{repo_id}@{revision[:12]}"
    login = "log in with `hf auth login`, set HF_TOKEN or FSV2V_HUB__TOKEN"
    if isinstance(exc, hf.GatedRepoError):  # subclass of RepositoryNotFoundError: test it first
        return AuthError(f"{repo_id} is gated on {endpoint}: accept its conditions on the Hub and {login}")
    if isinstance(exc, hf.RepositoryNotFoundError):
        return NotFoundOnHubError(f"repository {repo_id} not found on {endpoint} (if it is private, {login})")
    if isinstance(exc, hf.RevisionNotFoundError):
        return NotFoundOnHubError(f"revision {revision} not found in repository {repo_id}")
    if isinstance(exc, hf.LocalEntryNotFoundError):
        from fewshotv2v.settings import hf_offline_env

        if hf_offline_env():
            why = "HF_HUB_OFFLINE is set); unset it to download"
        else:
            why = f"offline, or {endpoint} unreachable); run `fsv2v download` while online"
        return OfflineError(f"{filename} of {where} is not in the cache and the Hub cannot be used ({why}")
    if isinstance(exc, hf.EntryNotFoundError):
        return NotFoundOnHubError(f"file {filename} not found in {where}")
    if isinstance(exc, hf.HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            return AuthError(f"access to {repo_id} denied ({status}) by {endpoint}: {login}")
        return DownloadError(f"downloading {filename} from {where} failed (HTTP {status})")
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return DiskFullError(f"no space left on device while downloading {filename} of {where}")
    transport = type(exc).__module__.startswith("httpx")  # httpx (1.x) / httpx2 (2.x) transport errors
    if transport or isinstance(exc, ConnectionError | TimeoutError):
        return OfflineError(f"cannot reach {endpoint} to download {filename} of {where}: {exc}")
    return exc


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _stamp_path(settings, file: Path) -> Path:
    key = hashlib.sha256(str(file.resolve()).encode()).hexdigest()[:32]
    return Path(settings.cache_dir).expanduser() / "verified" / f"{key}.json"


def _stamp_for(file: Path, sha256: str) -> dict[str, Any]:
    stat = file.resolve().stat()
    return {"path": str(file.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256}


def verify_file(settings, file: Path, expected: str, *, force: bool = False, announce: bool = False) -> None:
    """Check `file` against its pinned sha256 (skipped when an up-to-date stamp says it was checked).

    On a mismatch the file, its cache blob and any stamp are removed and `ChecksumError` is raised.
    """
    stamp = _stamp_path(settings, file)
    if not force and stamp.is_file():
        try:
            if json.loads(stamp.read_text()) == _stamp_for(file, expected):
                return
        except (OSError, ValueError):
            pass
    if announce:
        from fewshotv2v.commands._common import info

        info(f"checking the sha256 of {file.name}")
    actual = sha256_file(file)
    if actual != expected:
        _remove_download(file)
        stamp.unlink(missing_ok=True)
        raise ChecksumError(
            f"{file.name}: sha256 {actual[:16]}... does not match the pinned {expected[:16]}...; "
            "the file was removed (download it again; if it keeps failing the mirror serves other bytes)"
        )
    stamp.parent.mkdir(parents=True, exist_ok=True)
    tmp = stamp.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(_stamp_for(file, expected)))
    os.replace(tmp, stamp)


def _remove_download(file: Path) -> None:
    """Delete a downloaded file: the snapshot link and the blob it points to (or a local_dir copy and
    its huggingface_hub metadata), so the next call downloads it again."""
    blob = file.resolve()
    file.unlink(missing_ok=True)
    if blob != file:
        blob.unlink(missing_ok=True)
    # local_dir mode: huggingface_hub keeps <local_dir>/.cache/huggingface/download/<file>.metadata
    (file.parent / ".cache" / "huggingface" / "download" / f"{file.name}.metadata").unlink(missing_ok=True)


@contextmanager
def hub_logs_as_ours(endpoint: str) -> Iterator[None]:
    """huggingface_hub logs its retries on stderr (`'[Errno 111] Connection refused' thrown while
    requesting HEAD ...`, `Retrying in 1s [Retry 1/5].`, ~24 s of them for an unreachable endpoint): keep
    stderr to our own lines. The first retry becomes one info line of ours; the rest is dropped (errors
    still end as our one-line error). With -v huggingface_hub's own lines are shown."""
    import logging

    from fewshotv2v.commands import _common

    if _common.STATE.verbose:
        yield
        return
    logger = logging.getLogger("huggingface_hub")
    told = []

    class _Ours(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if not told and record.getMessage().startswith(("Retrying in", "Rate limited")):
                told.append(True)
                _common.info(f"{endpoint} does not answer; retrying for up to ~25 s (Ctrl-C to stop)")

    saved = logger.handlers[:], logger.propagate
    logger.handlers, logger.propagate = [_Ours(logging.WARNING)], False
    try:
        yield
    finally:
        logger.handlers, logger.propagate = saved


@contextmanager
def _rich_tqdm(enabled: bool, label: str) -> Iterator[type | None]:
    """A tqdm class for `hf_hub_download(tqdm_class=...)` that draws a Rich byte bar on stderr instead
    (off when quiet or when stderr is not a terminal, like every progress bar of the CLI)."""
    import sys

    from fewshotv2v.commands import _common

    if not enabled or _common.STATE.quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )
    from tqdm.auto import tqdm

    columns = [TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn()]
    with Progress(*columns, TimeRemainingColumn(), console=_common.err_console()) as bar:

        class RichTqdm(tqdm):  # type: ignore[misc, valid-type]
            def __init__(self, *args, **kwargs):
                kwargs["disable"] = True  # tqdm itself draws nothing; Rich does
                super().__init__(*args, **kwargs)
                self._task = bar.add_task(label, total=kwargs.get("total"))

            def update(self, n=1):
                bar.advance(self._task, n or 0)

        yield RichTqdm


def _fetch(
    repo_id: str,
    filename: str,
    revision: str,
    *,
    settings,
    cache_dir,
    local_dir,
    offline: bool,
    force: bool,
    progress: bool,
) -> Path:
    """One `hf_hub_download` with every parameter explicit; errors mapped to one-line messages."""
    from huggingface_hub import hf_hub_download

    endpoint = settings.hub.endpoint.rstrip("/")
    try:
        with hub_logs_as_ours(endpoint), _rich_tqdm(progress and not offline, filename) as tqdm_class:
            path = hf_hub_download(
                repo_id,
                filename,
                revision=revision,
                endpoint=endpoint,
                cache_dir=str(cache_dir),
                local_dir=str(local_dir) if local_dir is not None else None,
                token=hub_token(settings),
                library_name=LIBRARY_NAME,
                library_version=__version__,
                local_files_only=offline,
                force_download=force,
                etag_timeout=settings.hub.etag_timeout,
                tqdm_class=tqdm_class,
            )
    except FewShotV2VError:
        raise
    except Exception as exc:
        mapped = _hub_error(exc, repo_id, filename, revision, endpoint)
        if mapped is exc:
            raise
        raise mapped from exc
    return Path(path)


# ---------------------------------------------------------------------------------------------- download
def download(
    name: str,
    *,
    settings=None,
    repo: str | None = None,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_dir: str | Path | None = None,
    offline: bool | None = None,
    force: bool = False,
    progress: bool = True,
    registry: dict[str, RegistryEntry] | str | Path | None = None,
) -> Path:
    """Fetch a registry model (or, with `repo=`, any Hub repo holding a fewshotv2v model folder) and
    return the local folder holding its files. Files of a registry model are pinned and sha256-checked.
    """
    settings = _settings(settings)
    offline = settings.hub.offline if offline is None else offline
    if offline and force:  # huggingface_hub raises a ValueError for this pair
        raise ConfigError("--force downloads again, which offline mode forbids")
    cache_dir = Path(cache_dir or settings.hub_cache_dir).expanduser()
    entries = _as_registry(registry)
    if repo is not None or (name not in entries and _REPO_ID.match(name)):
        folder = download_repo_model(
            repo or name,
            settings=settings,
            revision=revision,
            cache_dir=cache_dir,
            local_dir=local_dir,
            offline=offline,
            force=force,
            progress=progress,
        )
        if repo is not None and name != repo:
            _save_alias(settings, name, folder)
        return folder
    entry = entries.get(name)
    if entry is None:
        raise ModelNotFoundError(
            f"unknown model {name!r}; known: {', '.join(sorted(entries))} (or use --repo OWNER/NAME)"
        )
    if entry.packaged:
        folder = _packaged_dir(name)
        if folder is None:
            raise ModelNotFoundError(f"the {name!r} model is not included in this installation")
        return folder
    if not entry.published:
        raise ModelNotFoundError(_unpublished_hint(name))
    rev = revision or entry.revision
    assert entry.repo_id is not None and rev is not None  # checked by load_registry
    pinned = rev == entry.revision
    if not pinned:
        import warnings

        from fewshotv2v.errors import FewShotV2VWarning

        warnings.warn(
            f"revision {rev} is not the pinned one: sha256 checks are skipped",
            FewShotV2VWarning,
            stacklevel=2,
        )
    folder: Path | None = None
    for file in entry.files:
        path = _fetch(
            entry.repo_id,
            file.filename,
            rev,
            settings=settings,
            cache_dir=cache_dir,
            local_dir=local_dir,
            offline=offline,
            force=force,
            progress=progress,
        )
        if pinned and file.sha256:
            verify_file(settings, path, file.sha256, force=force, announce=progress)
        folder = path.parent
    assert folder is not None
    return folder


def _unpublished_hint(name: str) -> str:
    return (
        f"no weights are published for {name!r} yet: train one with `fsv2v train` or download a "
        f"community model with `fsv2v download {name} --repo OWNER/NAME`"
    )


def download_repo_model(
    repo_id: str,
    *,
    settings=None,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_dir: str | Path | None = None,
    offline: bool = False,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Download a fewshotv2v model folder (config.json, model.safetensors, discriminator.safetensors if
    present) from any repo, all files from the same commit, and check it is one."""
    from huggingface_hub import errors as hf

    settings = _settings(settings)
    cache_dir = Path(cache_dir or settings.hub_cache_dir).expanduser()
    if not _REPO_ID.match(repo_id):
        raise ConfigError(f"invalid repository id {repo_id!r} (expected OWNER/NAME)")
    rev = revision or "main"
    kwargs = dict(
        settings=settings,
        cache_dir=cache_dir,
        local_dir=local_dir,
        offline=offline,
        force=force,
        progress=progress,
    )
    not_model = f"{repo_id} is not a fewshotv2v model"
    try:
        config_path = _fetch(repo_id, "config.json", rev, **kwargs)
    except NotFoundOnHubError as exc:
        if isinstance(exc.__cause__, hf.EntryNotFoundError):
            raise CheckpointError(f"{not_model}: it has no config.json") from exc
        raise
    if local_dir is None and not _COMMIT.match(rev):
        rev = config_path.parent.name  # snapshots/<commit>/: pin the other files to the same commit
    validate_model_config(config_path, source=repo_id)
    files = [config_path]
    for filename in MODEL_FILES[1:] + OPTIONAL_MODEL_FILES:
        try:
            files.append(_fetch(repo_id, filename, rev, **kwargs))
        except (NotFoundOnHubError, OfflineError) as exc:
            if filename in OPTIONAL_MODEL_FILES and isinstance(exc.__cause__, hf.EntryNotFoundError):
                continue  # absent from the repo (or, offline, never downloaded): it is optional
            if isinstance(exc, NotFoundOnHubError) and isinstance(exc.__cause__, hf.EntryNotFoundError):
                raise CheckpointError(f"{not_model}: it has no {filename}") from exc
            raise
    validate_safetensors(files[1], source=repo_id)
    return config_path.parent


def validate_model_config(path: Path, *, source: str) -> dict[str, Any]:
    """`config.json` must parse as a `ModelConfig`; otherwise `CheckpointError` "not a fewshotv2v model"."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{source} is not a fewshotv2v model: config.json is not valid JSON") from exc
    if not isinstance(data, dict) or not ({"format", "mode"} & data.keys()):
        raise CheckpointError(f"{source} is not a fewshotv2v model: config.json has no 'format' or 'mode'")
    try:
        from fewshotv2v.config import ModelConfig
    except ImportError:  # pragma: no cover - the config module ships with the package
        ModelConfig = None  # noqa: N806
    if ModelConfig is not None:
        try:
            ModelConfig.from_dict(data)
        except (ConfigError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{source} is not a fewshotv2v model: {exc}") from exc
    return data


def validate_safetensors(path: Path, *, source: str) -> None:
    """Read the safetensors header (8-byte length + JSON) without loading the tensors."""
    try:
        with open(path, "rb") as fh:
            length = int.from_bytes(fh.read(8), "little")
            if not 2 <= length <= 100_000_000:
                raise ValueError("bad header length")
            json.loads(fh.read(length))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{source}: {Path(path).name} is not a safetensors file") from exc


# ---------------------------------------------------------------------------------------------- aliases
def _aliases_file(settings) -> Path:
    return Path(settings.cache_dir).expanduser() / "aliases.json"


def _load_aliases(settings) -> dict[str, str]:
    try:
        return json.loads(_aliases_file(settings).read_text())
    except (OSError, ValueError):
        return {}


def _save_alias(settings, name: str, folder: Path) -> None:
    """Remember `fsv2v download NAME --repo OWNER/NAME` so that `--model NAME` finds the folder later."""
    aliases = _load_aliases(settings)
    aliases[name] = str(folder)
    path = _aliases_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(aliases, indent=2))
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------- lookup
def resolve_model(name_or_dir: str | Path, settings=None, *, registry=None) -> Path:
    """A local model folder for `name_or_dir`, never using the network: an existing folder; a model packaged
    in `fewshotv2v/assets/`; a name downloaded with `--repo`; a registry name or `OWNER/NAME` repo already
    in the download cache. Otherwise `ModelNotFoundError` saying how to get it."""
    settings = _settings(settings)
    name = str(name_or_dir)
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if (packaged := _packaged_dir(name)) is not None:
        return packaged
    alias = _load_aliases(settings).get(name)
    if alias and Path(alias).is_dir():
        return Path(alias)
    entries = _as_registry(registry)
    entry = entries.get(name)
    if entry is not None:
        if entry.packaged:
            raise ModelNotFoundError(f"the {name!r} model is not included in this installation")
        if not entry.published:
            raise ModelNotFoundError(_unpublished_hint(name))
        try:
            return download(name, settings=settings, offline=True, progress=False, registry=entries)
        except OfflineError as exc:
            raise ModelNotFoundError(
                f"model {name!r} is not downloaded: run `fsv2v download {name}`"
            ) from exc
    if _REPO_ID.match(name) and not path.exists():
        try:
            return download_repo_model(name, settings=settings, offline=True, progress=False)
        except OfflineError as exc:
            raise ModelNotFoundError(
                f"model {name!r} is not downloaded: run `fsv2v download {name.split('/')[-1]} --repo {name}`"
            ) from exc
    raise ModelNotFoundError(
        f"model {name!r} not found: not a folder, nor one of {', '.join(sorted(entries))} "
        f"(get one with `fsv2v download NAME`)"
    )


@dataclass(frozen=True)
class ModelStatus:
    """One row of `fsv2v models`."""

    name: str
    kind: str
    source: str  # repo@commit, "package" or "not published"
    license: str | None
    size: int | None
    local_path: str | None
    description: str


def list_models(settings=None, *, registry=None) -> list[ModelStatus]:
    """Known models and where (if anywhere) they are on disk; looks only at the cache, no network."""
    from huggingface_hub import try_to_load_from_cache

    settings = _settings(settings)
    rows = []
    for entry in _as_registry(registry).values():
        local: str | None = None
        source = "package" if entry.packaged else "not published"
        if entry.packaged:
            local = str(_packaged_dir(entry.name)) if _packaged_dir(entry.name) else None
        elif entry.published:
            source = f"{entry.repo_id}@{(entry.revision or '')[:7]}"
            found = [
                try_to_load_from_cache(
                    entry.repo_id, f.filename, cache_dir=str(settings.hub_cache_dir), revision=entry.revision
                )
                for f in entry.files
            ]
            if found and all(isinstance(p, str) for p in found):
                local = str(Path(found[0]).parent)  # type: ignore[arg-type]
        rows.append(
            ModelStatus(entry.name, entry.kind, source, entry.license, entry.size, local, entry.description)
        )
    for name, folder in _load_aliases(settings).items():
        local = folder if Path(folder).is_dir() else None
        rows.append(ModelStatus(name, "model", "--repo download", None, _folder_size(local), local, ""))
    return rows


def _folder_size(folder: str | None) -> int | None:
    if folder is None:
        return None
    return sum(p.stat().st_size for p in Path(folder).iterdir() if p.is_file())


__all__ = [
    "RegistryEntry",
    "RegistryFile",
    "load_registry",
    "download",
    "download_repo_model",
    "resolve_model",
    "list_models",
    "verify_file",
    "hub_token",
]
