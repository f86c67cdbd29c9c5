"""The registered model through MLflow's own doors: ``mlflow.pyfunc.load_model`` and ``mlflow models serve`` answer
what the service does (the calibrated probability; the slip, its range and P(late)), not the raw booster's score.

The models are the session's champions (conftest), in their real sqlite MLflow store.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.models import Model

from serving.local import HOST, call, free_port, wait_ready
from training import tracking
from training.bundle import ModelBundle


@pytest.fixture
def trained(champions, monkeypatch):
    """The session's champions, with MLflow pointed at their store again (other tests point it elsewhere). A pyfunc
    load puts the model's code/ folder in front of sys.path: put it back after each test."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    tracking.configure(champions.settings)
    return champions


def as_sent(bundle: ModelBundle, rows: pd.DataFrame) -> pd.DataFrame:
    """The feature columns as a caller of the pyfunc has them: the categorical ones as text, the others as floats."""
    X = rows[bundle.features].copy()
    for col in bundle.features:
        if col in bundle.categorical:
            X[col] = X[col].astype("object").where(X[col].notna(), None)
        else:
            X[col] = X[col].astype("float64")
    return X


def raw_booster(bundle: ModelBundle, rows: pd.DataFrame) -> dict[str, np.ndarray]:
    """What the boosters say before calibration (and, for the range, before the conformal margin)."""
    X = bundle.frame(rows)
    if bundle.late is None:
        return {"probability": bundle.booster.predict(X)}
    return {
        "late_probability": bundle.late.predict(X),
        "lower_days": bundle.lower.predict(X),
        "upper_days": bundle.upper.predict(X),
    }


@pytest.mark.parametrize("name", ["defect_risk", "delay", "churn"])
def test_pyfunc_predicts_the_calibrated_outputs(trained, name):
    outcome = trained.outcomes[name]
    bundle, rows = outcome.result.bundle, outcome.result.test_rows
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    got = model.predict(as_sent(bundle, rows))
    want = bundle.predict(rows)
    assert isinstance(got, pd.DataFrame) and list(got.columns) == list(want) and len(got) == len(rows)
    for key, value in want.items():
        np.testing.assert_array_equal(got[key].to_numpy(), value, err_msg=f"{name}.{key}")
    for key, value in raw_booster(bundle, rows).items():
        assert not np.allclose(got[key].to_numpy(), value), f"{name}.{key} is the raw booster's"
    # The same model by its run, loaded afresh, and a request that leaves features out (missing, as in the service).
    by_run = mlflow.pyfunc.load_model(f"runs:/{outcome.registered.run_id}/model")
    partial = as_sent(bundle, rows.head(20)).drop(columns=bundle.features[1::2])
    np.testing.assert_array_equal(
        by_run.predict(partial).to_numpy(), pd.DataFrame(bundle.predict(partial)).to_numpy(), err_msg=name
    )


def test_one_logged_model_has_both_flavors_a_signature_and_its_code(trained):
    """The native booster is still there for `mlflow.lightgbm` and for the service (``from_model_dir``); the pyfunc
    is ours, signed with the features and the outputs, with the code and requirements it needs."""
    for name, outcome in trained.outcomes.items():
        bundle, rows = outcome.result.bundle, outcome.result.test_rows
        uri = f"models:/{name}@champion"
        booster = mlflow.lightgbm.load_model(uri)
        np.testing.assert_array_equal(booster.predict(bundle.frame(rows)), bundle.booster.predict(bundle.frame(rows)))
        folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
        flavors = Model.load(str(folder / "MLmodel")).flavors
        assert set(flavors) == {"lightgbm", "python_function"}
        assert flavors["python_function"]["loader_module"] == "training.pyfunc"
        info = mlflow.models.get_model_info(uri)
        inputs, outputs = info.signature.inputs, info.signature.outputs
        assert inputs.input_names() == bundle.features and not any(c.required for c in inputs.inputs)
        assert {c.name for c in inputs.inputs if c.type == mlflow.types.DataType.string} == set(bundle.categorical)
        assert outputs.input_names() == list(bundle.predict(rows.head(2)))
        assert {"training/pyfunc.py", "training/kinds.py", "eqsms/settings.py", "features/targets.py"} <= {
            p.relative_to(folder / "code").as_posix() for p in (folder / "code").rglob("*.py")
        }
        assert "pydantic-settings" in (folder / "requirements.txt").read_text()
        assert (folder / "serving_input_example.json").exists()
        loaded = ModelBundle.from_model_dir(folder)  # what serving and the bento load
        np.testing.assert_array_equal(loaded.score(rows), bundle.score(rows), err_msg=name)


def test_a_version_logged_before_the_pyfunc_still_loads(trained, tmp_path):
    """Older versions have the lightgbm flavor alone (its own pyfunc): serving loads them as before."""
    outcome = trained.outcomes["delay"]
    bundle, rows = outcome.result.bundle, outcome.result.test_rows
    experiment = tracking.experiment_id(mlflow.MlflowClient(), "older-layout", trained.settings)
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.lightgbm.log_model(
            bundle.booster,
            name="model",
            pip_requirements=tracking.PIP_REQUIREMENTS,
            extra_files=[str(p) for p in bundle.write_extras(tmp_path / "extras")],
        )
    loaded = tracking.load_bundle(info.model_uri)
    for key, value in bundle.predict(rows).items():
        np.testing.assert_array_equal(loaded.predict(rows)[key], value, err_msg=key)


LOAD_IN_A_FRESH_PROCESS = """
import json, sys
import mlflow, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
rows = pd.read_parquet(sys.argv[2])
out = model.predict(rows)
print(json.dumps({"bundle_file": sys.modules["training.bundle"].__file__, "out": out.to_dict(orient="list")}))
"""


@pytest.mark.slow
def test_a_fresh_process_scores_with_the_code_the_model_carries(trained, tmp_path):
    """Loaded in a new interpreter, the pyfunc imports training/ from the model's ``code/``, not this checkout, and
    that code is complete enough to score (the strategies import lazily)."""
    outcome = trained.outcomes["delay"]
    bundle, rows = outcome.result.bundle, outcome.result.test_rows.head(50)
    model_dir = Path(mlflow.artifacts.download_artifacts(artifact_uri="models:/delay@champion", dst_path=tmp_path))
    sent = tmp_path / "rows.parquet"
    as_sent(bundle, rows).to_parquet(sent)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", LOAD_IN_A_FRESH_PROCESS, str(model_dir), str(sent)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(answer["bundle_file"]).is_relative_to(model_dir / "code")
    for key, value in bundle.predict(rows).items():
        np.testing.assert_array_equal(answer["out"][key], value, err_msg=key)


# ---------------------------------------------------------------------------------------------- mlflow models serve
@pytest.mark.slow
@pytest.mark.parametrize("name", ["defect_risk", "delay"])
def test_mlflow_models_serve_answers_what_the_service_does(trained, tmp_path, name):
    """The real `mlflow models serve --env-manager local` on the registered champion: JSON rows in (text categories,
    nulls for missing values), the calibrated outputs out, equal to the bundle's."""
    outcome = trained.outcomes[name]
    bundle, rows = outcome.result.bundle, outcome.result.test_rows.head(200)
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": trained.settings.tracking_uri,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # mlflow runs uvicorn
    }
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{name}@champion"]
    command += ["--env-manager", "local", "--host", HOST, "--port", str(port)]
    with (tmp_path / "serve.log").open("wb") as log:
        process = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        base = f"http://{HOST}:{port}"
        wait_ready(base, process, timeout=180, path="/ping")
        X = as_sent(bundle, rows).astype(object)
        data = X.where(X.notna(), None).to_numpy().tolist()
        body = {"dataframe_split": {"columns": list(X.columns), "data": data}}
        status, answer = call(f"{base}/invocations", body, timeout=60)
        assert status == 200, answer
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
    got = pd.DataFrame(answer["predictions"])
    for key, value in bundle.predict(rows).items():
        np.testing.assert_array_equal(got[key].to_numpy(), value, err_msg=f"{name}.{key}")
