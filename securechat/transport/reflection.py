"""Server reflection as ``grpc.reflection.v1`` and ``v1alpha``, serving our files with comments.

grpcio-reflection ships only v1alpha. The v1 protocol is the same messages under another package
name, so v1 is the same servicer behind a second method path (its requests and responses are
byte-identical), and its file descriptor is v1alpha's with the package renamed, so a client can
also describe the reflection service itself. Generated ``_pb2`` modules keep no comments; our own
files are therefore answered from ``descriptors.binpb`` (written by ``make proto`` with source
info), and ``grpcurl describe`` shows the comments of ``protos/``.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable
from importlib import resources

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection, reflection_pb2

V1ALPHA = reflection.SERVICE_NAME
V1 = "grpc.reflection.v1.ServerReflection"
DESCRIPTOR_SET = "descriptors.binpb"


def _commented_files() -> dict[str, bytes]:
    """Our .proto files as serialised FileDescriptorProtos with source info, by file name.

    protoc's descriptor sets also carry ``json_name`` (``deviceId``), which the generated
    modules' descriptors do not; it is dropped so JSON clients (grpcurl) keep seeing the field
    names (``device_id``) whichever descriptor they were served."""
    data = resources.files("securechat_proto.v1").joinpath(DESCRIPTOR_SET).read_bytes()
    files = descriptor_pb2.FileDescriptorSet.FromString(data).file
    for file in files:
        messages = list(file.message_type)
        while messages:
            message = messages.pop()
            messages.extend(message.nested_type)
            for field in message.field:
                field.ClearField("json_name")
    return {f.name: f.SerializeToString() for f in files}


def _add_v1_descriptor() -> None:
    """Put ``grpc/reflection/v1/reflection.proto`` (v1alpha renamed) into the default pool."""
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName("grpc/reflection/v1/reflection.proto")
        return
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    text = proto.SerializeToString()
    renamed = descriptor_pb2.FileDescriptorProto.FromString(text)
    renamed.name = "grpc/reflection/v1/reflection.proto"
    renamed.package = "grpc.reflection.v1"
    renamed.ClearField("options")
    for message in renamed.message_type:
        for field in message.field:
            if field.type_name:
                field.type_name = field.type_name.replace(".v1alpha.", ".v1.")
    for method in renamed.service[0].method:
        method.input_type = method.input_type.replace(".v1alpha.", ".v1.")
        method.output_type = method.output_type.replace(".v1alpha.", ".v1.")
    pool.Add(renamed)


class CommentedReflection(reflection.aio.ReflectionServicer):  # type: ignore[misc]
    """The stock servicer, with our files swapped for their commented versions."""

    def __init__(self, service_names: Iterable[str]) -> None:
        super().__init__(service_names)
        self._commented = _commented_files()

    async def ServerReflectionInfo(
        self, requests: AsyncIterable[reflection_pb2.ServerReflectionRequest], context: object
    ) -> AsyncIterator[reflection_pb2.ServerReflectionResponse]:
        async for response in super().ServerReflectionInfo(requests, context):
            if response.HasField("file_descriptor_response"):
                files = response.file_descriptor_response.file_descriptor_proto
                for index, blob in enumerate(files):
                    name = descriptor_pb2.FileDescriptorProto.FromString(blob).name
                    if name in self._commented:
                        files[index] = self._commented[name]
            yield response


def enable_reflection(server: grpc.aio.Server, service_names: Iterable[str]) -> None:
    """Serve reflection (v1 and v1alpha) listing ``service_names`` and both reflection services."""
    _add_v1_descriptor()
    servicer = CommentedReflection([*service_names, V1, V1ALPHA])
    method = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    for name in (V1, V1ALPHA):
        handler = grpc.method_handlers_generic_handler(name, {"ServerReflectionInfo": method})
        server.add_generic_rpc_handlers((handler,))
