"""register --from: every URI form resolves to the version it names, and every model Vigil
must not load is refused with one line naming why."""

from __future__ import annotations

import pytest

SKLEARN_REQS = ["scikit-learn", "skops"]


@pytest.fixture(scope="module")
def data():
    """Breast-cancer reference (features, labels) as a user would hand them over."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    return frame.drop(columns="target"), frame["target"]


@pytest.fixture(scope="module")
def linear(data):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = data
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)


@pytest.fixture(scope="module")
def forest(data):
    from sklearn.ensemble import RandomForestClassifier

    x, y = data
    return RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y)


def _save(tmp_path, model, name="model", **kwargs):
    """A local MLflow model folder, as mlflow.sklearn.save_model writes it."""
    import mlflow.sklearn

    folder = tmp_path / name
    kwargs.setdefault("serialization_format", "skops")
    mlflow.sklearn.save_model(model, str(folder), pip_requirements=SKLEARN_REQS, **kwargs)
    return folder


def _refused(folder, data, *needles, **kwargs):
    from training.mlflow.source import load_folder
    from training.model_file import BadModel

    with pytest.raises(BadModel) as caught:
        load_folder(folder, data[0], **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message
    return message


def test_a_skops_model_with_a_matching_signature_loads(tmp_path, data, linear):
    from mlflow.models import infer_signature

    from training.mlflow.source import load_folder

    folder = _save(tmp_path, linear, signature=infer_signature(data[0]))
    model, source = load_folder(folder, data[0])
    assert (model.predict(data[0]) == linear.predict(data[0])).all()
    assert source["format"] == "skops" and len(source["sha256"]) == 64


def test_the_mlmodel_trusted_types_are_not_vigils(tmp_path, data, forest):
    """Whoever logged the forest trusted its tree type in MLmodel; Vigil refuses it by name
    until --trust names it."""
    from training.mlflow.source import load_folder

    tree = "sklearn.tree._tree.Tree"
    folder = _save(tmp_path, forest, skops_trusted_types=[tree])
    _refused(folder, data, tree, "--trust")
    model, source = load_folder(folder, data[0], trust=(tree,))
    assert tree in source["trusted"]
    assert (model.predict(data[0]) == forest.predict(data[0])).all()


def test_a_pickle_needs_trust_pickle(tmp_path, data, linear):
    from training.mlflow.source import load_folder

    folder = _save(tmp_path, linear, serialization_format="cloudpickle")
    _refused(folder, data, "--trust-pickle")
    model, source = load_folder(folder, data[0], trust_pickle=True)
    assert source["format"] == "joblib"
    assert (model.predict(data[0]) == linear.predict(data[0])).all()


def test_a_pyfunc_only_model_is_refused(tmp_path, data):
    import mlflow.pyfunc

    class Echo(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input):
            return model_input

    folder = tmp_path / "pyfunc"
    mlflow.pyfunc.save_model(str(folder), python_model=Echo(), pip_requirements=["pandas"])
    _refused(folder, data, "no sklearn flavor", "python_function", "pyfunc")


def test_a_model_with_code_paths_is_refused(tmp_path, data, linear):
    helper = tmp_path / "helper.py"
    helper.write_text("X = 1\n")
    folder = _save(tmp_path, linear, code_paths=[str(helper)])
    _refused(folder, data, "code_paths")


def test_a_tensor_signature_is_refused(tmp_path, data, linear):
    from mlflow.models import infer_signature

    folder = _save(tmp_path, linear, signature=infer_signature(data[0].to_numpy()))
    _refused(folder, data, "tensor signature")


def test_a_signature_with_other_columns_or_types_is_refused(tmp_path, data, linear):
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    names = list(data[0].columns)
    swapped = [names[1], names[0], *names[2:]]
    signature = ModelSignature(Schema([ColSpec("double", n) for n in swapped]))
    folder = _save(tmp_path, linear, "order", signature=signature)
    _refused(folder, data, "do not match", "order")
    typed = [ColSpec("string" if n == names[3] else "double", n) for n in names]
    folder = _save(tmp_path, linear, "types", signature=ModelSignature(Schema(typed)))
    _refused(folder, data, repr(names[3]), "string", "numeric")


def test_a_model_of_another_sklearn_major_is_refused(tmp_path, data, linear):
    folder = _save(tmp_path, linear)
    mlmodel = folder / "MLmodel"
    text = mlmodel.read_text()
    import sklearn

    mlmodel.write_text(
        text.replace(f"sklearn_version: {sklearn.__version__}", "sklearn_version: 0.24.2")
    )
    _refused(folder, data, "0.24.2", "another major version")


def test_each_uri_form_resolves_to_the_version_it_names(settings, tmp_path, data, linear):
    """runs:/, models:/NAME/VERSION, models:/NAME@ALIAS, models:/m-ID, against the embedded
    store, with the lineage each records."""
    import mlflow
    import mlflow.sklearn

    from training.mlflow.source import load_from
    from training.mlflow.store import client, experiment_id, store_for
    from training.model_file import BadModel

    store = store_for(settings)
    mlflow_client = client(store)
    # The embedded store's experiment keeps artifacts under VIGIL_HOME (a new one would
    # write to ./mlruns).
    mlflow.set_experiment(experiment_id=experiment_id(mlflow_client, store_for(settings)))
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(
            linear, name="clf", serialization_format="skops", pip_requirements=SKLEARN_REQS,
            registered_model_name="churn",
        )  # fmt: skip
    mlflow_client.set_registered_model_alias("churn", "champion", "1")
    forms = {
        f"runs:/{run.info.run_id}/clf": {"run_id": run.info.run_id},
        "models:/churn/1": {"name": "churn", "version": "1", "run_id": run.info.run_id},
        "models:/churn@champion": {"name": "churn", "version": "1", "alias": "champion"},
        info.model_uri: {"model_id": info.model_id, "run_id": run.info.run_id},
    }
    assert info.model_uri.startswith("models:/m-")
    for uri, expected in forms.items():
        model, source = load_from(settings, uri, data[0])
        assert (model.predict(data[0]) == linear.predict(data[0])).all(), uri
        lineage = source["mlflow"]
        assert lineage["uri"] == uri
        assert lineage["tracking_uri"] == store.display_uri
        assert {k: lineage.get(k) for k in expected} == expected, (uri, lineage)
    for bad in ("models:/churn@nobody", "models:/churn/9", "s3://bucket/model", "models:/m-00"):
        with pytest.raises(BadModel):
            load_from(settings, bad, data[0])
