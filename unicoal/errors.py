"""User-facing errors: one line naming the file, the problem and the fix."""
from __future__ import annotations

from os import PathLike

__all__ = ["InputError"]


class InputError(ValueError):
    """Bad user input. ``str(err)`` is the one line the CLI prints.

    Example:
        >>> raise InputError("t1.nii.gz", "contains NaN values", "fix or mask the volume")
        InputError: t1.nii.gz: contains NaN values (fix: fix or mask the volume)
    """

    def __init__(self, path: str | PathLike | None, problem: str, fix: str | None = None):
        self.path = None if path is None else str(path)
        self.problem = problem
        self.fix = fix
        where = f"{self.path}: " if self.path else ""
        hint = f" (fix: {fix})" if fix else ""
        super().__init__(f"{where}{problem}{hint}")
