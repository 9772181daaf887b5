"""Progress display: a tqdm bar on a terminal, plain log lines everywhere else.

A carriage-return progress bar is made for a terminal; in a SLURM ``.command.log``, a container
log or a pipe every redraw stays in the file (a 150-step training wrote hundreds of them).
:func:`progress` takes tqdm's arguments and returns a tqdm bar when the stream is a TTY, and
otherwise a :class:`PlainProgress` that writes one ordinary line (``\\n``-terminated, no ``\\r``)
every ``UNICOAL_PROGRESS_PERCENT`` percent of the total (default 10) or every
``UNICOAL_PROGRESS_SECONDS`` seconds (default 30), whichever comes first, plus a last line on
``close``::

    train: 30/150 step (20%), 12.4 s, 2.42 step/s, loss=0.31

``UNICOAL_PROGRESS=bar|lines|off`` overrides the choice (``off``: nothing at all).

Example:
    >>> from unicoal.progress import progress
    >>> for item in progress(items, desc="export", unit="case"):
    ...     work(item)
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any, Iterable, Iterator

__all__ = ["progress", "PlainProgress", "use_bar"]


def use_bar(stream=None) -> bool | None:
    """``True``: draw a bar; ``False``: plain lines; ``None``: show nothing (``UNICOAL_PROGRESS=off``)."""
    mode = os.environ.get("UNICOAL_PROGRESS", "").strip().lower()
    if mode == "off":
        return None
    if mode in ("bar", "lines"):
        return mode == "bar"
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or odd stream
        return False


def _env_float(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        return default
    return value if value > 0 else default


class PlainProgress:
    """The subset of tqdm's interface the project uses, writing periodic plain lines.

    Iterate over it, or call :meth:`update`; :meth:`set_postfix` adds ``key=value`` to the next
    line; :meth:`close` (also on leaving a ``with`` block or the end of iteration) writes the
    final line once.
    """

    def __init__(self, iterable: Iterable | None = None, *, total: int | None = None, desc: str | None = None,
                 unit: str = "it", initial: int = 0, file=None, disable: bool | None = False, **_ignored: Any):
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except TypeError:
                total = None
        self.iterable = iterable
        self.total = total
        self.desc = desc or ""
        self.unit = unit
        self.n = int(initial)
        self.file = sys.stderr if file is None else file
        self.disable = bool(disable)
        self.postfix = ""
        self._start_n = self.n
        self._t0 = time.monotonic()
        self._last_time = self._t0
        self._last_n = self.n
        self._step = max(1, int(round((total or 0) * _env_float("UNICOAL_PROGRESS_PERCENT", 10.0) / 100.0))) if total else None
        self._seconds = _env_float("UNICOAL_PROGRESS_SECONDS", 30.0)
        self._closed = False

    def __iter__(self) -> Iterator:
        try:
            for item in self.iterable or ():
                yield item
                self.update(1)
        finally:
            self.close()

    def __len__(self) -> int:
        return self.total or 0

    def __enter__(self) -> "PlainProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def set_postfix(self, ordered_dict=None, refresh: bool = True, **kwargs) -> None:
        items = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = str(s)

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def refresh(self) -> None:
        pass

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        due_count = self._step is not None and self.n // self._step > self._last_n // self._step
        if due_count or now - self._last_time >= self._seconds:
            self._write(now)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.n != self._last_n or self.n == self._start_n:
            self._write(time.monotonic())

    def _write(self, now: float) -> None:
        self._last_time, self._last_n = now, self.n
        if self.disable:
            return
        elapsed = now - self._t0
        count = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        pct = f" ({100.0 * self.n / self.total:.0f}%)" if self.total else ""
        rate = f", {(self.n - self._start_n) / elapsed:.3g} {self.unit}/s" if elapsed > 0 and self.n > self._start_n else ""
        post = f", {self.postfix}" if self.postfix else ""
        prefix = f"{self.desc}: " if self.desc else ""
        try:
            print(f"{prefix}{count} {self.unit}{pct}, {elapsed:.1f} s{rate}{post}", file=self.file, flush=True)
        except (OSError, ValueError):  # a closed log must not stop the work
            pass


def progress(iterable: Iterable | None = None, **kwargs: Any):
    """A progress display with tqdm's signature: a bar on a TTY, :class:`PlainProgress` otherwise.

    ``disable=True`` shows nothing; tqdm's ``disable=None`` (hide off a TTY) becomes plain lines
    off a TTY, so batch logs still show how far a step got.
    """
    mode = use_bar(kwargs.get("file"))
    if kwargs.get("disable") is True or mode is None:
        kwargs["disable"] = True
        return PlainProgress(iterable, **kwargs)
    if mode:
        from tqdm import tqdm

        kwargs["disable"] = False
        return tqdm(iterable, **kwargs)
    kwargs["disable"] = False
    return PlainProgress(iterable, **kwargs)
