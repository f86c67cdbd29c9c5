"""The registered model as MLflow's ``python_function``: the calibrated outputs, as the service gives them.

One logged model carries both flavors. The ``lightgbm`` flavor's files are as before (``model.lgb``, and
``extra_files/`` with ``bundle.json`` and the extra boosters): the service and the bento load those natively
(:meth:`ModelBundle.from_model_dir`), and ``mlflow.lightgbm.load_model`` still gives the raw booster. The
``python_function`` flavor points at this module instead of ``mlflow.lightgbm``, so ``mlflow.pyfunc.load_model``
and ``mlflow models serve`` answer what :meth:`ModelBundle.predict` does, as a frame: a classifier's calibrated
``probability``; the slip model's ``expected_slip_days``, ``lower_days``, ``upper_days`` and ``late_probability``.

The input is the feature row with the categorical features as text (MLflow's JSON and schema have no pandas
categoricals): the bundle maps the text onto the training levels, an unknown or missing level or an absent column is
a missing value, as in the service. The code a load imports (this package, ``features``, ``eqsms``: the strategies
import lazily, so whole packages, not a traced list of files) travels with the model in ``code/``, so the model
serves where this repository is not installed. Versions logged before this module have the ``lightgbm`` flavor's own
pyfunc, which answers the raw booster.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import Model, ModelSignature
from mlflow.pyfunc import DATA, FLAVOR_NAME, MAIN
from mlflow.types import ColSpec, DataType, Schema

from training.bundle import ModelBundle

CODE_PACKAGES = ("eqsms", "features", "training")  # everything ModelBundle.predict can import, lazily or not
EXAMPLE_ROWS = 5


def signature(bundle: ModelBundle, outputs: list[str]) -> ModelSignature:
    """Inputs: every feature, optional (absent is missing), the categorical ones as text and the rest as doubles;
    outputs: the bundle's output columns."""
    inputs = [
        ColSpec(DataType.string if name in bundle.categorical else DataType.double, name, required=False)
        for name in bundle.features
    ]
    return ModelSignature(Schema(inputs), Schema([ColSpec(DataType.double, name) for name in outputs]))


def feature_rows(bundle: ModelBundle, rows: pd.DataFrame) -> pd.DataFrame:
    """Rows as a caller of the pyfunc sends them: the features only, the categorical ones as text."""
    X = rows.reindex(columns=bundle.features)
    for col in bundle.categorical:
        X[col] = X[col].astype("object").where(X[col].notna(), None)
    for col in X.columns.difference(bundle.categorical):
        X[col] = X[col].astype("float64")
    return X


class CalibratedModel:
    """What ``mlflow.pyfunc.load_model`` wraps: a bundle whose ``predict`` answers a frame of its outputs."""

    def __init__(self, bundle: ModelBundle) -> None:
        self.bundle = bundle

    def predict(self, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        frame = pd.DataFrame(model_input)
        return pd.DataFrame(self.bundle.predict(frame), index=frame.index)

    def get_raw_model(self) -> ModelBundle:
        """The bundle itself (``PyFuncModel.get_raw_model()``)."""
        return self.bundle


def _load_pyfunc(path: str) -> CalibratedModel:
    """MLflow's loader hook: ``path`` is the model folder (the flavor names no ``data`` file)."""
    return CalibratedModel(ModelBundle.from_model_dir(Path(path)))


def save_model(path: str, mlflow_model: Model, bundle: ModelBundle, extras: list[Path], **kwargs) -> None:
    """The ``lightgbm`` flavor's files with the shipped code, then the ``python_function`` flavor pointed here.

    Called by :meth:`mlflow.models.Model.log` (``flavor=training.pyfunc``); ``kwargs`` are ``mlflow.lightgbm``'s."""
    code = [str(Path(importlib.import_module(package).__file__).parent) for package in CODE_PACKAGES]
    mlflow.lightgbm.save_model(
        bundle.booster, path, mlflow_model=mlflow_model, code_paths=code, extra_files=[str(p) for p in extras], **kwargs
    )
    conf = mlflow_model.flavors[FLAVOR_NAME]
    conf[MAIN] = __name__
    conf.pop(DATA, None)  # _load_pyfunc gets the model folder
    mlflow_model.save(str(Path(path) / "MLmodel"))


def log_model(bundle: ModelBundle, rows: pd.DataFrame, extras: list[Path], pip_requirements: list[str]):
    """Log ``bundle`` (both flavors) as the active run's ``model``, its signature and an input example from
    ``rows``; MLflow checks the example through the pyfunc, as its server would parse it. The ``ModelInfo``."""
    example = feature_rows(bundle, rows.head(EXAMPLE_ROWS))
    outputs = list(bundle.predict(example))
    path = list(sys.path)
    try:
        return Model.log(
            artifact_path=None,
            name="model",
            flavor=sys.modules[__name__],
            bundle=bundle,
            extras=extras,
            signature=signature(bundle, outputs),
            input_example=example,
            pip_requirements=pip_requirements,
        )
    finally:
        sys.path[:] = path  # loading the example's check put the (temporary) code/ folder in front of it
