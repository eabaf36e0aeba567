"""Dagster resources: connections to the systems outside the Python process."""

from resources.warehouse import Warehouse

__all__ = ["Warehouse"]
