"""Config loading and validation, and building an experiment from a config."""
