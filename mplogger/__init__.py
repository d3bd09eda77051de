"""mplogger: a local-first experiment logger with the wandb API and no networking (user process).

``import mplogger as wandb`` works for ordinary training scripts: ``init``, ``log``, ``finish``,
``config`` and ``summary`` behave as wandb's do, and runs are stored in a local SQLite store that
``mplogger.Api`` reads back. This file only names the public API; the code is in the folders of
the process that runs it (see the README's "Development").
"""

from typing import TYPE_CHECKING

from mplogger._shared._exports import lazy_exports

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "Artifact",
    "Charts",
    "compare",
    "log_artifact",
    "log_model",
    "use_artifact",
    "use_model",
    "DisabledRun",
    "Histogram",
    "Image",
    "Table",
    "alert",
    "define_metric",
    "report",
    "save",
    "termerror",
    "termlog",
    "termwarn",
    "watch",
    "Api",
    "Config",
    "Error",
    "ManagerError",
    "Run",
    "RunError",
    "Settings",
    "StoredRun",
    "Summary",
    "UsageError",
    "config",
    "finish",
    "init",
    "log",
    "run",
    "setup",
    "summary",
    "teardown",
]

# Each public name and where it lives, imported on first use (``mplogger --help`` loads no run code).
_EXPORTS = {
    "Api": "mplogger._readers._api:Api",
    "StoredRun": "mplogger._readers._api:StoredRun",
    "Artifact": "mplogger._readers._artifact:Artifact",
    "Charts": "mplogger._readers._display:Charts",
    "compare": "mplogger._readers._display:compare",
    "Error": "mplogger._shared._errors:Error",
    "ManagerError": "mplogger._shared._errors:ManagerError",
    "RunError": "mplogger._shared._errors:RunError",
    "UsageError": "mplogger._shared._errors:UsageError",
    "Histogram": "mplogger._shared._media:Histogram",
    "Image": "mplogger._shared._media:Image",
    "Table": "mplogger._shared._media:Table",
    "Settings": "mplogger._shared._settings:Settings",
    "termerror": "mplogger._shared._terminal:termerror",
    "termlog": "mplogger._shared._terminal:termlog",
    "termwarn": "mplogger._shared._terminal:termwarn",
    "DisabledRun": "mplogger._user._disabled:DisabledRun",
    "config": "mplogger._user._module_api:NO_CONFIG",
    "summary": "mplogger._user._module_api:NO_SUMMARY",
    "alert": "mplogger._user._module_api:alert",
    "define_metric": "mplogger._user._module_api:define_metric",
    "finish": "mplogger._user._module_api:finish",
    "init": "mplogger._user._module_api:init",
    "log_artifact": "mplogger._user._module_api:log_artifact",
    "log": "mplogger._user._module_api:log_before_init",
    "log_model": "mplogger._user._module_api:log_model",
    "report": "mplogger._user._module_api:report",
    "save": "mplogger._user._module_api:save",
    "setup": "mplogger._user._module_api:setup",
    "teardown": "mplogger._user._module_api:teardown",
    "use_artifact": "mplogger._user._module_api:use_artifact",
    "use_model": "mplogger._user._module_api:use_model",
    "watch": "mplogger._user._module_api:watch",
    "Config": "mplogger._user._run:Config",
    "Run": "mplogger._user._run:Run",
    "Summary": "mplogger._user._run:Summary",
}

run = None  # the active run; init() and finish() set it, and config, summary and log with it
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, live=("config", "summary", "log"))

if TYPE_CHECKING:  # what type checkers and editors see: the same names, imported at once
    from mplogger._readers._api import Api, StoredRun
    from mplogger._readers._artifact import Artifact
    from mplogger._readers._display import Charts, compare
    from mplogger._shared._errors import Error, ManagerError, RunError, UsageError
    from mplogger._shared._media import Histogram, Image, Table
    from mplogger._shared._settings import Settings
    from mplogger._shared._terminal import termerror, termlog, termwarn
    from mplogger._user._disabled import DisabledRun
    from mplogger._user._module_api import (alert, define_metric, finish, init, log_artifact, log_model, report, save,
                                            setup, teardown, use_artifact, use_model, watch)
    from mplogger._user._module_api import NO_CONFIG as config, NO_SUMMARY as summary, log_before_init as log
    from mplogger._user._run import Config, Run, Summary
