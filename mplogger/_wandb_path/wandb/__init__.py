"""``import wandb`` under ``mplogger run`` (any process of the job): replaces itself with mplogger's
compatibility package."""

MPLOGGER_STAND_IN = True  # how install() tells this module from a real wandb imported before

try:
    from mplogger.wandb._install import install
except ImportError as exc:
    import os
    import sys

    _ours = os.environ.get("MPLOGGER_RUN_PYTHON")
    raise ImportError(
        f"import wandb: `mplogger run` makes wandb mplogger's, but this Python ({sys.executable}) cannot "
        f"import mplogger ({exc}); install mplogger into it, or run the job with the Python mplogger is in"
        + (f" ({_ours}, e.g. `mplogger run -- {_ours} train.py`)" if _ours and _ours != sys.executable else "")
    ) from exc

install()
