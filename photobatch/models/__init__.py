"""The models a scan runs, one module per model, over the networks in ``nn``."""
