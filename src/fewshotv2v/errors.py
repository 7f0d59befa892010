"""Error hierarchy. Every error a user can cause is a `FewShotV2VError` with its own exit code;
the CLI prints `error: <message>` on one line and exits with `exit_code` (a traceback only with -v)."""

from __future__ import annotations


class FewShotV2VError(Exception):
    """Base class of all errors the library raises on purpose."""

    exit_code = 1


class ConfigError(FewShotV2VError):
    """An invalid model config, settings file or option combination."""

    exit_code = 2


class InputError(FewShotV2VError):
    """A user input (file, folder, image, video) is missing, unreadable or unsuitable."""

    exit_code = 3


class NoPersonError(InputError):
    """No person (or face) could be detected where one is required."""

    exit_code = 4


class OutputExistsError(FewShotV2VError):
    """An output already exists and overwriting was not asked for."""

    exit_code = 5


class CheckpointError(FewShotV2VError):
    """A model folder or checkpoint is missing, incomplete or does not match the config."""

    exit_code = 6


class ModelNotFoundError(FewShotV2VError):
    """A model name is neither a folder, a packaged model, nor in the download cache."""

    exit_code = 7


class DownloadError(FewShotV2VError):
    """A Hub download failed (network, offline, not found, gated)."""

    exit_code = 8


class OfflineError(DownloadError):
    """Offline mode (or no network) and the file is not in the cache."""

    exit_code = 9


class NotFoundOnHubError(DownloadError):
    """Repository, revision or file not found on the Hub."""

    exit_code = 10


class AuthError(DownloadError):
    """Gated or private repository: missing or insufficient token."""

    exit_code = 11


class ChecksumError(DownloadError):
    """A downloaded file does not match its pinned sha256 (the file is removed)."""

    exit_code = 12


class DiskFullError(FewShotV2VError):
    """No space left while writing."""

    exit_code = 13


class DependencyError(FewShotV2VError):
    """An optional dependency (extra) is not installed."""

    exit_code = 14


class TrainingError(FewShotV2VError):
    """Training cannot go on (e.g. too many non-finite losses)."""

    exit_code = 15


class DeviceError(FewShotV2VError):
    """The requested device or dtype is not available."""

    exit_code = 16


class FewShotV2VWarning(UserWarning):
    """Something the user should know about a result that still goes ahead (the CLI prints one line)."""


def require(module: str, extra: str):
    """Import an optional dependency or raise a `DependencyError` naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise DependencyError(
            f"{module} is not installed; install it with: pip install 'fewshotv2v[{extra}]'"
        ) from exc


def check_output_folder(path, what: str = "output") -> None:
    """Raise `InputError` unless the folder that will hold `path` exists: naming the ancestor that is a
    file (`a.txt/out.mp4`: "a.txt is not a folder") rather than saying the folder does not exist."""
    from pathlib import Path

    folder = Path(path).parent
    if folder.is_dir():
        return
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise InputError(f"{what} folder {folder} cannot be used: {existing} is not a folder")
    raise InputError(f"{what} folder {folder} does not exist")
