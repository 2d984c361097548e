"""k8s-analysis: learn from a GitHub project's issues and pull requests, and label new ones."""

__version__ = "0.1.0"
