"""Hugging Face Hub access that fails fast: offline mode, or a Hub that does not answer.

Without network the Hub libraries retry for ~25 s before giving up; :func:`hub_access` probes the
Hub's host once per process (a TCP connection, 3 s at most) and, when it does not answer, runs the
call in offline mode, so files in the local Hugging Face cache still load and anything else fails
at once with the caller's local-folder advice (:func:`hub_failure` drops the libraries' own advice).
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlparse

_TRUE = ("1", "ON", "YES", "TRUE")
PROBE_SECONDS = 3.0
PROBE_TTL_SECONDS = 300.0  # a probe's answer is trusted this long (a notebook outlives a network glitch)
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
_probed: dict[str, tuple[float, bool]] = {}
# the libraries' advice to turn offline mode off: wrong when the harness turned it on because the Hub
# does not answer, and beside the point for a harness user, whose remedy is a local folder
_OFFLINE_ADVICE = re.compile(r"[^.]*HF_HUB_OFFLINE[^.]*\.?")


def hub_offline() -> bool:
    """True when HF offline mode is on (env read now, or huggingface_hub's value at import)."""
    import huggingface_hub.constants as hc

    flags = (os.environ.get(v, "").upper() for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    return any(f in _TRUE for f in flags) or bool(hc.HF_HUB_OFFLINE)


def hub_reachable() -> bool:
    """Whether the Hub endpoint (``HF_ENDPOINT``, default huggingface.co) accepts a TCP connection;
    assumed when a proxy is configured (the libraries go through it, a direct probe would not)."""
    if any(os.environ.get(var) for var in _PROXY_VARS):
        return True
    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    when, answer = _probed.get(endpoint, (-PROBE_TTL_SECONDS, False))
    if time.monotonic() - when < PROBE_TTL_SECONDS:
        return answer
    url = urlparse(endpoint)
    try:
        with socket.create_connection(
            (url.hostname or "", url.port or (443 if url.scheme == "https" else 80)), timeout=PROBE_SECONDS
        ):
            answer = True
    except OSError:
        answer = False
    _probed[endpoint] = (time.monotonic(), answer)
    return answer


def hub_state() -> str:
    """A short note for error messages: "" when the Hub is usable, else why it is not."""
    if hub_offline():
        return " (offline mode is on)"
    return "" if hub_reachable() else " (the Hub is unreachable from this machine)"


def hub_failure(err: BaseException) -> str:
    """``Type: message`` of a Hub library error on one line, without the library's advice to set
    ``HF_HUB_OFFLINE``; the caller says what to do in the harness instead."""
    text = _OFFLINE_ADVICE.sub("", " ".join(str(err).split())).strip().rstrip(".")
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


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
