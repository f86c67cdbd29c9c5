"""The bento: the three @champion models imported into the BentoML model store, then `bentoml build`.

A model is imported with ``bentoml.mlflow.import_model`` (the whole MLflow model folder, ``bundle.json`` and the
extra boosters included) and labelled with its registry version and run, which ``GET /v1/models`` reports when the
service runs from the bento. Importing again the champion already imported last reuses it instead of adding a copy.
"""

from __future__ import annotations

import pandas as pd

from eqsms.settings import REPO_ROOT, Settings
from features.targets import TARGETS
from serving.runtime import CHAMPION, NotReady

BENTOFILE = REPO_ROOT / "bentofile.yaml"


def _latest(name: str):
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        return bentoml.models.get(f"{name}:latest")
    except NotFound:
        return None


def import_champion(client, name: str, store: str):
    """One champion into the BentoML model store (or the copy already there if it is the same run)."""
    import bentoml

    from training.tracking import alias_version

    version = alias_version(client, name, CHAMPION)
    if version is None:
        raise NotReady(
            f"no @{CHAMPION} model for {name} in the MLflow store {store}.\n"
            "Create it with `eqsms train --promote` (or point MLFLOW_TRACKING_URI at the store that has it)."
        )
    mv = client.get_model_version(name, version)
    stored = _latest(name)
    if stored is not None and stored.info.metadata.get("run_id") == mv.run_id:
        return stored
    metadata = {
        "version": str(version),
        "alias": CHAMPION,
        "run_id": mv.run_id,
        "trained_at": pd.Timestamp(mv.creation_timestamp, unit="ms", tz="UTC").isoformat(),
        "mlflow_model_uri": f"models:/{name}/{version}",
    }
    return bentoml.mlflow.import_model(
        name,
        f"models:/{name}/{version}",
        labels={"alias": CHAMPION, "registry_version": str(version)},
        metadata=metadata,
    )


def import_champions(settings: Settings) -> list:
    from training.tracking import configure

    client = configure(settings)
    return [import_champion(client, name, settings.tracking_uri) for name in TARGETS]


def build_bento():
    """``bentoml build`` of bentofile.yaml from the repository root."""
    import bentoml

    return bentoml.bentos.build_bentofile(str(BENTOFILE), build_ctx=str(REPO_ROOT))
