"""Application services: the use cases (accounts, rooms, messaging, keys, live hub) over the
Store and Bus ports. No grpc here; the transport layer maps these to RPCs."""
