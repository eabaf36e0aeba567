"""Domain logic of the science-exam pipeline, in plain Python (no Dagster imports).

The one exception is :mod:`pipeline.definitions`, which assembles the Dagster ``Definitions``.
"""
