"""Dagster assets: thin wrappers that wire resources to the domain code in ``pipeline``."""
