"""Dagster resources: connections to the systems outside the Python process."""

from resources.contexts import ContextBudget
from resources.embedders import SentenceEmbedders
from resources.models import ModelStore
from resources.readers import ReaderSettings
from resources.search import LexicalSearch, VectorSearch
from resources.teacher import Teacher
from resources.warehouse import WAREHOUSE_POOL, Warehouse

__all__ = [
           "WAREHOUSE_POOL",
           "ContextBudget",
           "LexicalSearch",
           "ModelStore",
           "ReaderSettings",
           "SentenceEmbedders",
           "Teacher",
           "VectorSearch",
           "Warehouse",
]
