"""Model architectures, one package each."""
