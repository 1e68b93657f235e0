"""Operations: metrics, logging setup, the status page and the server console."""
