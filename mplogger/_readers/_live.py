"""Live run cards in a notebook (user process: the Jupyter kernel).

A card displayed for a run that is being written is redrawn from the store while its rows or
its state change, about every :data:`mplogger._readers._live_render.INTERVAL` seconds, and one last time
when the run ends; after that it is static. The kernel does almost none of this work: a reader
process (:mod:`mplogger._readers._live_render`, started at the first live card) reads the store and
renders, and a thread of the kernel, blocked on that process's pipe, turns each card it sends
into an IPython display update. No server, no widget library: a display update is a message on
the kernel's own channel. When the run finishes in this kernel, its cards are drawn a last time
before ``finish()`` returns, and never again.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

__all__ = ["show", "finished", "live_cards"]

_logger = logging.getLogger("mplogger")
_lock = threading.Lock()  # guards _cards and _renderer
_cards: Dict[str, "_Card"] = {}
_renderer: Optional["_Renderer"] = None


class _Card:
    """One displayed card: which run it shows, as what; ``done`` once it is static."""

    __slots__ = ("root", "run_id", "kind", "display_id", "done", "updates", "lock")

    def __init__(self, root: str, run_id: str, kind: str, display_id: str) -> None:
        self.root, self.run_id, self.kind, self.display_id = root, run_id, kind, display_id
        self.done = False
        self.updates = 0
        self.lock = threading.Lock()  # an update and the card's end never interleave


class _Renderer:
    """The reader process that renders cards, and the kernel thread that displays what it sends."""

    def __init__(self) -> None:
        package_parent = os.path.dirname(os.path.dirname(sys.modules["mplogger"].__file__))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH", "")) if p)
        self.process = subprocess.Popen([sys.executable, "-m", "mplogger._readers._live_render"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        env=env, close_fds=True, start_new_session=True)
        self.write_lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, name="mplogger-live-cards", daemon=True)
        self.thread.start()

    def send(self, message: Dict[str, Any]) -> bool:
        """Tell the renderer ``message``; False when it is gone."""
        line = (json.dumps(message) + "\n").encode()
        with self.write_lock:
            try:
                self.process.stdin.write(line)
                self.process.stdin.flush()
                return True
            except (OSError, ValueError):
                return False

    def _read(self) -> None:
        for line in self.process.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if not isinstance(message, dict):
                continue
            with _lock:
                card = _cards.get(message.get("id"))
            if card is None:
                continue
            if "error" in message:
                _logger.debug("mplogger: live card of run %s stopped: %s", card.run_id, message["error"])
                _forget(card)
                continue
            with card.lock:
                if card.done:
                    continue
                _update(card, message["html"], message["text"])
                if message.get("done"):
                    card.done = True
            if card.done:
                _forget(card)

    def alive(self) -> bool:
        return self.process.poll() is None and self.thread.is_alive()

    def stop(self) -> None:
        """End the process (its cards freeze as they are)."""
        try:
            self.process.kill()
        except OSError:
            pass


def _forget(card: _Card) -> None:
    with _lock:
        _cards.pop(card.display_id, None)


def _update(card: _Card, html: str, text: str) -> None:
    try:
        from IPython.display import update_display

        update_display({"text/html": html, "text/plain": text}, display_id=card.display_id, raw=True)
        card.updates += 1
    except Exception:
        _logger.debug("mplogger: could not update the card of run %s", card.run_id, exc_info=True)


def _in_kernel() -> bool:
    from mplogger._shared._processes import in_jupyter

    return in_jupyter()


def show(root: str, run_id: str, kind: str, html: str, text: str, live: Union[bool, Callable[[], bool]],
         mark: Tuple[Any, ...] = ()) -> None:
    """Display a run's card; in a Jupyter kernel, keep it up to date while ``live``.

    ``live`` may be a function, asked again under the lock :func:`finished` takes, so a run that
    finishes on another thread meanwhile never gets a live card. ``mark`` is what the card shows
    (rows, state): the first redraw comes once that changes.
    """
    from IPython.display import display

    bundle = {"text/html": html, "text/plain": text}
    if not ((live() if callable(live) else live) and _in_kernel()):  # a terminal IPython would print each update
        display(bundle, raw=True)
        return
    handle = display(bundle, raw=True, display_id=True)
    store = os.path.realpath(root)
    card = _Card(store, run_id, kind, handle.display_id)
    global _renderer
    with _lock:
        if callable(live) and not live():  # finished on another thread meanwhile: the card stays static
            return
        try:
            if _renderer is None or not _renderer.alive():
                if _renderer is not None:
                    _renderer.stop()
                _renderer = _Renderer()
        except OSError:
            _logger.debug("mplogger: cannot start the live card renderer", exc_info=True)
            return  # the card stays as displayed
        older = [c for c in _cards.values() if (c.root, c.run_id, c.kind) == (store, run_id, kind)]
        for previous in older:  # shown again (a cell run again): the newest card is the live one
            del _cards[previous.display_id]
        _cards[card.display_id] = card
        renderer = _renderer
    for previous in older:
        with previous.lock:
            previous.done = True
        renderer.send({"op": "forget", "id": previous.display_id})
    if not renderer.send({"op": "watch", "id": card.display_id, "root": store, "run_id": run_id, "kind": kind,
                          "mark": list(mark)}):
        _forget(card)


def live_cards() -> List[str]:
    """The display ids of the cards still kept up to date."""
    with _lock:
        return list(_cards)


def finished(root: str, run_id: str) -> None:
    """The run ended in this process: draw its cards a last time, here, and stop updating them."""
    store = os.path.realpath(root)
    with _lock:
        ending = [card for card in _cards.values() if card.root == store and card.run_id == run_id]
        for card in ending:
            del _cards[card.display_id]
        renderer = _renderer
    if not ending:
        return
    for card in ending:
        with card.lock:
            card.done = True
        if renderer is not None:
            renderer.send({"op": "forget", "id": card.display_id})
    from mplogger._readers._live_render import render

    for card in ending:
        try:
            html, text, _ = render(store, run_id, card.kind)
        except Exception:
            _logger.debug("mplogger: no last update for the card of run %s", run_id, exc_info=True)
            continue
        _update(card, html, text)
