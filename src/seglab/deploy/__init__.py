"""Deployment: ONNX export, the REST service and its web page, the napari viewer and plugin.
Never imports Lightning, MLflow or `seglab.training.run`."""
