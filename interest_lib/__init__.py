"""interest-evolution: capture how e-commerce users' interests migrate and evolve.

The package follows the data flow; read the sub-packages in this order:
``conf`` (typed configuration), ``spark`` (session factory), ``storage`` (Delta tables),
``schema`` (column names and the canonical event schema), ``generate`` (synthetic store),
``ingest`` (raw files -> bronze.events), ``sessions`` (bronze -> silver sessions).
"""

__version__ = "0.1.0"
