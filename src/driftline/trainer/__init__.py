"""The retraining agent and the model registry that close the loop."""
