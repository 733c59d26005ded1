"""The shell users touch: engine, context, handles, registry, serialization."""
