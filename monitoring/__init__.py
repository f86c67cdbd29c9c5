"""Watching the models before their outcomes arrive: feature and prediction drift, estimated performance."""
