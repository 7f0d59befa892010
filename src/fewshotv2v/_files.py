"""File-mode helper for outputs written through temporary files (`tempfile.mkstemp` makes 0600 files,
`mkdtemp` 0700 folders, safetensors writes 0600): once renamed into place they should have the mode any
new file or folder gets, 0666 / 0777 minus the process umask."""

from __future__ import annotations

import os
from pathlib import Path


def give_default_mode(path: str | Path, *, folder: bool = False) -> None:
    """chmod `path` to (0777 if `folder` else 0666) minus the umask (read by setting it and putting it
    back)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if folder else 0o666) & ~umask)
