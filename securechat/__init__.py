"""securechat: a self-hosted, end-to-end encrypted chat service over gRPC and mutual TLS."""

__version__ = "0.1.0"
