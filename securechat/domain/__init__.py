"""The pure core: accounts, rooms, delivery and presence rules. No I/O, no grpc, no drivers."""
