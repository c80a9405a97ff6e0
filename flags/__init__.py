"""absl flag definitions for the entry points. Import as `from flags import experiment_flags`."""
