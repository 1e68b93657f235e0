"""Load benchmarks: a real securechat-server against a bare grpc.aio fan-out reference."""
