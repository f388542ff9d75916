"""Hugging Face Hub access that fails fast: offline mode, or a Hub that does not answer.

Without network the Hub libraries retry for ~25 s before giving up; :func:`hub_access` probes the
Hub's host once per process (a TCP connection, 3 s at most) and, when it does not answer, runs the
call in offline mode, so files in the local Hugging Face cache still load and anything else fails
at once with the caller's local-folder advice.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
from collections.abc import Iterator
from urllib.parse import urlparse

_TRUE = ("1", "ON", "YES", "TRUE")
PROBE_SECONDS = 3.0


def hub_offline() -> bool:
    """True when HF offline mode is on (env read now, or huggingface_hub's value at import)."""
    import huggingface_hub.constants as hc

    flags = (os.environ.get(v, "").upper() for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    return any(f in _TRUE for f in flags) or bool(hc.HF_HUB_OFFLINE)


@functools.cache
def hub_reachable() -> bool:
    """Whether the Hub endpoint (``HF_ENDPOINT``, default huggingface.co) accepts a TCP connection."""
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=PROBE_SECONDS):
            return True
    except OSError:
        return False


def hub_state() -> str:
    """A short note for error messages: "" when the Hub is usable, else why it is not."""
    if hub_offline():
        return " (offline mode is on)"
    return "" if hub_reachable() else " (the Hub is unreachable from this machine)"


@contextlib.contextmanager
def hub_access() -> Iterator[None]:
    """Run Hub calls as they are when the Hub is usable; in offline mode when it does not answer."""
    if hub_offline() or hub_reachable():
        yield
        return
    import datasets.config
    import huggingface_hub.constants as hc

    saved = hc.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE
    hc.HF_HUB_OFFLINE = datasets.config.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hc.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE = saved
