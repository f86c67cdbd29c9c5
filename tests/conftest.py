"""Shared fixtures: the three champions trained once per session into a temporary MLflow store.

BentoML writes to ``$BENTOML_HOME`` (models, bentos, its own temporary files): tests point it at a temporary folder
so nothing lands in ``~/bentoml``, and turn BentoML's usage tracking off.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

_BENTOML_HOME: list[str] = []


def pytest_configure(config) -> None:
    home = tempfile.mkdtemp(prefix="eqsms-bentoml-")
    _BENTOML_HOME.append(home)
    os.environ["BENTOML_HOME"] = home
    os.environ["BENTOML_DO_NOT_TRACK"] = "True"
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def pytest_unconfigure(config) -> None:
    for home in _BENTOML_HOME:
        shutil.rmtree(home, ignore_errors=True)


@dataclass
class Champions:
    settings: object  # eqsms.settings.Settings of the store
    outcomes: dict  # target -> training.pipeline.Outcome (the trained bundle and its test rows)

    @property
    def work_dir(self) -> Path:
        return self.settings.work_dir

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    def env(self, **extra: str) -> dict[str, str]:
        """The environment a server process needs to find this store and data."""
        return {
            **os.environ,
            "EQSMS_WORK_DIR": str(self.work_dir),
            "EQSMS_DATA_DIR": str(self.data_dir),
            **extra,
        }


@pytest.fixture(scope="session")
def champions(tmp_path_factory) -> Champions:
    """Every target trained on data_samples/world, scored against its oracle and promoted (the first model is
    champion): the suite's one full training, shared by the training, engine and serving tests."""
    from eqsms.settings import Settings, get_settings
    from features.targets import TARGETS
    from features.validate import load
    from training import tracking
    from training.evaluate import read_oracle
    from training.pipeline import datasets_from_data, run_target

    data_dir = get_settings().data_dir
    settings = Settings(work_dir=tmp_path_factory.mktemp("champions"), data_dir=data_dir)
    client = tracking.configure(settings)
    datasets = datasets_from_data(load(data_dir), settings, list(TARGETS))
    oracle = read_oracle(data_dir)
    outcomes = {name: run_target(ds, settings, oracle, str(data_dir), True, client) for name, ds in datasets.items()}
    return Champions(settings, outcomes)


SERVED_MAX_BATCH = 50  # the served service's max_batch_projects: small, so that the limit is easy to test


@pytest.fixture(scope="session")
def served(champions):
    """The service class instantiated in process, and the ASGI app behind a test client (its own instance), on the
    champions. One for the session: BentoML registers its metrics once a process."""
    import warnings

    from serving.service import RiskService

    with warnings.catch_warnings():  # starlette 1.x asks for httpx2; the test client works the same with httpx
        warnings.simplefilter("ignore", DeprecationWarning)
        from starlette.testclient import TestClient

    # The environment points at the champions only while the two instances start (they read their settings then):
    # held for the whole session, it would point every later test at this store.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EQSMS_WORK_DIR", str(champions.work_dir))
        mp.setenv("EQSMS_DATA_DIR", str(champions.data_dir))
        mp.setenv("EQSMS_MAX_BATCH_PROJECTS", str(SERVED_MAX_BATCH))
        mp.setenv("EQSMS_RELOAD_POLL_SECONDS", "0")  # no polling of a store these tests do not change
        service = RiskService()
        http = TestClient(RiskService.to_asgi())
        http.__enter__()  # the app's start-up: its own service instance
    try:
        yield service, http
    finally:
        http.__exit__(None, None, None)


@pytest.fixture(scope="session")
def service(served):
    """The service class instantiated in process (``served``)."""
    return served[0]


@pytest.fixture(scope="session")
def http(served):
    """The service's ASGI app behind a test client (``served``)."""
    return served[1]


@pytest.fixture(scope="session")
def dask_client():
    """A local Dask cluster as the engines start one on this machine (two worker processes, a thread each), shared
    by the Dask feature and training tests."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        with Client(cluster) as client:
            yield client
