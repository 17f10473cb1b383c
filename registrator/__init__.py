"""Service-discovery sidecar: Docker containers -> registry -> DNS and proxy configuration."""

__version__ = "0.1.0"
