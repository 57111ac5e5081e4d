"""What every minivae program shares, the commands of ``python -m minivae`` and the demos:
parsers whose errors are one line and whose ``--help`` shows the defaults, the data options,
and the way a program ends.  Whatever goes wrong, it ends with one line on stderr,
``error: ...``, that names the flag or the file at fault, and no traceback.  Exit codes:

* 0: done;
* 1: the run failed although its input was valid: training diverged, another run holds the
  output folder, the disk failed;
* 2: the command or its input is wrong: an unknown flag or a bad value (argparse's own
  errors too, printed as one line rather than a usage block; ``--help`` shows the usage), a
  missing, damaged or foreign file, a folder that cannot be written to, sizes that cannot fit
  in memory;
* 130: interrupted (Ctrl-C); a training run continues from its last epoch with ``--resume``;
* 141: stdout was closed early (``python -m minivae evaluate ... | head -1``): the rest of the
  output is dropped silently, and the code is the shell's for a process ended by SIGPIPE, as
  for any Unix tool in that pipe.
"""
from __future__ import annotations

import _thread
import argparse
import contextlib
import errno
import os
import re
import sys
import threading

USAGE_ERROR, RUN_FAILED, INTERRUPTED, OUTPUT_CLOSED = 2, 1, 130, 141


class OneLineParser(argparse.ArgumentParser):
    """argparse, with a usage error printed as one ``error:`` line like every other error
    (argparse would print the usage block first), and every option's default in ``--help``.
    The subcommands' parsers and the demos' are of this class too."""

    def error(self, message: str):
        self.exit(USAGE_ERROR, f"error: {message} (see {self.prog} --help)\n")

    def add_argument(self, *args, **kwargs):
        """argparse's, with " (default: X)" added to the help of an option whose default is
        a value.  None (not given: the help says what happens then) and False (an off
        switch) are not shown; argparse's own defaults formatter shows them, and shows no
        default for an option without a help text."""
        action = super().add_argument(*args, **kwargs)
        help_text = action.help or ""
        if (action.option_strings and action.default is not None
                and action.default is not False and action.default != argparse.SUPPRESS
                and help_text != argparse.SUPPRESS and "%(default)" not in help_text):
            action.help = f"{help_text} (default: %(default)s)".lstrip()
        return action


def demo_parser(description: str) -> argparse.ArgumentParser:
    """The parser of a demo: one-line errors and defaults in --help, like the commands'."""
    return OneLineParser(description=description)


def add_quiet_argument(parser: argparse.ArgumentParser) -> None:
    """``--quiet``: the same switch in every demo and command for a run without progress bars."""
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


DATASET_HELP = ("mnist-5k: 4,500 + 500 real MNIST digits that ship with minivae[demo], no "
                "download; mnist: the full 60,000 + 10,000, downloaded once (see --data-root)")
DATA_ROOT_HELP = ("folder holding the dataset's four IDX .gz files, directly or in "
                  "FOLDER/<dataset>/ (default: $MINIVAE_DATA, else ~/.cache/minivae/<dataset>, "
                  "where a missing dataset is downloaded)")


def add_data_arguments(parser: argparse.ArgumentParser,
                       datasets: tuple[str, ...] = ("mnist-5k", "mnist")) -> None:
    """``--dataset`` (default: the embedded mnist-5k, so a demo runs offline) and
    ``--data-root``, found as ``python -m minivae train`` finds them."""
    parser.add_argument("--dataset", default="mnist-5k", choices=datasets, help=DATASET_HELP)
    parser.add_argument("--data-root", help=DATA_ROOT_HELP)


def in_flag_terms(message: str, flags: dict) -> str:
    """``message`` with the field it starts with ("seed must be ...", "every hidden width
    ...") called by its flag ("--seed must be ...", "every --hidden width ...")."""
    subject = re.match(r"(every )?([a-z_]+) ", message)
    if subject is None or subject[2] not in flags:
        return message
    return message[:subject.start(2)] + flags[subject[2]] + message[subject.end(2):]


# Input the user can correct (exit 2), and failures of a valid run (exit 1; a folder held by
# another run, FolderInUseError, too).  The project's CheckpointError and DatasetError are
# ValueErrors, DatasetNotFoundError a FileNotFoundError; a MemoryError means sizes too large
# for this machine (check_memory names the flag).
INPUT_ERRORS = (ValueError, TypeError, MemoryError, FileNotFoundError, FileExistsError,
                IsADirectoryError, NotADirectoryError, PermissionError)
# a file name the file system cannot take, a read-only file system: the user's choice too
INPUT_ERRNOS = (errno.ENAMETOOLONG, errno.ELOOP, errno.EROFS)
RUN_ERRORS = (FloatingPointError, OSError)  # diverged training, a failing disk


def run_reporting_errors(function, *args, flags: dict | None = None,
                         interrupted: str = "interrupted") -> int:
    """Call ``function(*args)`` and return the exit code of the module docstring: 0 when it
    returns, else the code of what it raised, reported as one ``error: ...`` line on stderr
    with no traceback (``interrupted`` is the line for Ctrl-C).  ``flags`` maps the fields an
    error message may start with to their flags (``in_flag_terms``).  The commands of
    ``python -m minivae`` run through it, and so does every demo's main::

        sys.exit(run_reporting_errors(lambda: main(parse_args())))
    """
    from minivae.io.lock import FolderInUseError

    try:
        with interrupts_delivered():
            function(*args)
            sys.stdout.flush()  # a closed pipe shows up here, not while the interpreter exits
        return 0
    except BrokenPipeError:
        silence_stdout()
        return OUTPUT_CLOSED
    except KeyboardInterrupt:
        return report(interrupted, INTERRUPTED)
    except INPUT_ERRORS as error:
        return report(in_flag_terms(describe(error), flags or {}), USAGE_ERROR)
    except (*RUN_ERRORS, FolderInUseError) as error:
        code = USAGE_ERROR if getattr(error, "errno", None) in INPUT_ERRNOS else RUN_FAILED
        return report(describe(error), code)


@contextlib.contextmanager
def interrupts_delivered():
    """Make every Ctrl-C reach the program.  Python raises KeyboardInterrupt wherever the main
    thread is when the signal lands; inside a finalizer (the ``__del__`` of an object being
    freed, such as a progress bar at the end of an epoch) it is printed as "Exception ignored"
    and lost, and a long run goes on.  Here such a lost interrupt is raised again in the code
    that runs next, with nothing printed.

    Verified by:
    tests/test_cli_contract.py::test_an_interrupt_in_a_finalizer_still_stops_the_program
    """
    before = sys.unraisablehook

    def hook(unraisable):
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            # from another thread, a moment later: raised now, it would land in this hook,
            # still inside the finalizer, and be lost again (if it lands in the next
            # finalizer, this hook runs again)
            again = threading.Timer(0.01, _thread.interrupt_main)
            again.daemon = True
            again.start()
        else:
            before(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = before


def describe(error: BaseException) -> str:
    """The error's message on one line (its type's name if it has none); an OSError's as
    "what: file", without the errno."""
    if isinstance(error, OSError) and error.strerror and error.filename is not None:
        text = f"{error.strerror}: {error.filename}"
    else:
        text = str(error)
    return " ".join(text.split()) or type(error).__name__


def report(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def silence_stdout() -> None:
    """Point stdout at the null device: whatever is still buffered for the reader that has
    gone would fail again when the interpreter flushes it on exit."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError, AttributeError):  # stdout is not a file (e.g. captured)
        pass
