"""Prefect flows: the pipeline read aloud (merge -> chunk -> deliver each -> summarise)."""
