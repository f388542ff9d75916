"""What every command shares: the help layout (defaults shown, examples kept as written), the
one ``--output`` option, the checks of what a command writes to and reads (before any work), and
the terminal set-up (the harness's messages on stdout, ``--quiet``)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import InputError

if TYPE_CHECKING:
    from harness.results import Result, Results


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Epilogs kept as written (the examples); every option's default appended to its help unless
    the help already states it (or there is none to state: no value, a flag off)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or default is None
            or default is False
            or default is argparse.SUPPRESS
            or default == []
            or not action.option_strings
            or isinstance(action, argparse._HelpAction | argparse._VersionAction)
        ):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, list) else str(default)
        return f"{text} (default: {shown})"


def command(
    sub: argparse._SubParsersAction, name: str, help: str, examples: list[str], description: str = ""
) -> argparse.ArgumentParser:
    """A (sub)command whose ``--help`` ends with its examples (each a command line, # comment)."""
    lines = "\n".join(f"  {line}" for line in examples)
    return sub.add_parser(
        name,
        help=help,
        description=wrap(description or help[0].upper() + help[1:] + "."),
        epilog=f"examples:\n{lines}",
        formatter_class=HelpFormatter,
    )


def wrap(text: str) -> str:
    """A description filled to the terminal's usual width (the formatter keeps text as written)."""
    return textwrap.fill(text, width=88)


def output_option(p: argparse.ArgumentParser, default: Path | None, help: str, dest: str = "output") -> None:
    """``--output`` (the one spelling of an output folder or file; ``--out`` still accepted), kept as
    typed (a trailing slash says "a folder"): the command turns it into a path with
    :func:`writable_folder` or :func:`writable_file` before any work."""
    p.add_argument("--output", dest=dest, metavar="OUTPUT", default=default, help=help)
    p.add_argument("--out", dest=dest, default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def is_stdout(path: str | Path | None) -> bool:
    """``-``: standard output, not a file."""
    return str(path) == "-"


def writable_folder(path: str | Path, flag: str) -> Path:
    """``flag``'s folder to write into, checked before any work: an InputError naming ``flag`` when
    it, or a folder above it, is a file, or when its nearest existing folder cannot be written.
    Missing folders are left for the writer to create."""
    path = Path(path)
    for folder in (path, *path.parents):
        if not folder.exists():
            continue
        if not folder.is_dir():
            where = "" if folder == path else f" (on the way to {path})"
            raise InputError(f"{folder} is a file, not a folder{where}: name a folder", field=flag)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise InputError(f"cannot write in {folder} (permission denied)", field=flag)
        break
    return path


def writable_file(path: str | Path, flag: str, default_name: str | None = None) -> Path:
    """``flag``'s file to write, checked before any work (its folder as :func:`writable_folder`).
    With ``default_name``, a trailing slash or an existing folder means a folder, the file being
    ``default_name`` in it; without, either is an InputError naming ``flag``."""
    text = str(path)
    folder_meant = text.endswith(("/", os.sep)) or Path(text).is_dir()
    if folder_meant and default_name is None:
        raise InputError(f"{text} is a folder: name the file to write", field=flag)
    file = Path(text) / default_name if folder_meant and default_name else Path(text)
    if file.is_dir():
        raise InputError(f"{file} is a folder: name the file to write", field=flag)
    writable_folder(file.parent, flag)
    return file


def load_nonempty(paths: Sequence[Path]) -> Results:
    """The results files under ``paths`` (:func:`harness.results.load_results`); an InputError
    naming ``paths`` when there are none: nothing to report, nothing written."""
    from harness.results import load_results

    results = load_results(list(paths))
    if not results:
        raise InputError("no results files there: nothing to report", field=" ".join(map(str, paths)))
    return results


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is when a message comes (it may be replaced, e.g. in tests)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


def _log_to_terminal(*, quiet: bool) -> None:
    """The harness's own messages (a reused results file, a skipped file, ...) on stdout, warnings
    only when ``quiet``, which also silences the libraries' progress bars (transformers, datasets,
    the Hub)."""
    logger = logging.getLogger("harness")
    if not any(isinstance(h, _StdoutHandler) for h in logger.handlers):
        handler = _StdoutHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    if quiet:
        os.environ["TQDM_DISABLE"] = "1"  # every tqdm bar, ours and the libraries' (also in Ray workers)
        import datasets
        import huggingface_hub.utils
        import transformers

        transformers.utils.logging.disable_progress_bar()
        datasets.disable_progress_bars()
        huggingface_hub.utils.disable_progress_bars()


@contextlib.contextmanager
def terminal(*, quiet: bool) -> Iterator[None]:
    """One command's terminal: messages on stdout (:func:`_log_to_terminal`); ``--quiet`` is that
    command's only, so a caller in the same process (a notebook, a test) keeps its bars after it."""
    bars = os.environ.get("TQDM_DISABLE")
    _log_to_terminal(quiet=quiet)
    try:
        yield
    finally:
        if bars is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = bars


def metric_text(result: Result) -> str:
    """``nDCG@10 (trec_eval)``: a task's main metric as the README spells it, with its convention."""
    from harness.metrics import metric_label

    convention = {"card": "card", "trec": "trec_eval"}[result.task.convention]
    return f"{metric_label(result.task.main_metric)} ({convention})"
