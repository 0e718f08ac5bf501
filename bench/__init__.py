"""Reproducible benchmarks; never imported by the service."""
