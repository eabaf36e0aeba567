"""Dagster resources: connections to the systems outside the Python process."""

from resources.contexts import ContextBudget
from resources.embedders import SentenceEmbedders
from resources.heavy_reader import HeavyReader
from resources.models import ModelStore
from resources.readers import ReaderSettings
from resources.search import LexicalSearch, VectorSearch
from resources.warehouse import WAREHOUSE_POOL, Warehouse

__all__ = [
           "WAREHOUSE_POOL",
           "ContextBudget",
           "HeavyReader",
           "LexicalSearch",
           "ModelStore",
           "ReaderSettings",
           "SentenceEmbedders",
           "VectorSearch",
           "Warehouse",
]
