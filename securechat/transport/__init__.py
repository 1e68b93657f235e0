"""The gRPC edge of the server: the only server code that imports grpc or generated stubs."""
