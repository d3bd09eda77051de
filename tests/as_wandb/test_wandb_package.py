"""``mplogger.wandb``: wandb's module tree, live module-level names, settings, and named refusals."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import mplogger
import mplogger.wandb as wandb
from conftest import script_env, write_script


# --- the module tree libraries import ---------------------------------------------------------
@pytest.mark.parametrize("dotted, expected", [
    ("sdk.lib.RunDisabled", mplogger.DisabledRun),
    ("sdk.lib.config_util.ConfigError", mplogger._shared._errors.ConfigError),
    ("wandb_run.Run", mplogger.Run),
    ("sdk.wandb_run.Run", mplogger.Run),
    ("Run", mplogger.Run),
    ("errors.Error", mplogger.Error),
    ("errors.UsageError", mplogger.UsageError),
    ("Settings", wandb.sdk.wandb_settings.Settings),
    ("Table", mplogger.Table), ("Image", mplogger.Image), ("Histogram", mplogger.Histogram),
])
def test_the_names_libraries_import_are_mploggers(dotted, expected):
    value = wandb
    for part in dotted.split("."):
        value = getattr(value, part)
    assert value is expected


def test_the_helpers_libraries_call_work():
    assert wandb.require("service") is None and wandb.login() is True
    assert len(wandb.util.generate_id()) == 8 and wandb.util.generate_id(12).isalnum()
    wandb.termwarn("once only", repeat=False)
    wandb.env.set_project("from-env")
    assert __import__("os").environ.pop("WANDB_PROJECT") == "from-env"


def test_an_unknown_name_is_an_attribute_error_naming_the_stand_in():
    with pytest.raises(AttributeError, match=r"mplogger's stand-in for wandb .* 'no_such_thing'"):
        wandb.no_such_thing  # noqa: B018
    assert not hasattr(wandb, "no_such_thing")


# --- live module-level names ------------------------------------------------------------------
def test_run_config_summary_and_log_follow_init_and_finish(root):
    kept = wandb  # a library keeps the module object, not its names
    assert kept.run is None
    with pytest.raises(mplogger.UsageError, match="before"):
        kept.log({"a": 1})
    with pytest.raises(mplogger.UsageError, match=r"call mplogger.init\(\) before mplogger.config.update"):
        kept.config.update({"lr": 1})  # wandb's pre-init object, not an AttributeError on None
    with pytest.raises(mplogger.UsageError, match=r"before mplogger.summary\['best'\] = "):
        kept.summary["best"] = 1
    run = kept.init(dir=root, project="live")
    assert kept.run is run and kept.config is run.config and kept.summary is run.summary
    kept.log({"a": 1})
    kept.config.update({"lr": 0.1}, allow_val_change=True)
    kept.summary["best"] = 2
    kept.finish()
    assert kept.run is None
    with pytest.warns(UserWarning, match="finished"):
        kept.log({"a": 2})
    stored = mplogger.Api(root).run(run.id)
    assert [row["a"] for row in stored.history()] == [1]
    assert stored.config == {"lr": 0.1} and stored.summary["best"] == 2


def test_runs_are_instances_of_the_classes_lightning_checks(root):
    run = wandb.init(dir=root)
    assert isinstance(run, (wandb.wandb_run.Run, wandb.sdk.lib.RunDisabled))
    run.finish()
    disabled = wandb.init(mode="disabled")
    assert isinstance(disabled, wandb.sdk.lib.RunDisabled)
    disabled.define_metric("x")
    assert disabled.log_artifact("anything") is None and disabled.unwatch() is None  # no-ops, as wandb's
    assert disabled._attach_id is None and disabled.resumed is False and disabled.offline is False
    disabled.finish(quiet=True)
    wandb.finish()


def test_a_changed_config_value_is_wandbs_config_error_and_still_a_value_error(root):
    run = wandb.init(dir=root)
    run.config["a"] = 1
    with pytest.raises(wandb.sdk.lib.config_util.ConfigError, match="'a' is already 1"):
        run.config["a"] = 2
    with pytest.raises(ValueError):
        run.config.update({"a": 3})
    run.config.update({"a": 3}, allow_val_change=True)
    assert run.config["a"] == 3
    run.finish()


# --- settings ---------------------------------------------------------------------------------
def test_wandb_settings_become_mploggers():
    settings = wandb.Settings(start_method="thread", console="wrap_raw", x_disable_stats=True, silent=True,
                              _disable_meta=True, init_timeout=90, workers=2)
    assert (settings.start_method, settings.console, settings.system_interval, settings.workers) == (
        "auto", "wrap", 0.0, 2)
    assert wandb.Settings(x_stats_sampling_interval=5).system_interval == 5.0
    with pytest.raises(TypeError, match="unknown setting 'colour'"):
        wandb.Settings(colour="blue")
    with pytest.raises(ValueError, match="start_method='threads'"):
        wandb.Settings(start_method="threads")


def test_settings_that_are_init_arguments_are_used_unless_init_gives_them(root):
    settings = wandb.Settings(project="from-settings", run_name="named", run_id="setid001", run_tags=("a",))
    assert isinstance(settings, wandb.Settings) and settings.project == "from-settings"
    run = wandb.init(dir=root, settings=settings, name="init-wins")
    run.finish()
    stored = mplogger.Api(root).run("setid001")
    assert (stored.project, stored.name, stored.tags) == ("from-settings", "init-wins", ["a"])
    assert isinstance(wandb.init(settings=wandb.Settings(mode="disabled")), wandb.sdk.lib.RunDisabled)
    wandb.finish()
    with pytest.raises(NotImplementedError, match="forking"):
        wandb.init(dir=root, settings={"fork_from": "abc?_step=3"})


def test_settings_given_to_setup_are_the_defaults_of_later_inits_and_init_leaves_them_as_they_were(root):
    wandb.setup(wandb.Settings(project="from-setup", run_name="set-up"))
    first = wandb.init(dir=root)
    first.finish()
    assert (first.project, first.name) == ("from-setup", "set-up")
    wandb.teardown()
    settings = wandb.Settings(fork_from="abc?_step=1")
    for _ in range(2):  # the refusal does not use up the setting
        with pytest.raises(NotImplementedError, match="forking"):
            wandb.init(dir=root, settings=settings)
    assert settings.init_arguments == {"fork_from": "abc?_step=1"}


def test_wandb_settings_names_typos_and_bad_values():
    accepted = wandb.Settings(symlink=False, force=True, docker="img", organization="o", x_label="node-1",
                              _require_core=True)  # wandb's names, and an old release's private one
    assert accepted.mplogger_settings == mplogger.Settings()
    for bad, said in [({"x_workers": 2}, "did you mean 'workers'"), ({"_console": "off"}, "did you mean 'console'"),
                      ({"x_no_such_thing": 1}, "unknown setting 'x_no_such_thing'")]:
        with pytest.raises(TypeError, match=said):
            wandb.Settings(**bad)
    for bad, said in [({"console": [1]}, r"console=\[1\]"), ({"x_stats_sampling_interval": "abc"}, "seconds"),
                      ({"x_stats_sampling_interval": 0}, "at least 0.1")]:
        with pytest.raises(ValueError, match=said):
            wandb.Settings(**bad)
    changed = wandb.Settings(project="p")
    changed.run_name = "later"
    changed.update(console="off")
    assert changed.init_arguments == {"project": "p", "name": "later"} and changed.console == "off"


def test_wandb_call_signatures_libraries_use(root):
    run = wandb.init(dir=root)
    run.log({"x": 1}, sync=False)  # accelerate passes **kwargs through
    wandb.log({"x": 2}, step=5, commit=True, sync=True)
    wandb.alert(title="t", text="x", level=wandb.AlertLevel.WARN)
    wandb.mark_preempting()
    run.mark_preempting()
    run.finish(quiet=True)
    api = wandb.Api(overrides={"entity": "team"}, timeout=30, api_key="unused", dir=root)
    assert isinstance(api, mplogger.Api) and [r["x"] for r in api.run(run.id).history()] == [1, 2]
    assert [r.id for r in wandb.Api(root).runs()] == [run.id]
    with pytest.raises(TypeError, match="overrides"):
        wandb.Api(42)


def test_init_takes_wandbs_settings_as_an_object_or_a_dict(root):
    for settings in (wandb.Settings(start_method="thread"), {"start_method": "thread", "silent": True}):
        run = wandb.init(dir=root, settings=settings, force=True, tensorboard=False)
        run.log({"x": 1})
        run.finish()
    assert len(list(mplogger.Api(root).runs())) == 2


# --- what is missing says so ------------------------------------------------------------------
@pytest.mark.parametrize("call, feature", [
    (lambda: wandb.link_model("model.pt", "registry/model"), "model registry"),
    (lambda: wandb.sweep({}), "sweeps"),
    (lambda: wandb.agent("id"), "sweeps"),
    (lambda: wandb.Audio([0.0]), "Audio media"),
    (lambda: wandb.Video("v.mp4"), "Video media"),
    (lambda: wandb.Html("<p>"), "Html media"),
    (lambda: wandb.plot.line(None, "x", "y"), "custom charts"),
    (lambda: wandb.restore("model.pt"), "restoring files"),
    (lambda: wandb.init(resume_from="abc?_step=10"), "rewinding or forking"),
])
def test_missing_features_are_named_not_attribute_errors(call, feature):
    with pytest.raises(NotImplementedError, match=feature) as raised:
        call()
    assert isinstance(raised.value, mplogger.Error)
    assert wandb.run is None  # nothing was started


@pytest.mark.parametrize("method, feature", [("link_artifact", "model registry"), ("log_code", "code artifacts")])
def test_a_runs_registry_and_code_methods_are_named_refusals(root, method, feature):
    run = wandb.init(dir=root)
    with pytest.raises(NotImplementedError, match=feature):
        getattr(run, method)("x")
    run.log({"still": 1})  # the run goes on
    run.finish()
    assert mplogger.Api(root).run(run.id).history()[0]["still"] == 1


# --- a run passed between processes as Lightning's spawn does ---------------------------------
@pytest.mark.parametrize("started", ["before", "while-pickling"])
def test_attach_logs_from_a_spawned_process_into_the_run(tmp_path, root, started):
    path = write_script(tmp_path, f"""
        import multiprocessing, sys, threading, time
        import mplogger.wandb as wandb

        class Logger:  # Lightning's WandbLogger.__getstate__: the run is started if need be, then
            def __init__(self):  # only its _attach_id is pickled
                self.experiment = None
            def __getstate__(self):
                wandb.require("service")
                if self.experiment is None:
                    self.experiment = wandb.init(dir={root!r}, id="spawned1")
                return {{"attach_id": self.experiment._attach_id}}
            def __setstate__(self, state):
                self.experiment = wandb._attach(state["attach_id"])

        def child(logger, done):
            assert wandb.run is logger.experiment  # _attach makes it this process's wandb.run
            wandb.log({{"from_child": 1}})
            logger.experiment.config.update({{"lr": 0.5}}, allow_val_change=True)  # Lightning's log_hyperparams
            done.put("ok")

        if __name__ == "__main__":
            threading.Thread(target=time.sleep, args=(60,), daemon=True).start()  # threads: the manager spawns
            logger = Logger()
            if sys.argv[1] == "before":
                logger.experiment = wandb.init(dir={root!r}, id="spawned1")
                logger.experiment.log({{"from_parent": 0}})
            context = multiprocessing.get_context("spawn")
            done = context.SimpleQueue()  # pickled after the run started: multiprocessing must still allow it
            process = context.Process(target=child, args=(logger, done))
            process.start()
            assert done.get() == "ok"
            process.join(60)
            assert process.exitcode == 0, process.exitcode
            wandb.finish()
    """)
    result = subprocess.run([sys.executable, str(path), started], capture_output=True, text=True, timeout=90,
                            env=script_env())
    assert result.returncode == 0, result.stderr[-3000:]
    stored = mplogger.Api(root).run("spawned1")
    rows = stored.history()
    expected = [(True, False), (False, True)] if started == "before" else [(False, True)]
    assert [("from_parent" in row, "from_child" in row) for row in rows] == expected
    assert stored.config == {"lr": 0.5} and stored.state == "finished"


def test_an_attached_run_has_no_summary_of_its_own_and_says_so(tmp_path, root):
    path = write_script(tmp_path, f"""
        import multiprocessing
        import mplogger, mplogger.wandb as wandb

        def child(attach_id):
            run = wandb._attach(attach_id)
            assert run._attach_id == attach_id
            try:
                wandb.summary["best"] = 1
            except mplogger.UsageError as exc:
                print("refused:", exc)

        if __name__ == "__main__":
            run = wandb.init(dir={root!r})
            process = multiprocessing.get_context("spawn").Process(target=child, args=(run._attach_id,))
            process.start()
            process.join(60)
            wandb.finish()
    """)
    result = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=90,
                            env=script_env())
    assert result.returncode == 0, result.stderr[-3000:]
    assert "keeps its summary in the process that called init()" in result.stdout


def test_module_functions_on_an_attached_run(tmp_path, root):
    path = write_script(tmp_path, f"""
        import multiprocessing
        import mplogger, mplogger.wandb as wandb

        def child(attach_id):
            run = wandb._attach(attach_id)
            wandb.define_metric("child/*", step_metric="child_step")
            wandb.watch(object())
            try:
                wandb.alert(title="t", text="x")
            except mplogger.UsageError as exc:
                print("alert:", exc)
            try:
                run.log_artifact("missing.bin")
            except ValueError as exc:
                print("artifact:", exc)
            wandb.log({{"child_step": 1, "child/loss": 0.5}})
            wandb.finish()
            assert wandb.run is None

        if __name__ == "__main__":
            run = wandb.init(dir={root!r}, id="attfun01")
            process = multiprocessing.get_context("spawn").Process(target=child, args=(run._attach_id,))
            process.start()
            process.join(60)
            assert process.exitcode == 0
            wandb.finish()
    """)
    result = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=90,
                            env=script_env())
    assert result.returncode == 0, result.stderr[-3000:]
    assert "alert(): run attfun01 is attached from another process here" in result.stdout
    assert "artifact: run.log_artifact('missing.bin'): no such file or folder" in result.stdout
    assert "is finished by the process that started it" in result.stderr  # the child's finish() only lets go
    stored = mplogger.Api(root).run("attfun01")
    assert stored.history()[0]["child/loss"] == 0.5 and stored.state == "finished"


def test_the_no_run_placeholders_copy_and_refuse_clearly():
    import copy
    import pickle

    assert wandb.config is not None and bool(wandb.config)
    for made in (copy.copy(wandb.config), copy.deepcopy(wandb.summary)):
        assert repr(made).startswith("<mplogger.")
    assert getattr(wandb.config, "_private", "default") == "default"
    with pytest.raises(mplogger.UsageError, match="len"):
        len(wandb.config)
    with pytest.raises(mplogger.UsageError):
        "key" in wandb.summary  # noqa: B015
    pickle.dumps(wandb.config)


def test_attach_refuses_what_is_not_an_attach_id():
    with pytest.raises(mplogger.UsageError, match="by its run._attach_id"):
        wandb._attach(run_id="abcd1234")
    with pytest.raises(ValueError, match="not a run's _attach_id"):
        wandb._attach("not json")
    with pytest.raises(TypeError, match="_attach_id"):
        wandb._attach(12)
    with pytest.raises(ValueError, match="not a run's _attach_id"):
        wandb._attach(json.dumps({"run_id": "x"}))


# --- the wandb command, as a job's shell script may call it ------------------------------------
@pytest.mark.parametrize("args, status, said", [
    (["login", "0123abcd"], 0, "nothing to do"),
    (["offline"], 0, "nothing to do"),
    (["--version"], 0, "wandb, version 0.21.0+mplogger"),
    (["sync", "wandb/offline-run-1"], 1, "mplogger ls"),
    (["sweep", "sweep.yaml"], 1, "sweeps are not in mplogger"),
])
def test_python_m_wandb_under_mplogger_run(args, status, said):
    result = subprocess.run([sys.executable, "-m", "mplogger", "run", "--", sys.executable, "-m", "wandb", *args],
                            capture_output=True, text=True, timeout=60, env=script_env())
    assert result.returncode == status and said in result.stdout + result.stderr, result.stderr


def test_importing_wandb_does_not_run_its_command_line():
    body = "import sys, wandb; print(sorted(m for m in sys.modules if m.endswith('__main__')))"
    result = subprocess.run([sys.executable, "-m", "mplogger", "run", sys.executable, "-c", body],
                            capture_output=True, text=True, timeout=60, env=script_env())
    assert result.returncode == 0 and result.stdout.strip() == "['__main__']", result.stdout + result.stderr
