"""aiida-qdtraps: trap states in colloidal quantum dots with AiiDA provenance."""
__version__ = "0.1.0"
