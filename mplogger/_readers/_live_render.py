"""The renderer of live notebook cards (a reader process, started by :mod:`mplogger._readers._live`).

It reads JSON lines on stdin (``watch`` a card of a run, ``forget`` it) and, every
:data:`INTERVAL` seconds, looks at each watched run in its store: when its rows or state
changed since the card was drawn, it renders the card again and writes it on stdout as one
JSON line (``id``, ``html``, ``text``, and ``done`` once the run has ended). It exits when its
stdin closes or its parent (the kernel) is gone, so it never outlives the kernel. It runs in a
session of its own and ignores SIGINT, so interrupting a cell never stops it.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time
from typing import Any, Dict, Optional, Tuple

__all__ = ["INTERVAL", "render", "main"]

INTERVAL = 1.0  # seconds between two looks at the store


def render(root: str, run_id: str, kind: str, api: Optional[Any] = None) -> Tuple[str, str, Tuple[Any, ...]]:
    """The card of ``run_id`` as the store has it now: (html, text, (rows, state))."""
    from mplogger._readers._api import Api
    from mplogger._readers._display import run_html, run_text

    own = api is None
    api = Api(root) if own else api
    try:
        stored = api.run(run_id)
        view = stored._view(charts=True)
        view["kind"] = kind
        return run_html(view), run_text(view), (stored.rows, stored.state)
    finally:
        if own:
            api.close()


def _look(card: Dict[str, Any], apis: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The card's new message when its run changed, else None."""
    from mplogger._readers._api import Api

    root = card["root"]
    if root not in apis:
        apis[root] = Api(root)
    stored = apis[root].run(card["run_id"])
    if (stored.rows, stored.state) == card["mark"]:
        return None
    html, text, mark = render(root, card["run_id"], card["kind"], apis[root])
    card["mark"] = mark
    return {"id": card["id"], "html": html, "text": text, "done": mark[1] != "running"}


def _lines(fd: int, pending: bytearray) -> Optional[list]:
    """The whole lines that one read of ``fd`` completes (None at end of file); the rest stays pending."""
    chunk = os.read(fd, 1 << 16)
    if not chunk:
        return None
    pending.extend(chunk)
    *lines, rest = pending.split(b"\n")
    pending[:] = rest
    return lines


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the kernel's interrupt reaches its whole process group
    parent = os.getppid()
    stdin, stdout = sys.stdin.fileno(), sys.stdout.buffer
    pending = bytearray()
    cards: Dict[str, Dict[str, Any]] = {}
    apis: Dict[str, Any] = {}
    due = time.monotonic() + INTERVAL
    while True:
        ready, _, _ = select.select([stdin], [], [], max(0.0, due - time.monotonic()))
        if ready:
            lines = _lines(stdin, pending)
            if lines is None:
                return
            for line in lines:
                message = json.loads(line)
                if message.get("op") == "watch":
                    cards[message["id"]] = {**message, "mark": tuple(message.get("mark") or ())}
                else:
                    cards.pop(message.get("id"), None)
            continue
        if os.getppid() != parent:
            return
        for card_id, card in list(cards.items()):
            try:
                reply = _look(card, apis)
            except Exception as exc:
                reply = {"id": card_id, "error": f"{type(exc).__name__}: {exc}"}
            if reply is not None:
                stdout.write((json.dumps(reply) + "\n").encode())
                stdout.flush()
                if reply.get("done") or "error" in reply:
                    cards.pop(card_id, None)
        due = time.monotonic() + INTERVAL


if __name__ == "__main__":
    try:
        main()
    except (BrokenPipeError, KeyboardInterrupt):
        pass
