"""A plain wandb script with dataset artifacts, unchanged wandb API; argument `log` or `use`.

`log`: logs one folder as the artifact `dataset` three times: as first written, after a change, and
unchanged. `use`: a second run uses `dataset:latest` and `dataset:v0` and downloads both to the
default place (./artifacts/<name>:<version>). Each writes what it saw to `<mode>.json` in the cwd.
"""

import json
import os
import sys

import wandb


def write(folder: str, files: dict) -> None:
    os.makedirs(folder, exist_ok=True)
    for name, text in files.items():
        path = os.path.join(folder, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as file:
            file.write(text)


def seen(artifact) -> dict:
    artifact.wait()  # as wandb needs before version/digest of a logged artifact
    return {"name": artifact.name, "version": artifact.version, "aliases": artifact.aliases,
            "digest": artifact.digest, "size": artifact.size, "files": sorted(e.path for e in artifact.files())}


def log() -> dict:
    run = wandb.init(project="artifacts-demo", name="producer", config={"rows": 3})
    write("data", {"train.csv": "x,y\n1,2\n", "notes/readme.txt": "first"})
    first = wandb.Artifact("dataset", type="dataset", description="toy rows", metadata={"rows": 1})
    first.add_dir("data")
    run.log_artifact(first)
    run.log({"loss": 1.0})

    write("data", {"train.csv": "x,y\n1,2\n3,4\n", "extra.txt": "added"})
    second = wandb.Artifact("dataset", type="dataset", metadata={"rows": 2})
    second.add_dir("data")
    wandb.log_artifact(second, aliases=["changed"])  # module level; returns at once
    write("data", {"train.csv": "scribbled after log_artifact returned"})  # added files were copied
    second.wait()
    write("data", {"train.csv": "x,y\n1,2\n3,4\n"})  # back to what `second` holds

    third = wandb.Artifact("dataset", type="dataset", metadata={"rows": 2})
    third.add_dir("data")
    run.log_artifact(third, aliases=["unchanged"])
    third.wait()
    run.log({"loss": 0.5})
    out = {"run_id": run.id, "first": seen(first), "second": seen(second), "third": seen(third)}
    wandb.finish()
    return out


def use() -> dict:
    run = wandb.init(project="artifacts-demo", name="consumer")
    latest = wandb.use_artifact("dataset:latest")
    v0 = run.use_artifact("dataset:v0", type="dataset")
    out = {"run_id": run.id, "latest": seen(latest), "v0": seen(v0), "metadata": [latest.metadata, v0.metadata]}
    for key, artifact in (("latest", latest), ("v0", v0)):
        folder = artifact.download()
        out[key]["folder"] = folder
        out[key]["content"] = {path: open(os.path.join(folder, *path.split("/"))).read()
                               for path in out[key]["files"]}
        out[key]["train.csv"] = open(artifact.get_entry("train.csv").download(os.path.join("single", key))).read()
    wandb.log({"rows": len(out["latest"]["content"]["train.csv"].splitlines()) - 1})
    wandb.finish()
    return out


if __name__ == "__main__":
    mode = sys.argv[1]
    result = {"log": log, "use": use}[mode]()
    with open(f"{mode}.json", "w") as file:
        json.dump(result, file)
