"""`quiet_transformers`: silence transformers' logging and progress bars for one block, then restore them.

The project's one copy: agents use it around loading and saving, commands (demos,
experiments) around a whole run. Whatever it changes (the transformers log
verbosity, its progress bars, Python's warning filters) is put back on exit,
even when the block raises, so a quiet load never mutes the rest of a process.
"""
from __future__ import annotations

import warnings as _warnings
from contextlib import ExitStack, contextmanager
from typing import Iterator


@contextmanager
def quiet_transformers(progress: bool = False, warnings: bool = True) -> Iterator[None]:
    """Within the block, transformers shows progress bars only if `progress` and logs
    warnings only if `warnings` (with `warnings=False` the Python warnings it raises are
    ignored too); every setting is restored after it. Checkpoints are saved every round
    and small models load in milliseconds: their bars are noise."""
    from transformers.utils import logging as hf_logging

    bars, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    with ExitStack() as stack:
        if not progress:
            hf_logging.disable_progress_bar()
        if not warnings:
            hf_logging.set_verbosity_error()
            # catch_warnings saves the filter list and puts it back on exit; entered only
            # when a filter is added, since the list is process-wide, not per thread
            stack.enter_context(_warnings.catch_warnings())
            _warnings.filterwarnings("ignore", module=r"transformers(\.|$)")
        try:
            yield
        finally:
            hf_logging.set_verbosity(verbosity)
            (hf_logging.enable_progress_bar if bars else hf_logging.disable_progress_bar)()
