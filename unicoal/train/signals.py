"""Stop a training cleanly on SIGUSR2 or SIGTERM: finish the step, save, exit 128 + signum.

A SLURM job at its time limit gets a signal some minutes before it is killed (``--signal
B:USR2@300``), a pre-empted job or ``scancel`` gets SIGTERM. :func:`unicoal.train.loop.train`
installs :class:`StopOnSignal` around its step loop: the handler only records the signal; after
the current optimiser step the loop asks :meth:`StopOnSignal.requested`, saves
``checkpoints/last.pt`` and ``model.pt`` as the periodic save does, logs one line
(:meth:`StopOnSignal.stop`) and returns with ``summary["signal"]`` set; ``unicoal train`` then
exits with ``128 + signum``
(140 for SIGUSR2, 143 for SIGTERM), the code SLURM and Nextflow read as "killed by a time limit"
and retry. A rerun with ``--resume`` continues from exactly that step.

Under torchrun every rank asks at every step and the ranks agree through an all-reduce (MAX) of
the received signal number, so all ranks stop after the same step even when only one of them
(or only rank 0) got the signal; rank 0 saves. torchrun itself forwards SIGTERM (not SIGUSR2) to
its workers and kills them 30 s later: send SIGUSR2 to the worker processes (the job's process
group), or SIGTERM to torchrun when one step plus a save fits in 30 s.

Test hook: ``UNICOAL_TEST_SIGNAL_AFTER=N`` makes rank 0 send itself ``UNICOAL_TEST_SIGNAL``
(``USR2`` by default, or ``TERM``) once the run has reached global step ``N``, exactly as an
outside signal would arrive. It counts global steps, so a resumed run that starts at or past
``N`` is not signalled again (a retry through Nextflow then runs to the end).
"""
from __future__ import annotations

import os
import signal
import sys

__all__ = ["STOP_SIGNALS", "StopOnSignal", "restore_signal_handlers", "exit_code", "stop_message"]

#: the signals that end a training cleanly (saved checkpoint, exit 128 + signum)
STOP_SIGNALS = (signal.SIGUSR2, signal.SIGTERM)
_SAVED: dict[int, object] = {}  # signum -> handler before install (restored by restore_signal_handlers)


def exit_code(signum: int) -> int:
    """The shell's exit status of a process ended by ``signum``: 128 + signum."""
    return 128 + int(signum)


class StopOnSignal:
    """Record SIGUSR2 / SIGTERM and tell the step loop, agreed by all ranks, when to stop.

    Args:
        info: :class:`unicoal.train.distributed.DistInfo` of the run (all-reduce when enabled).
        device: the device of the all-reduce tensor (the training device: NCCL needs CUDA).
        environ: where the test hook ``UNICOAL_TEST_SIGNAL_AFTER`` / ``UNICOAL_TEST_SIGNAL`` is read.

    Handlers are installed by the constructor (main thread only) and put back by
    :func:`restore_signal_handlers`.
    """

    def __init__(self, info, device=None, environ=None):
        env = os.environ if environ is None else environ
        self.info = info
        self.device = device
        self.received = 0  # the first signal number this process got (0: none)
        self.signum = 0  # the signal number all ranks agreed to stop on (0: none)
        self.test_after = None
        self.test_signal = signal.SIGUSR2
        text = env.get("UNICOAL_TEST_SIGNAL_AFTER", "").strip()
        if text:
            try:
                self.test_after = int(text)
            except ValueError:
                raise ValueError(f"UNICOAL_TEST_SIGNAL_AFTER must be a step number, got {text!r}") from None
            name = env.get("UNICOAL_TEST_SIGNAL", "USR2").strip().upper().removeprefix("SIG")
            if name not in ("USR2", "TERM"):
                raise ValueError(f"UNICOAL_TEST_SIGNAL must be USR2 or TERM, got {name!r}")
            self.test_signal = getattr(signal, f"SIG{name}")
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                prev = signal.signal(sig, self._handle)
                _SAVED.setdefault(int(sig), prev)

    def _handle(self, signum, frame) -> None:
        if not self.received:
            self.received = int(signum)

    def requested(self, step: int) -> bool:
        """After optimiser step ``step``: should every rank stop now? (collective under torchrun)"""
        if self.test_after is not None and step == self.test_after and self.info.is_main:
            os.kill(os.getpid(), self.test_signal)  # a real signal through the installed handler ...
            self._handle(self.test_signal, None)  # ... which Python may run a few bytecodes later: count it now
        flag = self.received
        if self.info.enabled:
            import torch
            import torch.distributed as dist

            vec = torch.tensor([flag], dtype=torch.int64, device=self.device)
            dist.all_reduce(vec, op=dist.ReduceOp.MAX)
            flag = int(vec.item())
        self.signum = flag
        return flag != 0

    def stop(self, step: int, run_dir, save=None) -> None:
        """Every rank, after :meth:`requested` said so: ``save()`` (when given: the step was not
        just saved), rank 0 logs the one line, and a barrier keeps every rank alive until then
        (torchrun ends the other workers as soon as one exits)."""
        if save is not None:
            save()
        if self.info.is_main:
            print(stop_message(self.signum, step, run_dir), file=sys.stderr, flush=True)
        if self.info.enabled:
            import torch.distributed as dist

            dist.barrier()


def stop_message(signum: int, step: int, run_dir) -> str:
    """The one log line of a stop on ``signum`` after ``step``."""
    name = signal.Signals(signum).name
    return (f"unicoal train: {name} received: stopped after step {step}, saved {run_dir}/checkpoints/last.pt and "
            f"{run_dir}/model.pt; exit {exit_code(signum)} (rerun with --resume to continue from step {step})")


def restore_signal_handlers() -> None:
    """Put back the handlers that were in place before :class:`StopOnSignal` (idempotent)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    while _SAVED:
        sig, prev = _SAVED.popitem()
        try:
            signal.signal(sig, prev)
        except (TypeError, ValueError):  # pragma: no cover - a handler installed from C
            print(f"unicoal train: could not restore the handler of signal {sig}", file=sys.stderr)
