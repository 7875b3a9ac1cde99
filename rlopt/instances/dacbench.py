"""DACBench's SGD instance sets, read as they are (`instances.file=path/to/sgd_*.csv`).

DACBench (automl/DACBench, `dacbench/instance_sets/sgd/`) describes each instance of its SGD benchmark
as one CSV row with the columns of `COLUMNS`: the dataset (a torchvision name, optionally with a
`_<suffix>`), how the model is built (`from_file` + a layer-list JSON, or `from_torchhub` + `repo-model-
pretrained`), the optimizer and its keyword arguments, the instance's seed, batch size, the
train/validation ratio and the fraction of the training set used. Here a row becomes an rlopt instance:

- dataset: MNIST, FashionMNIST, CIFAR10, CIFAR100 -> rlopt's; `val_size` = (1 - ratio) x the training set,
  `train_subset` = fraction x what remains; the row's seed fixes the split (`dataset.split_seed`);
- model: `small_mnist_model.json` is the PyTorch-examples MNIST net, rlopt's `small_cnn`; torchvision's
  ResNet-18 from torch hub (not pretrained) is `resnet18_imagenet`;
- optimizer: SGD, Adam, Adadelta with their parameters into `optim.<name>` (the controller still decides
  which optimizer steps: the row's optimizer is where its parameters go);
- batch size -> `trainer.batch_size`. The budget stays the command's (the CSV has none).

A row whose dataset, model or optimizer rlopt lacks, or whose data is not under the dataset's root, is
one line on stderr and is left out; a file without a runnable row is a `UserError`.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from rlopt.config import option
from rlopt.errors import UserError
from rlopt.instances.spec import Instance

COLUMNS = ["id", "dataset", "model_type", "model_kwargs", "optimizer", "optimizer_params", "seed", "batch_size",
           "train_validation_ratio", "fraction_of_dataset"]
# DACBench name -> (rlopt dataset, training-set size, torchvision's folder under the dataset root)
DATASETS = {"MNIST": ("mnist", 60000, "MNIST"), "FashionMNIST": ("fashion_mnist", 60000, "FashionMNIST"),
            "CIFAR10": ("cifar10", 50000, "cifar-10-batches-py"), "CIFAR100": ("cifar100", 50000, "cifar-100-python")}
# (model_type, model_kwargs) -> rlopt model
MODELS = {("from_file", "small_mnist_model.json"): "small_cnn",
          ("from_torchhub", "pytorch/vision:v0.10.0-resnet18-False"): "resnet18_imagenet"}
OPTIMIZERS = {"SGD": "sgd", "Adam": "adam", "Adadelta": "adadelta"}


def _model(row) -> str | None:
    kwargs = str(row["model_kwargs"]).strip().strip("'\"")
    if row["model_type"] == "from_file":
        kwargs = Path(kwargs).name
    return MODELS.get((str(row["model_type"]), kwargs))


def _optimizer_params(text) -> dict | None:
    """The row's optimizer_params (a Python/JSON dict, or empty); None when unreadable."""
    if pd.isna(text) or not str(text).strip():
        return {}
    try:
        params = ast.literal_eval(str(text))
    except (ValueError, SyntaxError):
        return None
    return params if isinstance(params, dict) else None


def _data_root(dataset: str) -> Path:
    return Path(str(option("dataset", dataset).root)).expanduser()


def _row_instance(row, line: int, cfg) -> tuple[Instance | None, str | None]:
    """The instance of one row, or (None, why it cannot run here)."""
    name = str(row["dataset"]).split("_")[0]
    why = []
    dataset = DATASETS.get(name)
    if dataset is None:
        why.append(f"dataset {name} is not one of rlopt's ({', '.join(DATASETS)})")
    model = _model(row)
    if model is None:
        why.append(f"model {row['model_type']} {row['model_kwargs']} has no rlopt model "
                   f"(known: {', '.join(k[1] for k in MODELS)})")
    optimizer = OPTIMIZERS.get(str(row["optimizer"]))
    params = _optimizer_params(row["optimizer_params"])
    if optimizer is None:
        why.append(f"optimizer {row['optimizer']} is not in rlopt's bank here ({', '.join(OPTIMIZERS)})")
    elif params is None:
        why.append(f"optimizer_params {row['optimizer_params']!r} is not a dict")
    else:
        unknown = sorted(set(params) - set(OmegaConf.to_container(cfg.optim[optimizer])))
        if unknown:
            why.append(f"optimizer_params {', '.join(unknown)} are not settings of rlopt's {optimizer}")
    if dataset is not None and not (_data_root(dataset[0]) / dataset[2]).is_dir():
        why.append(f"no {name} data under {_data_root(dataset[0])} (set RLOPT_DATA, or run once with dataset.download=true)")
    if why:
        return None, f"row {line} (id {row['id']}): not run here: " + "; ".join(why)
    rlopt_name, n_train, _ = dataset
    val_size = round((1 - float(row["train_validation_ratio"])) * n_train)
    fraction = float(row["fraction_of_dataset"])
    settings = {
        "dataset": {"name": rlopt_name, "val_size": val_size, "split_seed": int(row["seed"]),
                    "train_subset": None if fraction >= 1 else max(1, int(fraction * (n_train - val_size)))},
        "model": {"name": model},
        "trainer": {"batch_size": int(row["batch_size"])},
    }
    if params:
        settings["optim"] = {optimizer: params}
    return Instance(f"row{row['id']}", "train", settings, f"instances.file row {line}"), None


def read_instances(path: str, cfg, quiet: bool = False) -> list[Instance]:
    """The runnable rows of the DACBench CSV at `path` as instances; a line on stderr for each row left out
    (unless `quiet`)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"instances.file={path}: no such file (give a DACBench SGD instance-set CSV)")
    try:
        rows = pd.read_csv(file, dtype={"model_kwargs": str, "optimizer_params": str})
    except (ValueError, pd.errors.ParserError) as err:
        raise UserError(f"instances.file={path}: not a CSV ({' '.join(str(err).split())})") from None
    missing = [c for c in COLUMNS if c not in rows.columns]
    if missing:
        raise UserError(f"instances.file={path}: missing DACBench columns {', '.join(missing)} "
                        f"(expected: {', '.join(COLUMNS)})")
    found = []
    for line, row in enumerate(rows.to_dict("records"), start=2):  # line 1 is the header
        try:
            inst, why = _row_instance(row, line, cfg)
        except (TypeError, ValueError) as err:
            inst, why = None, f"row {line} (id {row['id']}): not run here: unreadable value ({err})"
        if why and not quiet:
            print(f"rlopt: instances.file={path}: {why}", file=sys.stderr)
        elif not why:
            found.append(inst)
    if not found:
        raise UserError(f"instances.file={path}: none of its {len(rows)} rows can run here (see the lines above)")
    return found
