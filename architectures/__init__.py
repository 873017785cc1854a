"""Built-in model families, one module per family; each registers its factories with srbench."""
